#!/usr/bin/env bash
# test.sh - runs every test of vmemfs, the way CI does: installs what is
# missing (Debian packages), builds with AddressSanitizer and UBSan, and
# runs ctest: cmocka unit tests, fuzz-corpus replays, and integration tests
# that mount real FUSE file systems (on synthetic dumps and on dumps of a
# real Debian guest booted under QEMU TCG).
#
#   contrib/test.sh [ctest args...]      e.g. contrib/test.sh -L unit
#
# Environment: VMEMFS_TEST_BUILD (default build-test), VMEMFS_SKIP_DEPS=1,
# VMEMFS_TEST_JOBS (tests run at once, default 2).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${VMEMFS_TEST_BUILD:-$SRC/build-test}

[ "${VMEMFS_SKIP_DEPS:-0}" = 1 ] || "$SRC/contrib/install-deps.sh"

cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DVMEMFS_SANITIZE=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)"

# Sanitizers: any report fails the test; leaks are checked too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allow_user_segv_handler=1:handle_sigbus=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cd "$BUILD"
# Two at a time: most integration tests wait on a guest under QEMU TCG (one
# core each), and the suite stays well under its time budget on 2 cores.
# VMEMFS_TEST_JOBS=1 runs them one by one.
ctest --output-on-failure --timeout 3000 -j "${VMEMFS_TEST_JOBS:-2}" "$@"
