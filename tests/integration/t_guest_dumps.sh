#!/usr/bin/env bash
# A real Debian guest (QEMU TCG) captured by QMP as ELF, kdump-zlib (both the
# flattened stream QEMU 7.2 writes and the plain file) and padded raw, for a
# 256 MiB guest and a 4.5 GiB one (RAM above 4 GiB, a hole below it); all
# mounted in one vmemfs and checked against the raw capture byte for byte.
. "$(dirname "$0")/lib.sh"
need_fuse
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-guest-dumps.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
need_gb=$((6 + 1))
avail_gb=$(df -Pk "$WORK" | awk 'NR==2 {print int($4/1048576)}')
[ "$avail_gb" -ge "$need_gb" ] || skip "needs ${need_gb} GiB free in $WORK (has ${avail_gb})"

for mem in 256M 4608M; do
    out=$WORK/g$mem
    python3 "$SRC/contrib/guest/capture.py" --mem $mem --out "$out" >"$WORK/capture-$mem.log" 2>&1 ||
        { cat "$WORK/capture-$mem.log"; echo "FAIL: capture of the $mem guest"; exit 1; }
    python3 "$SRC/tests/integration/guest_dumps.py" "$VMEMFS" "$out"
    rm -rf "$out"
done
