#!/usr/bin/env bash
# Linux introspection (core/linux.c) on a real guest, without FUSE: Debian's
# 6.1 cloud kernel (KASLR on) booted under QEMU TCG by
# contrib/guest/capture.py, captured as ELF and kdump-zlib (both with the
# vCPU's registers) and padded raw (none: the paging mode and the kernel
# then come from memory alone), once with 4-level
# paging (-cpu qemu64) and once with 5-level (-cpu max, LA57).  For each dump
# test_linux_dump (a cmocka program) opens the OS with the shared kernel
# profile and compares processes, pattern memory read through each
# process's page tables, and maps text with the guest's own truth.txt.
. "$(dirname "$0")/lib.sh"

command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing"
command -v python3 >/dev/null || skip "python3 missing"
ISF_DIR=${VMEMFS_ISF_DIR:-$SRC/../shared/isf}
[ -d "$ISF_DIR" ] || skip "no kernel profile directory ($ISF_DIR; set VMEMFS_ISF_DIR)"
TEST=""
for t in "$BUILD/tests/test_linux_dump" "$BUILD/test_linux_dump"; do
    [ -x "$t" ] && TEST=$t && break
done
[ -n "$TEST" ] || skip "test_linux_dump not built (cmocka missing?)"
export VMEMFS_ISF_DIR=$ISF_DIR

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-linux-dump.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
avail_mb=$(df -Pk "$WORK" | awk 'NR==2 {print int($4/1024)}')
[ "$avail_mb" -ge 1024 ] || skip "needs 1 GiB free in $WORK (has ${avail_mb} MiB)"

ran=0
for cpu in qemu64 max; do
    la57=no
    [ "$cpu" = max ] && la57=yes
    out=$WORK/g-$cpu
    python3 "$SRC/contrib/guest/capture.py" --cpu $cpu --mem 256M \
        --formats elf,kdump-zlib,raw --out "$out" >"$WORK/capture-$cpu.log" 2>&1 ||
        { cat "$WORK/capture-$cpu.log"; echo "FAIL: capture of the -cpu $cpu guest"; exit 1; }
    rc=0
    python3 "$SRC/tests/integration/linux_truth.py" "$out" --la57 $la57 || rc=$?
    if [ $rc -eq 77 ]; then
        echo "NOTE: -cpu $cpu did not give LA57=$la57 here: that paging mode is not tested"
        rm -rf "$out"
        continue
    fi
    [ $rc -eq 0 ] || exit 1
    for f in guest.elf guest.kdump guest.raw; do
        echo "== -cpu $cpu ($la57 LA57) $f"
        VMEMFS_LINUX_DUMP=$out VMEMFS_LINUX_DUMP_FILE=$f "$TEST" ||
            { echo "FAIL: test_linux_dump on -cpu $cpu $f"; exit 1; }
        ran=$((ran + 1))
    done
    rm -rf "$out"
done
[ $ran -gt 0 ] || skip "no capture could be tested"
echo "PASS: $ran dumps"
