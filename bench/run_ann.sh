#!/usr/bin/env bash
# Issue 3's benchmark: Sextant's HNSW side by side with hnswlib, faiss-cpu and usearch, in one command
# (see Docs/Benchmarks.md, "HNSW vs peers").
#
#   bash bench/run_ann.sh [--quick] [--no-doc] [--rounds N] [--no-sextant] [--keep] [--datasets KEY,...]
#
#   --quick        the real 20k dataset only (a few minutes)
#   --no-doc       do not append a section to Docs/Benchmarks.md
#   --rounds N     alternating search rounds (default 3)
#   --no-sextant   the peers only
#   --keep         keep the built indexes under bench/data/ann/
#
# Makes bench/.venv with bench/requirements-ann.txt (PyPI), builds bench/SextantBench in release mode with
# its own scratch path — with the HNSW subcommands once the library has `IndexConfiguration` — caches the
# data under bench/data/, writes raw results to bench/results/ann-*/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ ! -d ../shared/data/debian-minilm-20k ]; then
    echo "run_ann.sh: ../shared/data/debian-minilm-20k is missing (the shared dataset sits beside the repository)" >&2
    exit 1
fi
for tool in swift python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "run_ann.sh: $tool is required" >&2; exit 1; }
done

# 1. The venv with the peers (pinned).
if [ ! -x bench/.venv/bin/python ]; then
    echo "[run_ann.sh] creating bench/.venv" >&2
    python3 -m venv bench/.venv
fi
if ! bench/.venv/bin/python - bench/requirements-ann.txt <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    name, _, want = line.strip().partition("==")
    if name and version(name) != want:
        sys.exit(1)
PY
then
    echo "[run_ann.sh] installing bench/requirements-ann.txt" >&2
    bench/.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements-ann.txt
fi

# 2. The benchmark driver, with the HNSW subcommands when the library has the API. A failed build clears
#    the scratch directory once (SwiftPM can keep a stale cache), then retries once a minute (the library
#    may be mid-edit); if it still fails, the peers run alone.
export SEXTANT_BENCH_HNSW=0
if grep -rqs "struct IndexConfiguration" Sources/Sextant; then
    export SEXTANT_BENCH_HNSW=1
fi
SCRATCH="$ROOT/.build-bench-pkg"
tries=0
built=1
until swift build -c release --package-path bench/SextantBench --scratch-path "$SCRATCH"; do
    tries=$((tries + 1))
    if [ "$tries" -ge "${SEXTANT_BENCH_BUILD_TRIES:-5}" ]; then built=0; break; fi
    if [ "$tries" -eq 1 ]; then
        echo "[run_ann.sh] build failed; clearing $SCRATCH and rebuilding" >&2
        rm -rf "$SCRATCH"
    else
        echo "[run_ann.sh] build failed; retrying in 60 s ($tries/${SEXTANT_BENCH_BUILD_TRIES:-5})" >&2
        sleep 60
    fi
done
EXTRA=()
if [ "$built" -eq 0 ]; then
    echo "[run_ann.sh] sextant-bench does not build; running the peers only" >&2
    EXTRA=(--no-sextant)
elif [ "$SEXTANT_BENCH_HNSW" != 1 ]; then
    echo "[run_ann.sh] the library has no IndexConfiguration yet; running the peers only" >&2
fi

# 3. Data, measurements, report.
export SEXTANT_ANN_VIA=run_ann.sh
exec bench/.venv/bin/python bench/py/ann.py "${EXTRA[@]}" "$@"
