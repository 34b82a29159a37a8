#!/usr/bin/env bash
# A 32-bit PAE Linux guest end to end: Debian's 686-pae kernel (KASLR on)
# under qemu-system-i386 (TCG), with an i386 busybox and pattern built -m32
# (contrib/guest/capture.py --arch i386), captured as ELF, kdump-zlib and
# padded raw (no vCPU state: the paging mode then comes from the profile).
#
# Debian builds its i386 kernels without BTF, and without
# CONFIG_KALLSYMS_ALL (the guest's kallsyms has no data symbols), so
# contrib/guest/mkbtf.sh takes the vmlinux and System.map from the kernel's
# -dbg package and encodes the vmlinux's DWARF as BTF with pahole.
# vmemfs-profile then makes the profile from that BTF: with the System.map
# (link-time addresses); with a kallsyms listing as the KASLR'd guest shows
# it (the guest's own KSYM lines, the rest of System.map moved by as much as
# the guest's _text moved), whose addresses vmemfs-profile must move back;
# and from the raw .BTF with that kallsyms, where the i386 link-time _text
# is assumed.  All three must agree.  guest_proc.py then compares
# processes, maps, status, pattern memory through vmem, and kernel/vmem
# with the guest's own truth through the FUSE mount, for each dump.
#
# VMEMFS_TEST_I386_2LEVEL=1 also runs Debian's non-PAE 686 kernel the same
# way (2-level 32-bit paging; another ~800 MB download the first time).
#
# Skips (77) when the 686-pae kernel, its -dbg package, busybox-static:i386,
# gcc -m32 or pahole cannot be had.  Downloads ~820 MB the first time
# (cached with the guest, see contrib/guest/README.md).
. "$(dirname "$0")/lib.sh"
need_fuse
command -v qemu-system-i386 >/dev/null || skip "qemu-system-i386 missing"
command -v python3 >/dev/null || skip "python3 missing"
command -v objcopy >/dev/null || skip "objcopy missing (binutils)"
PROFILE_TOOL=$BUILD/vmemfs-profile
[ -x "$PROFILE_TOOL" ] || skip "$PROFILE_TOOL not built (libbpf missing?)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-guest-pae.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
avail_mb=$(df -Pk "$WORK" | awk 'NR==2 {print int($4/1024)}')
[ "$avail_mb" -ge 1024 ] || skip "needs 1 GiB free in $WORK (has ${avail_mb} MiB)"

# fixture NAME ARGS...: runs contrib/guest/NAME.sh with $KPKG as the kernel
# package; its last stdout line goes to $WORK/NAME.out.  Its 77 skips.
fixture() {
    local log=$WORK/$1.log rc=0
    VMEMFS_GUEST_KPKG=$KPKG sh "$SRC/contrib/guest/$1.sh" "${@:2}" >"$WORK/$1.stdout" 2>"$log" ||
        rc=$?
    if [ $rc -eq 77 ]; then
        skip "$(grep 'cannot be had' "$log" | tail -n 1)"
    elif [ $rc -ne 0 ] || [ ! -s "$WORK/$1.stdout" ]; then
        tail -n 30 "$log"
        echo "FAIL: contrib/guest/$1.sh"
        exit 1
    fi
    tail -n 1 "$WORK/$1.stdout" >"$WORK/$1.out"
}

