#!/usr/bin/env bash
# The vmemfs plugin directory for Volatility 3 (contrib/volatility: a layer
# and a stacker that read info.json beside pmem.raw) on the guests
# Volatility 3 (2.11) alone finds no process in: a 5-level-paging guest
# (QEMU -cpu max: LA57) and Debian's 686-pae kernel (PAE).  linux.pslist and
# linux.psaux through `vol -p contrib/volatility` must list every process the
# guest listed, with its pid, name and parent (volatility_guest.py).
# Skips (77) without ../shared/volatility3 or python3-pefile; the PAE part
# is skipped, saying so, when the 686-pae kernel, its -dbg package or pahole
# cannot be had (contrib/guest/mkbtf.sh; ~820 MB the first time).
. "$(dirname "$0")/lib.sh"
need_fuse
need_volatility t_volatility_plugin
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing"
PROFILE_TOOL=$BUILD/vmemfs-profile
[ -x "$PROFILE_TOOL" ] || skip "$PROFILE_TOOL not built (libbpf missing?)"
ISF_DIR=${VMEMFS_ISF_DIR:-$SRC/../shared/isf}
PLUGIN=(--plugin "$SRC/contrib/volatility")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-volatility-plugin.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# 5-level paging: Debian's cloud kernel under -cpu max.
CAP=$WORK/la57
python3 "$SRC/contrib/guest/capture.py" --cpu max --out "$CAP" --formats elf \
    >"$WORK/capture-la57.log" 2>&1 || { tail -n 40 "$WORK/capture-la57.log"; echo "FAIL: capture (-cpu max)"; exit 1; }
if python3 "$SRC/tests/integration/linux_truth.py" "$CAP" --la57 yes; then
    if [ -d "$ISF_DIR/linux" ]; then
        SYM=$ISF_DIR
    else
        GUEST_DIR=$(sh "$SRC/contrib/guest/mkguest.sh" | tail -n 1)
        SYM=$WORK/btf
        mkdir -p "$SYM/linux"
        grep '^KSYM ' "$CAP/truth.txt" | cut -d' ' -f2- > "$WORK/kallsyms"
        "$PROFILE_TOOL" -q --btf "$GUEST_DIR/vmlinuz" --symbols "$WORK/kallsyms" \
            -o "$SYM/linux/$(cat "$GUEST_DIR/kernel-version").json.xz"
    fi
    python3 "$SRC/tests/integration/volatility_guest.py" dumps "$VMEMFS" "$CAP" "$SYM" \
        --only elf "${PLUGIN[@]}"
else
    echo "NOTE: QEMU's -cpu max gave no LA57 here: the 5-level part is skipped"
fi
rm -rf "$CAP"

# PAE: Debian's 686-pae kernel (KASLR on) under qemu-system-i386; its
# profile from the -dbg package's DWARF (as BTF) and System.map.
command -v qemu-system-i386 >/dev/null || skip "qemu-system-i386 missing (the 5-level part passed)"
export VMEMFS_GUEST_KPKG=linux-image-6.1.0-50-686-pae-unsigned
rc=0
sh "$SRC/contrib/guest/mkguest.sh" --arch i386 >"$WORK/mkguest.out" 2>"$WORK/mkguest.log" || rc=$?
[ $rc -eq 77 ] && skip "PAE part: $(grep 'cannot be had' "$WORK/mkguest.log" | tail -n 1) (the 5-level part passed)"
[ $rc -eq 0 ] || { tail -n 30 "$WORK/mkguest.log"; echo "FAIL: mkguest.sh --arch i386"; exit 1; }
GDIR=$(tail -n 1 "$WORK/mkguest.out")
rc=0
sh "$SRC/contrib/guest/mkbtf.sh" "$GDIR" >"$WORK/mkbtf.out" 2>"$WORK/mkbtf.log" || rc=$?
[ $rc -eq 77 ] && skip "PAE part: $(grep 'cannot be had' "$WORK/mkbtf.log" | tail -n 1) (the 5-level part passed)"
[ $rc -eq 0 ] || { tail -n 30 "$WORK/mkbtf.log"; echo "FAIL: mkbtf.sh"; exit 1; }
CAP=$WORK/pae
python3 "$SRC/contrib/guest/capture.py" --arch i386 --guest-dir "$GDIR" --out "$CAP" --formats elf \
    >"$WORK/capture-pae.log" 2>&1 || { tail -n 40 "$WORK/capture-pae.log"; echo "FAIL: capture (i386)"; exit 1; }
grep -q '^UNAME .*-686-pae$' "$CAP/truth.txt" ||
    { echo "FAIL: the guest is not a 686-pae kernel: $(grep '^UNAME' "$CAP/truth.txt")"; exit 1; }
SYM=$WORK/pae-symbols
mkdir -p "$SYM/linux"
"$PROFILE_TOOL" -q --btf "$GDIR/vmlinux-btf" --symbols "$GDIR/System.map" \
    -o "$SYM/linux/$(cat "$GDIR/kernel-version").json.xz"
python3 "$SRC/tests/integration/volatility_guest.py" dumps "$VMEMFS" "$CAP" "$SYM" \
    --only elf "${PLUGIN[@]}"
