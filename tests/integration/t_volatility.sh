#!/usr/bin/env bash
# Volatility 3 (../shared/volatility3, unmodified) on vmemfs: linux.pslist
# and linux.psaux on pmem.raw of the test guest (Debian's cloud kernel, QEMU
# TCG, 256 MiB) captured as ELF, kdump (plain and flattened) and LiME, and of
# the live guest mounted with --freeze-on-open; with the shared ISF
# (../shared/isf, dwarf2json) and with an ISF vmemfs-profile makes from the
# kernel's BTF and the guest's kallsyms.  Every process the guest listed must
# be there with its pid, name and parent (volatility_guest.py).  Skips
# (77) when ../shared/volatility3 or python3-pefile is absent.
. "$(dirname "$0")/lib.sh"
need_fuse
need_volatility t_volatility
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing"
ISF_DIR=${VMEMFS_ISF_DIR:-$SRC/../shared/isf}
PROFILE_TOOL=$BUILD/vmemfs-profile

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-volatility.XXXXXX")
QEMU_PID=
cleanup() {
    [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

CAP=$WORK/cap
python3 "$SRC/contrib/guest/capture.py" --out "$CAP" --formats elf,kdump-zlib,raw \
    >"$WORK/capture.log" 2>&1 || { tail -n 40 "$WORK/capture.log"; echo "FAIL: capture"; exit 1; }

# Symbol directories, each holding linux/<release>.json.xz (Volatility's
# layout; vmemfs's --symbols takes the same directory).
SYMDIRS=()
if [ -d "$ISF_DIR/linux" ]; then
    SYMDIRS+=("$ISF_DIR")
else
    echo "NOTE: $ISF_DIR absent: the dwarf2json ISF part is skipped"
fi
if [ -x "$PROFILE_TOOL" ]; then
    GUEST_DIR=$(sh "$SRC/contrib/guest/mkguest.sh" | tail -n 1)
    mkdir -p "$WORK/btf/linux"
    grep '^KSYM ' "$CAP/truth.txt" | cut -d' ' -f2- > "$WORK/kallsyms"
    "$PROFILE_TOOL" -q --btf "$GUEST_DIR/vmlinuz" --symbols "$WORK/kallsyms" \
        -o "$WORK/btf/linux/$(cat "$GUEST_DIR/kernel-version").json.xz"
    SYMDIRS+=("$WORK/btf")
else
    echo "NOTE: $PROFILE_TOOL not built: the BTF ISF part is skipped"
fi
[ ${#SYMDIRS[@]} -gt 0 ] || skip "no ISF: neither $ISF_DIR nor vmemfs-profile"

# The shared ISF as Volatility alone uses it (banner scan, KASLR search).
# The BTF ISF with the vmemfs plugin directory: the guest's few KSYM lines
# give vmemfs-profile no init_files, which Volatility's own KASLR search
# needs (a full /proc/kallsyms or System.map would); the plugin takes the
# KASLR shift from info.json instead.
PLUGIN=(--plugin "$SRC/contrib/volatility")
for sym in "${SYMDIRS[@]}"; do
    if [ "$sym" = "$ISF_DIR" ]; then
        python3 "$SRC/tests/integration/volatility_guest.py" dumps "$VMEMFS" "$CAP" "$sym"
    else
        python3 "$SRC/tests/integration/volatility_guest.py" dumps "$VMEMFS" "$CAP" "$sym" "${PLUGIN[@]}"
    fi
done
rm -rf "$CAP"

# Live: the same guest running, frozen while Volatility has pmem.raw open.
python3 "$SRC/tests/integration/qemu_boot.py" --out "$WORK/live" >"$WORK/live.env" 2>"$WORK/live.log" ||
    { tail -n 40 "$WORK/live.log"; echo "FAIL: qemu_boot.py"; exit 1; }
QEMU_PID=$(sed -n 's/^QEMU_PID=//p' "$WORK/live.env")
SOCK=$(sed -n 's/^QMP_SOCKET=//p' "$WORK/live.env")
if [ "${SYMDIRS[0]}" = "$ISF_DIR" ]; then
    python3 "$SRC/tests/integration/volatility_guest.py" live "$VMEMFS" "$WORK/live" "$SOCK" "$ISF_DIR"
else
    python3 "$SRC/tests/integration/volatility_guest.py" live "$VMEMFS" "$WORK/live" "$SOCK" \
        "${SYMDIRS[0]}" "${PLUGIN[@]}"
fi
