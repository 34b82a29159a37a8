#!/usr/bin/env bash
# The qemu driver (qemu:QMP_SOCKET) against a real running guest under QEMU
# TCG, without FUSE: tests/unit/test_qemu_live.c drives the driver directly.
# Three guests of 256 MiB, 2 vCPUs: one with plain RAM (the driver reads
# QEMU's process memory), one with its RAM in a shared file
# (memory-backend-file share=on: the zero-copy path), one in a memfd
# (memory-backend-memfd: shared, reached through /proc/PID/map_files).  Each: ranges as capture.py computes them,
# all RAM of the paused guest equal to a QMP pmemsave, vCPUs, a counter that
# moves while the guest runs, concurrent readers, writes (reopened
# read-write), QEMU stopped (QMP times out), then QEMU killed during reads:
# reads and QMP calls fail cleanly, without hanging.
# Two more guests start paused (-S, as libvirt starts them), process memory
# and memfd: opened while RAM is blank, continued and booted by the test,
# then refresh() must see the firmware's shadow RAM at 0xc0000-0xfffff and
# verify the block taken blank; then the same checks as above.
# VMEMFS_QEMU_MEM=4608M runs the same with RAM above 4 GiB (slower).
. "$(dirname "$0")/lib.sh"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing"
command -v python3 >/dev/null || skip "python3 missing"
LIVE=$BUILD/tests/test_qemu_live
[ -x "$LIVE" ] || LIVE=$(find "$BUILD" -name test_qemu_live -type f -perm -u+x 2>/dev/null | head -n1)
[ -n "$LIVE" ] && [ -x "$LIVE" ] || skip "test_qemu_live not built (cmocka missing?)"
MEM=${VMEMFS_QEMU_MEM:-256M}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-qemu.XXXXXX")
SHMDIR=/dev/shm
[ -d "$SHMDIR" ] && [ -w "$SHMDIR" ] || SHMDIR=$WORK
SHARED=$SHMDIR/vmemfs-qemu-test.$$.ram
QPID=
cleanup() {
    # Only the QEMU this script started.
    if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then kill -9 "$QPID" 2>/dev/null || true; fi
    rm -f "$SHARED"
    rm -rf "$WORK"
}
trap cleanup EXIT

run() {   # NAME EXPECTED_PATH [qemu_boot.py options]
    local name=$1 want=$2
    shift 2
    local out=$WORK/$name
    if ! python3 "$SRC/tests/integration/qemu_boot.py" --out "$out" --mem "$MEM" --smp 2 "$@" \
            >"$WORK/$name.boot" 2>"$WORK/$name.log"; then
        cat "$WORK/$name.log"
        echo "FAIL: booting the $name guest"
        exit 1
    fi
    QPID=$(sed -n 's/^QEMU_PID=//p' "$WORK/$name.boot")
    local sock
    sock=$(sed -n 's/^QMP_SOCKET=//p' "$WORK/$name.boot")
    echo "== $name: QEMU pid $QPID, $MEM, expecting '$want'"
    if ! VMEMFS_QMP_SOCK=$sock VMEMFS_QEMU_OUT=$out VMEMFS_QEMU_PATH=$want \
         VMEMFS_QEMU_KILL=1 VMEMFS_QEMU_PAUSED_START=${PAUSED:-0} "$LIVE"; then
        echo "FAIL: $name"
        exit 1
    fi
    # test_killed killed it; make sure.
    kill -9 "$QPID" 2>/dev/null || true
    QPID=
    rm -f "$SHARED"
}

run process "process memory"
run shared "shared file" --shared-ram "$SHARED"
run memfd "shared file" --memfd
PAUSED=1 run prestart "process memory" --paused-start
PAUSED=1 run prestart-memfd "shared file" --memfd --paused-start
echo "PASS: qemu driver, all data paths"
