#!/usr/bin/env bash
# Linux guests with no symbol file at all (issue 10): vmemfs builds the
# profile from the kernel's own BTF and kallsyms in guest memory.
#   - Debian's 6.1 cloud kernel (its kallsyms with seqs_of_names before the
#     token table), 4- and 5-level paging, ELF and kdump: guest_proc.py with
#     no profile checks processes, maps and vmem bytes against the guest;
#   - Volatility 3 with the mount's own symbols/ directory (when
#     ../shared/volatility3 is there; VMEMFS_SKIP_VOL=1 leaves it out);
#   - Debian's 6.12 cloud kernel (the 6.4+ order: offsets after the token
#     index), built into a cache dir of its own;
#   - Debian's 686-pae (no BTF): the clear message.
. "$(dirname "$0")/lib.sh"
need_fuse
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing"
[ -x "$BUILD/vmemfs-profile" ] || skip "built without libbpf: no profiles from BTF"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-noprofile.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# The profile is built at mount: seconds, tens under ASan on a busy machine.
export VMEMFS_MOUNT_TIMEOUT=${VMEMFS_MOUNT_TIMEOUT:-180}
GP=$SRC/tests/integration/guest_proc.py
EX=$SRC/tests/integration/noprofile_extra.py

for cpu in qemu64 max; do
    out=$WORK/$cpu
    python3 "$SRC/contrib/guest/capture.py" --cpu $cpu --out "$out" --formats elf,kdump-zlib \
        >"$WORK/capture-$cpu.log" 2>&1 ||
        { cat "$WORK/capture-$cpu.log"; echo "FAIL: capture ($cpu)"; exit 1; }
    python3 "$GP" "$VMEMFS" "$out" -
    python3 "$GP" "$VMEMFS" "$out" - guest.kdump
    # vmemfs-profile --from-image writes the file the mount offers.
    "$BUILD/vmemfs-profile" -q --from-image "$out/guest.elf" -o "$out/p.json"
    python3 "$GP" "$VMEMFS" "$out" "$out/p.json"
    if [ $cpu = qemu64 ] && [ -z "${VMEMFS_SKIP_VOL:-}" ] &&
       [ -f "$SRC/../shared/volatility3/vol.py" ]; then
        VOL=$SRC/../shared/volatility3/vol.py python3 "$EX" "$VMEMFS" "$out" vol
    fi
    rm -rf "$out"
done

# The 6.4+ kallsyms layout: Debian 12's 6.12 cloud kernel.
KPKG=$(apt-cache pkgnames linux-image-6.12 2>/dev/null | grep -E '^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$' | sort -V | tail -1)
if [ -n "$KPKG" ]; then
    G612=${VMEMFS_GUEST_CACHE_612:-${XDG_CACHE_HOME:-$HOME/.cache}/vmemfs-guest-612}
    if VMEMFS_GUEST_KPKG=$KPKG VMEMFS_GUEST_CACHE=$G612 "$SRC/contrib/guest/mkguest.sh" \
            >"$WORK/mk612.log" 2>&1; then
        python3 "$SRC/contrib/guest/capture.py" --guest-dir "$G612" --out "$WORK/g612" \
            --formats elf >"$WORK/capture-612.log" 2>&1 ||
            { cat "$WORK/capture-612.log"; echo "FAIL: capture (6.12)"; exit 1; }
        python3 "$GP" "$VMEMFS" "$WORK/g612" -
        rm -rf "$WORK/g612"
    else
        echo "NOTE: the 6.12 guest could not be built: $(tail -1 "$WORK/mk612.log")"
    fi
else
    echo "NOTE: no linux-image-6.12.*+deb12-cloud-amd64-unsigned: the 6.4+ layout is not covered"
fi

# No BTF: Debian's 686-pae.
if command -v qemu-system-i386 >/dev/null; then
    if python3 "$SRC/contrib/guest/capture.py" --arch i386 --out "$WORK/g32" --formats elf \
            >"$WORK/capture-32.log" 2>&1; then
        python3 "$EX" "$VMEMFS" "$WORK/g32" no-btf
    else
        echo "NOTE: the i386 guest could not be captured: $(tail -1 "$WORK/capture-32.log")"
    fi
fi
