#!/usr/bin/env bash
# Runs the tests under the sanitizers (issue 10, "Sanitizers"); see Docs/Reliability.md, "Sanitizers".
#
#   Scripts/sanitizers.sh thread    ThreadSanitizer: the tests that run threads against one another
#   Scripts/sanitizers.sh address   AddressSanitizer: the whole library suite (the CLI tests run the
#                                   un-instrumented `sextant` binary, so they are left to the plain run)
#   Scripts/sanitizers.sh           both
#
# Each sanitizer builds into its own scratch directory (.build-tsan, .build-asan). Exit status non-zero if a
# test fails or a sanitizer reports (a report aborts the test process: halt_on_error=1).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="/opt/swift/usr/bin:$PATH"
fi

# The suites where threads meet: writers, readers, flushes, compactions and graph builds at once; async
# imports; concurrent writers under simulated power cuts; the commit queue; damaged-graph fallbacks.
THREAD_FILTER="${SEXTANT_TSAN_FILTER:-ConcurrencyTests|AsyncImportTests|CollectionBasicsTests|HNSWCollectionTests|FaultInjectionTests|HostileFileTests|BackupTests|SnapshotTests|PowerCutTests|ModelTests|CheckpointOrderTests}"

run_thread() {
  echo "== ThreadSanitizer: $THREAD_FILTER"
  local start=$SECONDS
  swift build --build-tests --sanitize=thread --scratch-path .build-tsan
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
    swift test --skip-build --sanitize=thread --scratch-path .build-tsan --filter "$THREAD_FILTER"
  echo "== ThreadSanitizer: clean in $((SECONDS - start)) s"
}

run_address() {
  echo "== AddressSanitizer: the library suite"
  local start=$SECONDS
  swift build --build-tests --sanitize=address --scratch-path .build-asan
  # detect_leaks=0: mappings and pooled search contexts live as long as the process by design; ASan's
  # leak checker reports them at exit. Out-of-bounds, use-after-free and double free are what this run is for.
  ASAN_OPTIONS="halt_on_error=1 detect_leaks=0 ${ASAN_OPTIONS:-}" \
    swift test --skip-build --sanitize=address --scratch-path .build-asan --skip SextantCLITests
  echo "== AddressSanitizer: clean in $((SECONDS - start)) s"
}

case "${1:-both}" in
  thread) run_thread ;;
  address) run_address ;;
  both) run_thread; run_address ;;
  *) echo "usage: $0 [thread|address|both]" >&2; exit 2 ;;
esac
