#!/usr/bin/env bash
# Live VMs through FUSE, as users use them: real Debian guests running under
# QEMU TCG (tests/integration/qemu_boot.py), mounted with qemu:QMP_SOCKET and
# --qemu-dir, compared with what QEMU itself says over a second QMP socket.
#   live_vms.py       two 256 MiB guests (shared RAM file / process memory) in
#                     one mount: pmem.raw vs dump-guest-memory while paused,
#                     the guest's counter through proc/<pid>/vmem (cache
#                     validity, flush, pause, resume), --freeze-on-open,
#                     EROFS without -o rw, writes with -o rw
#   live_qemu_dir.py  --qemu-dir: guests appearing, a QEMU killed during
#                     reads (EIO, directory gone, the other guest unharmed),
#                     a socket removed
#   live_big.py       4608 MiB with RAM above 4 GiB: size, the hole below
#                     4 GiB, data above 4 GiB vs dump-guest-memory
#   live_signal.py    SIGTERM/SIGINT with a pmem.raw held under
#                     --freeze-on-open: the guest resumed, exit 0
# The proc/-based checks need the Volatility ISF ($VMEMFS_SRC/../shared/isf,
# or VMEMFS_ISF_DIR); without it they are skipped (said so) and the counter
# is read through pmem.  VMEMFS_LIVE_PARTS="vms qemu_dir big" picks parts.
. "$(dirname "$0")/lib.sh"
need_fuse
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
command -v python3 >/dev/null || skip "python3 missing"

PARTS=${VMEMFS_LIVE_PARTS:-vms qemu_dir big signal}
ISF_DIR=${VMEMFS_ISF_DIR:-$SRC/../shared/isf}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-live.XXXXXX")
SHMDIR=/dev/shm
[ -d "$SHMDIR" ] && [ -w "$SHMDIR" ] || SHMDIR=$WORK
SHM=$SHMDIR/vmemfs-live.$$
export VMEMFS_LIVE_WORK=$WORK PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the source tree

# Everything this run started: QEMUs carry $WORK in their command line (their
# serial log lives there), killed by pid; mounts are under $WORK.  Reaped
# after each part too, so a part that dies leaves nothing to the next.
reap() {
    local p cmd
    for p in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        case $cmd in
            *qemu-system*"$WORK"*) kill -9 "${p#/proc/}" 2>/dev/null || true ;;
        esac
    done
    for p in "$WORK"/mnt*; do
        fusermount3 -u -z "$p" 2>/dev/null || true     # a dead mount too
        rmdir "$p" 2>/dev/null || true
    done
    rm -f "$SHM".*
}
cleanup() {
    reap
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -d "$ISF_DIR" ]; then
    SYMBOLS=$ISF_DIR
else
    SYMBOLS=
    echo "NOTE: $ISF_DIR absent: the proc/-based checks are skipped"
fi

# Build the guest once, up front (cached), so the parts only boot it.
sh "$SRC/contrib/guest/mkguest.sh" >"$WORK/mkguest.log" 2>&1 ||
    { tail -n 30 "$WORK/mkguest.log"; echo "FAIL: mkguest.sh"; exit 1; }

failed=0
start=$(date +%s)
for part in $PARTS; do
    t=$(date +%s)
    echo "== live_$part"
    case $part in
        vms)
            python3 "$SRC/tests/integration/live_vms.py" "$VMEMFS" "$WORK" "$SHM" $SYMBOLS || failed=1 ;;
        qemu_dir)
            python3 "$SRC/tests/integration/live_qemu_dir.py" "$VMEMFS" "$WORK" "$SHM" $SYMBOLS || failed=1 ;;
        big)
            # 4.5 GiB of guest RAM in $SHMDIR (sparse: ~0.3 GiB used) and a
            # 2.5 GiB dump of the RAM above 4 GiB.
            room=$(df -P -k "$SHMDIR" | awk 'NR==2 {print $4}')
            if [ "$room" -lt $((6 * 1024 * 1024)) ]; then
                echo "NOTE: live_big skipped: $SHMDIR has $((room / 1024)) MiB free, needs 6 GiB"
                continue
            fi
            python3 "$SRC/tests/integration/live_big.py" "$VMEMFS" "$WORK" "$SHM" || failed=1 ;;
        signal)
            python3 "$SRC/tests/integration/live_signal.py" "$VMEMFS" "$WORK" "$SHM" || failed=1 ;;
        *)
            echo "unknown part '$part' (vms qemu_dir big signal)"; exit 2 ;;
    esac
    reap
    echo "   live_$part: $(( $(date +%s) - t )) s"
done
echo "t_live: $(( $(date +%s) - start )) s"
[ "$failed" = 0 ] || { echo "FAIL: t_live"; exit 1; }
echo "PASS: t_live"
