#!/usr/bin/env bash
# Issue 5's benchmark: export / restore / snapshot of 1M x 384 records against numpy.save / numpy.load
# (with fsync) and a json.dumps export, in one command (see Docs/Benchmarks.md).
#
#   bash bench/run_backup.sh [--n N] [--no-doc]
#
# Makes bench/.venv (numpy), builds the CLI in release mode with its own scratch path, caches the data
# under bench/data/backup-*/ (about 2 GB), and needs about 8 GB free for the database and the exports.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in swift python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "run_backup.sh: $tool is required" >&2; exit 1; }
done
if [ ! -x bench/.venv/bin/python ]; then python3 -m venv bench/.venv; fi
if ! bench/.venv/bin/python -c 'import numpy' 2>/dev/null; then
    bench/.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
fi
swift build -c release --scratch-path .build-bench --product sextant
exec bench/.venv/bin/python bench/py/backup_bench.py "$@"