# One 32-bit kernel end to end: $1 package, $2 its UNAME suffix, $3 the
# paging mode vmemfs must find, $4 (optional) the guest cache directory.
run_guest() {
    KPKG=$1
    local flavour=$2 paging=$3 W=$WORK/$2
    mkdir -p "$W"
    fixture mkguest --arch i386 ${4:+"$4"}
    local GDIR
    GDIR=$(cat "$WORK/mkguest.out")
    fixture mkbtf "$GDIR"
    local VMLINUX=$GDIR/vmlinux-btf CAP=$W/g
    echo "guest: $(cat "$GDIR/kernel-package") in $GDIR"

    python3 "$SRC/contrib/guest/capture.py" --arch i386 --guest-dir "$GDIR" --out "$CAP" \
        --formats elf,kdump-zlib,raw >"$W/capture.log" 2>&1 ||
        { tail -n 40 "$W/capture.log"; echo "FAIL: capture of the i386 guest"; exit 1; }
    grep -q "^UNAME .*-$flavour\$" "$CAP/truth.txt" ||
        { echo "FAIL: the guest is not a $flavour kernel: $(grep '^UNAME' "$CAP/truth.txt")"; exit 1; }
    python3 "$SRC/contrib/guest/verify.py" "$CAP" >"$W/verify.log" 2>&1 ||
        { tail -n 20 "$W/verify.log"; echo "FAIL: verify.py on the i386 capture"; exit 1; }

    # Profiles.  1: BTF + System.map (link-time addresses).
    "$PROFILE_TOOL" -q --btf "$VMLINUX" --symbols "$GDIR/System.map" -o "$W/map.json.xz"
    # 2: BTF + the kallsyms of the running, KASLR'd guest: its own KSYM
    # lines first (the first address of a name wins), then System.map moved
    # by as much as the guest's _text moved.
    python3 - "$CAP/truth.txt" "$GDIR/System.map" "$W/kallsyms" <<'PY'
import sys
truth, smap, out = sys.argv[1:]
ksym = [l.split(None, 1)[1] for l in open(truth) if l.startswith("KSYM ")]
text = {l.split()[2]: int(l.split()[0], 16) for l in ksym}.get("_text")
if text is None:
    sys.exit("no KSYM _text in " + truth)
lines = [l.split() for l in open(smap)]
link = {l[2]: int(l[0], 16) for l in lines if len(l) >= 3}["_text"]
with open(out, "w") as f:
    f.writelines(ksym)
    for l in lines:
        a = int(l[0], 16)
        if a >= link:          # the kernel image moves; absolute symbols stay
            a += text - link
        f.write("%08x %s %s\n" % (a, l[1], l[2]))
print("kallsyms: KASLR moved _text by %#x" % (text - link))
PY
    "$PROFILE_TOOL" -q --btf "$VMLINUX" --symbols "$W/kallsyms" -o "$W/kallsyms.json.xz"
    # 3: the raw .BTF and the same kallsyms: no image to read _text from.
    objcopy --dump-section .BTF="$W/vmlinux.btf" "$VMLINUX" "$W/vmlinux.tmp"
    rm -f "$W/vmlinux.tmp"
    "$PROFILE_TOOL" -q --btf "$W/vmlinux.btf" --symbols "$W/kallsyms" -o "$W/rawbtf.json" \
        2>"$W/rawbtf.log" || { cat "$W/rawbtf.log"; echo "FAIL: vmemfs-profile on raw BTF"; exit 1; }
    python3 - "$W/map.json.xz" "$W/kallsyms.json.xz" "$W/rawbtf.json" <<'PY'
import json, lzma, sys
def load(p):
    with (lzma.open(p, "rt") if p.endswith(".xz") else open(p)) as f:
        return json.load(f)
ref = load(sys.argv[1])
want = {n: s["address"] for n, s in ref["symbols"].items()}
fails = 0
if ref["base_types"]["pointer"]["size"] != 4:
    print("FAIL: the profile's pointer is %d bytes" % ref["base_types"]["pointer"]["size"])
    fails += 1
for p in sys.argv[2:]:
    got = {n: s["address"] for n, s in load(p)["symbols"].items()}
    bad = [n for n in want if got.get(n) != want[n]]
    for n in bad[:5]:
        print("  %s: %s at %s, System.map %#x" % (p, n, hex(got[n]) if n in got else None, want[n]))
    print("%s: %d of %d symbols at their System.map address"
          % (p.split("/")[-1], len(want) - len(bad), len(want)))
    fails += bool(bad)
print("profiles: %d passed, %d failed" % (len(sys.argv) - 1 - fails, fails))
sys.exit(1 if fails else 0)
PY

    # Through the mount: each dump, each way of giving the profile.
    mkdir -p "$W/symbols"
    cp "$W/map.json.xz" "$W/symbols/"
    export VMEMFS_EXPECT_PAGING=$paging
    python3 "$SRC/tests/integration/guest_proc.py" "$VMEMFS" "$CAP" "$W/symbols" guest.elf
    python3 "$SRC/tests/integration/guest_proc.py" "$VMEMFS" "$CAP" "$W/kallsyms.json.xz" guest.kdump
    python3 "$SRC/tests/integration/guest_proc.py" "$VMEMFS" "$CAP" "$W/map.json.xz" guest.raw
    rm -rf "$W"
}

run_guest linux-image-6.1.0-50-686-pae-unsigned 686-pae "x86 PAE"
if [ "${VMEMFS_TEST_I386_2LEVEL:-0}" = 1 ]; then
    run_guest linux-image-6.1.0-50-686-unsigned 686 "x86 32-bit" \
        "${XDG_CACHE_HOME:-$HOME/.cache}/vmemfs-guest-i386-686"
fi
