#!/usr/bin/env bash
# Issue 10 item 7's measurement: exports, backups, snapshot archives and restores with and without
# --encrypt on 200k x 384 records (see Docs/Benchmarks.md, "Encrypted backups").
#
#   bash bench/run_encrypt.sh [--n N] [--rounds R]
#
# Makes bench/.venv (numpy), builds the CLI in release mode with its own scratch path, caches the data
# under bench/data/encrypt-*/ (about 330 MB) and needs about 3 GB free for the outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in swift python3; do
    command -v "$tool" >/dev/null || { echo "run_encrypt.sh: $tool is required" >&2; exit 1; }
done
if [ ! -x bench/.venv/bin/python ]; then python3 -m venv bench/.venv; fi
if ! bench/.venv/bin/python -c 'import numpy' 2>/dev/null; then
    bench/.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
fi
swift build -c release --scratch-path .build-bench --product sextant
exec bench/.venv/bin/python bench/py/encrypt_bench.py "$@"
