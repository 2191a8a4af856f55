#!/usr/bin/env bash
# Issue 4's benchmark: metadata-filtered vector search (Sextant vs hnswlib post-filtering and hnswlib's
# filter callback) and BM25 full-text search (Sextant vs SQLite FTS5), in one command (see
# Docs/Benchmarks.md, "issue 4, filtered search and BM25").
#
#   bash bench/run_query.sh [--no-doc] [--rounds N] [--max-queries N] [--reuse] [--keep]
#
#   --no-doc          do not append a section to Docs/Benchmarks.md
#   --rounds N        alternating measurement rounds (default 3)
#   --max-queries N   the first N of the 500 queries only (a quick check)
#   --reuse           reuse the Sextant database and hnswlib index left under bench/data/query/ by --keep
#   --keep            keep the databases under bench/data/query/
#
# Makes bench/.venv with bench/requirements-ann.txt (PyPI; hnswlib is the peer used here, SQLite FTS5 comes
# with Python's sqlite3), builds the CLI (`sextant`, to create and import the database) and
# bench/SextantBench (`sextant-bench filtered` / `text`) in release mode with their own scratch paths,
# writes raw results to bench/results/query-*/. About 5 minutes, most of it hnswlib's post-filtering at
# 0.1 % and the FTS5 OR queries.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ ! -d ../shared/data/debian-minilm-20k ]; then
    echo "run_query.sh: ../shared/data/debian-minilm-20k is missing (the shared dataset sits beside the repository)" >&2
    exit 1
fi
for tool in swift python3; do
    command -v "$tool" >/dev/null || { echo "run_query.sh: $tool is required" >&2; exit 1; }
done

# 1. The venv with the peers (pinned).
if [ ! -x bench/.venv/bin/python ]; then
    echo "[run_query.sh] creating bench/.venv" >&2
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
    echo "[run_query.sh] installing bench/requirements-ann.txt" >&2
    bench/.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements-ann.txt
fi
if ! bench/.venv/bin/python -c "import sqlite3; sqlite3.connect(':memory:').execute('CREATE VIRTUAL TABLE t USING fts5(x)')" 2>/dev/null; then
    echo "run_query.sh: this Python's sqlite3 has no FTS5" >&2
    exit 1
fi

# 2. Release builds, each in its own scratch path (never the developer's .build). A failed build clears its
#    scratch directory once (SwiftPM can keep a stale cache), then retries once a minute (the library may
#    be mid-edit).
build() {
    local scratch=$1; shift
    local tries=0
    until "$@" --scratch-path "$scratch"; do
        tries=$((tries + 1))
        if [ "$tries" -ge "${SEXTANT_BENCH_BUILD_TRIES:-5}" ]; then
            echo "run_query.sh: the build failed $tries times: $*" >&2
            exit 1
        fi
        if [ "$tries" -eq 1 ]; then
            echo "[run_query.sh] build failed; clearing $scratch and rebuilding" >&2
            rm -rf "$scratch"
        else
            echo "[run_query.sh] build failed; retrying in 60 s ($tries/${SEXTANT_BENCH_BUILD_TRIES:-5})" >&2
            sleep 60
        fi
    done
}
build "$ROOT/.build-bench" swift build -c release --product sextant
build "$ROOT/.build-bench-pkg" swift build -c release --package-path bench/SextantBench

# 3. Data, measurements, report.
export SEXTANT_QUERY_VIA=run_query.sh
exec bench/.venv/bin/python bench/py/query_bench.py "$@"
