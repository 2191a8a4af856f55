#!/usr/bin/env bash
# Replays the seed corpora and the saved crash reproducers through the plain (non-fuzzer) build of
# sextant-fuzz: the regression check CI runs. Exits non-zero if any input traps.
#
#   Fuzz/replay.sh [target...]      (default: every target with a corpus or regressions)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -j "${SEXTANT_BUILD_JOBS:-1}" --product sextant-fuzz >&2
bin="$(swift build --product sextant-fuzz --show-bin-path)/sextant-fuzz"
if [ "$#" -eq 0 ]; then
    set -- $( (ls Fuzz/Corpus; ls Fuzz/Regressions 2>/dev/null) | sort -u)
fi
failed=()
for target in "$@"; do
    inputs=()
    [ -d "Fuzz/Corpus/$target" ] && inputs+=("Fuzz/Corpus/$target")
    [ -d "Fuzz/Regressions/$target" ] && inputs+=("Fuzz/Regressions/$target")
    # Each file separately would name the culprit; SEXTANT_FUZZ_VERBOSE=1 prints each name before its run.
    "$bin" "$target" "${inputs[@]}" || failed+=("$target")
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "replay failed for: ${failed[*]} (rerun with SEXTANT_FUZZ_VERBOSE=1 to see the input)" >&2
    exit 1
fi
