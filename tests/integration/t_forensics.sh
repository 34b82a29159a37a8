#!/usr/bin/env bash
# The responder's files (issue 11) on a real guest, against the guest's own
# /proc (forensics.py):
#   dump   an ELF dump of the guest (capture.py);
#   vol    Volatility 3 on vmemfs's pmem.raw of that dump agreeing with the
#          files (forensics_vol.py; when ../shared/volatility3 is there and
#          a python3 with pefile: python3-pefile);
#   live   the same guest booted again and mounted live (qemu:QMP_SOCKET):
#          the same checks, then the files following the running guest.
# VMEMFS_FORENSICS_PARTS="dump vol live" picks parts.
. "$(dirname "$0")/lib.sh"
need_fuse
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing"
ISF_DIR=${VMEMFS_ISF_DIR:-$SRC/../shared/isf}
VOL3_DIR=${VMEMFS_VOL3_DIR:-$SRC/../shared/volatility3}
[ -d "$ISF_DIR" ] || skip "$ISF_DIR absent: no profile for the guest's kernel"
PARTS=${VMEMFS_FORENSICS_PARTS:-dump vol live}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-forensics.XXXXXX")
export VMEMFS_LIVE_WORK=$WORK PYTHONDONTWRITEBYTECODE=1
QEMU_PID=
cleanup() {
    [ -z "$QEMU_PID" ] || kill -9 "$QEMU_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=0
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
if part dump || part vol; then
    out=$WORK/g
    python3 "$SRC/contrib/guest/capture.py" --out "$out" --formats elf >"$WORK/capture.log" 2>&1 ||
        { cat "$WORK/capture.log"; echo "FAIL: capture"; exit 1; }
fi
if part dump; then
    t=$(date +%s)
    python3 "$SRC/tests/integration/forensics.py" "$VMEMFS" "$out" "$ISF_DIR" || failed=1
    echo "   dump: $(( $(date +%s) - t )) s"
fi
if part vol; then
    t=$(date +%s)
    if [ -f "$VOL3_DIR/vol.py" ]; then
        rc=0
        python3 "$SRC/tests/integration/forensics_vol.py" "$VMEMFS" "$out/guest.elf" "$ISF_DIR" \
            "$VOL3_DIR" || rc=$?
        [ "$rc" = 0 ] || [ "$rc" = 77 ] || failed=1
    else
        echo "NOTE: $VOL3_DIR absent: Volatility 3's agreement is not checked"
    fi
    echo "   vol: $(( $(date +%s) - t )) s"
fi
if part live; then
    t=$(date +%s)
    rm -rf "${out:-$WORK/g}"         # the dump is done with: its disk back
    live=$WORK/live
    python3 "$SRC/tests/integration/qemu_boot.py" --out "$live" --qmp2 "$WORK/qmp2.sock" \
        >"$WORK/boot.out" 2>"$WORK/boot.log" ||
        { tail -n 30 "$WORK/boot.log"; echo "FAIL: qemu_boot"; exit 1; }
    QEMU_PID=$(sed -n 's/^QEMU_PID=//p' "$WORK/boot.out")
    python3 "$SRC/tests/integration/forensics.py" "$VMEMFS" "$live" "$ISF_DIR" \
        "qemu:$live/qmp.sock" "$WORK/qmp2.sock" || failed=1
    echo "   live: $(( $(date +%s) - t )) s"
fi
[ "$failed" = 0 ] || { echo "FAIL: t_forensics"; exit 1; }
echo "PASS: t_forensics"
