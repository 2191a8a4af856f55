#!/usr/bin/env bash
# Runs the libFuzzer targets of Sources/SextantFuzz, one at a time.
#
#   Fuzz/run.sh [seconds-per-target] [target...]      (default: 60 s, every target)
#
# Builds the fuzzer binary once (-sanitize=fuzzer,address, into .build-fuzz), then runs each target for the
# given time from its seed corpus (Fuzz/Corpus/<target>, read-only) and a work corpus (Fuzz/.work/<target>,
# gitignored). Prints executions, coverage and crashes per target; exits 1 if any target crashed, naming
# the reproducer (copy it to Fuzz/Regressions/<target>/ and replay it with Fuzz/replay.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
jobs="${SEXTANT_FUZZ_BUILD_JOBS:-1}"

flags=(-Xswiftc -sanitize=fuzzer,address -Xswiftc -DSEXTANT_FUZZ -Xswiftc -parse-as-library)
swift build -j "$jobs" --scratch-path .build-fuzz --product sextant-fuzz "${flags[@]}" >&2
bin="$(swift build --scratch-path .build-fuzz --product sextant-fuzz "${flags[@]}" --show-bin-path)/sextant-fuzz"

if [ "$#" -eq 0 ]; then
    set -- $(ls Fuzz/Corpus)
fi

failed=0
printf '%-15s %10s %8s %8s  %s\n' target execs cov ft result
for target in "$@"; do
    work="Fuzz/.work/$target"
    artifacts="Fuzz/.work/crashes/$target/"
    mkdir -p "$work" "$artifacts"
    log="Fuzz/.work/$target.log"
    corpora=("$work")
    [ -d "Fuzz/Corpus/$target" ] && corpora+=("Fuzz/Corpus/$target")
    [ -d "Fuzz/Regressions/$target" ] && corpora+=("Fuzz/Regressions/$target")
    set +e
    # -detect_leaks=0 (libFuzzer) and ASAN_OPTIONS=detect_leaks=0 (the check at exit): LeakSanitizer reports
    # Foundation's FileManager.contents buffers (harness code) as leaks, and at exit libFuzzer then writes an
    # empty "crash" file. Memory errors are what these runs are for.
    ASAN_OPTIONS="detect_leaks=0 ${ASAN_OPTIONS:-}" SEXTANT_FUZZ_TARGET="$target" "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -detect_leaks=0 \
        -artifact_prefix="$artifacts" -print_final_stats=1 "${corpora[@]}" >"$log" 2>&1
    status=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    if [ "$status" -eq 0 ]; then
        result="ok"
    else
        failed=1
        repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        result="CRASH (exit $status): ${repro:-see $log}"
        grep -m1 -E 'ERROR: AddressSanitizer|Fatal error|invariant broken|ERROR: libFuzzer|SUMMARY' "$log" | sed 's/^/    /' || true
    fi
    printf '%-15s %10s %8s %8s  %s\n' "$target" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
exit "$failed"
