#!/usr/bin/env bash
# The responder's files (issue 11) on a real guest: an ELF dump and the
# same guest live (QMP), each against the guest's own /proc (forensics.py),
# and Volatility 3 on the dump agreeing (forensics_vol.py, when
# ../shared/volatility3 is there).
. "$(dirname "$0")/lib.sh"
need_fuse
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing"
ISF_DIR=${VMEMFS_ISF_DIR:-$SRC/../shared/isf}
[ -d "$ISF_DIR" ] || skip "$ISF_DIR absent: no profile for the guest's kernel"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-forensics.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
out=$WORK/g
python3 "$SRC/contrib/guest/capture.py" --out "$out" --formats elf >"$WORK/capture.log" 2>&1 ||
    { cat "$WORK/capture.log"; echo "FAIL: capture"; exit 1; }
python3 "$SRC/tests/integration/forensics.py" "$VMEMFS" "$out" "$ISF_DIR"
