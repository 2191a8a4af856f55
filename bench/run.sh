#!/usr/bin/env bash
# Sextant's benchmarks, side by side with numpy, in one command (see Docs/Benchmarks.md).
#
#   bash bench/run.sh [--quick] [--no-synth-jsonl] [--no-doc] [--rounds N]
#
#   --quick            the real 20k dataset only (about a minute)
#   --no-synth-jsonl   skip the JSON Lines import of the 1M x 128 set (its file is 1.3 GB)
#   --no-doc           do not append a section to Docs/Benchmarks.md
#   --rounds N         alternating Sextant/numpy search rounds (default 5 for 20k, 3 for 1M)
#
# Makes bench/.venv (numpy from PyPI), builds the CLI and bench/SextantBench in release mode with their
# own scratch paths, caches the data under bench/data/, writes raw results to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ ! -d ../shared/data/debian-minilm-20k ]; then
    echo "run.sh: ../shared/data/debian-minilm-20k is missing (the shared dataset sits beside the repository)" >&2
    exit 1
fi
for tool in swift python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 1; }
done

# 1. The venv with the peers.
if [ ! -x bench/.venv/bin/python ]; then
    echo "[run.sh] creating bench/.venv" >&2
    python3 -m venv bench/.venv
fi
if ! bench/.venv/bin/python -c 'import numpy' 2>/dev/null || ! bench/.venv/bin/pip freeze 2>/dev/null | grep -qxF -f bench/requirements.txt; then
    echo "[run.sh] installing bench/requirements.txt" >&2
    bench/.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
fi

# 2. Release builds. The first failure clears the scratch directory and rebuilds from scratch (SwiftPM can
#    miss a source file added to a path dependency and keep failing on a stale cache); after that, retry
#    once a minute (a concurrent edit may briefly break the build).
build() {
    local scratch=$1; shift
    local tries=0
    until "$@" --scratch-path "$scratch"; do
        tries=$((tries + 1))
        if [ "$tries" -ge 5 ]; then echo "run.sh: build failed: $*" >&2; exit 1; fi
        if [ "$tries" -eq 1 ]; then
            echo "[run.sh] build failed; clearing $scratch and rebuilding" >&2
            rm -rf "$scratch"
        else
            echo "[run.sh] build failed; retrying in 60 s ($tries/5)" >&2
            sleep 60
        fi
    done
}
echo "[run.sh] building (release)" >&2
build "$ROOT/.build-bench" swift build -c release --product sextant
build "$ROOT/.build-bench-pkg" swift build -c release --package-path bench/SextantBench

# 3. Data, measurements, report.
exec bench/.venv/bin/python bench/py/bench.py "$@"
