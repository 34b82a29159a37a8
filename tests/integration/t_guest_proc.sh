#!/usr/bin/env bash
# Linux processes as files on real guests (Debian's cloud kernel, KASLR on,
# QEMU TCG): 4-level paging (qemu64) and 5-level (-cpu max, LA57); the
# profile both from Volatility's dwarf2json ISF (../shared/isf, when the
# machine has it) and from the kernel's own BTF plus the guest's kallsyms
# (vmemfs-profile).  guest_proc.py compares everything with the guest's
# own /proc and kallsyms.
. "$(dirname "$0")/lib.sh"
need_fuse
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-guest-proc.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ISF_DIR=${VMEMFS_ISF_DIR:-$SRC/../shared/isf}
PROFILE_TOOL=$BUILD/vmemfs-profile

ran=0
for cpu in qemu64 max; do
    out=$WORK/$cpu
    python3 "$SRC/contrib/guest/capture.py" --cpu $cpu --out "$out" --formats elf,kdump-zlib \
        >"$WORK/capture-$cpu.log" 2>&1 ||
        { cat "$WORK/capture-$cpu.log"; echo "FAIL: capture ($cpu)"; exit 1; }
    if [ -d "$ISF_DIR" ]; then
        python3 "$SRC/tests/integration/guest_proc.py" "$VMEMFS" "$out" "$ISF_DIR"
        python3 "$SRC/tests/integration/guest_proc.py" "$VMEMFS" "$out" "$ISF_DIR" guest.kdump
        ran=1
    else
        echo "NOTE: $ISF_DIR absent: the dwarf2json ISF part is skipped"
    fi
    if [ -x "$PROFILE_TOOL" ]; then
        vmlinuz=$(ls "${VMEMFS_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmemfs-guest}"/vmlinuz)
        grep '^KSYM ' "$out/truth.txt" | cut -d' ' -f2- > "$out/kallsyms"
        "$PROFILE_TOOL" --btf "$vmlinuz" --symbols "$out/kallsyms" -o "$out/btf-profile.json.xz"
        python3 "$SRC/tests/integration/guest_proc.py" "$VMEMFS" "$out" "$out/btf-profile.json.xz"
        ran=1
    else
        echo "NOTE: $PROFILE_TOOL not built: the BTF profile part is skipped"
    fi
    rm -rf "$out"
done
[ "$ran" = 1 ] || skip "no profile source: neither $ISF_DIR nor vmemfs-profile"
