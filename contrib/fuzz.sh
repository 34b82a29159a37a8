#!/usr/bin/env bash
# fuzz.sh - runs every libFuzzer target (tests/fuzz/fuzz_*.c) for a while,
# starting from its corpus, with ASan and UBSan.  Not part of the tests
# (ctest replays the corpora on every run); this is the search for new
# crashes.  Findings are left in the work directory as crash-* files.
#
#   contrib/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 120, all)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${VMEMFS_FUZZ_BUILD:-$SRC/build-fuzz}
SECS=${1:-120}
shift || true
"$SRC/contrib/install-deps.sh"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DVMEMFS_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(cd "$SRC/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//'))
work=$BUILD/fuzz-work
for t in "${targets[@]}"; do
    mkdir -p "$work/$t/corpus"
    cp -n "$SRC/tests/fuzz/corpus/$t/"* "$work/$t/corpus/" 2>/dev/null || true
    echo "== $t: $SECS s"
    (cd "$work/$t" && ASAN_OPTIONS=allocator_may_return_null=1 \
        "$(find "$BUILD" -name "$t" -type f -perm -u+x | head -1)" \
        -max_total_time="$SECS" -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -print_final_stats=1 corpus 2>&1 | tail -4)
done
