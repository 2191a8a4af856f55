#!/usr/bin/env bash
# The CI version of the crash soak (Tests/Soak/soak.py): 40 rounds of the mixed workload with SIGKILL at
# random moments, fixed seed, at most ~3 minutes of rounds. Exits non-zero when any round fails.
#
#   Tests/Soak/ci.sh [SEXTANT_BINARY]      (default: .build/release/sextant, else .build/debug/sextant)
#
# SOAK_ROUNDS, SOAK_SEED and SOAK_SECONDS override the defaults (40, 7, 180).
set -euo pipefail
cd "$(dirname "$0")/../.."

bin="${1:-}"
if [ -z "$bin" ]; then
  for candidate in .build/release/sextant .build/debug/sextant; do
    if [ -x "$candidate" ]; then bin="$candidate"; break; fi
  done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "soak: no sextant binary (build one, or pass its path)" >&2
  exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/sextant-soak-ci.XXXXXX")"
status=0
timeout "$(( ${SOAK_SECONDS:-180} + 120 ))" python3 Tests/Soak/soak.py --bin "$bin" --rounds "${SOAK_ROUNDS:-40}" --seed "${SOAK_SEED:-7}" \
  --time-limit "${SOAK_SECONDS:-180}" --full-every 10 --dir "$work" --json || status=$?
if [ "$status" -eq 0 ]; then
  rm -rf "$work"
else
  echo "soak: FAILED (exit $status); the failing rounds' databases and logs are in $work/failures" >&2
fi
exit "$status"
