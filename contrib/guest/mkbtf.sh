#!/bin/sh
# Gives a guest kernel BTF when it was built without (Debian's i386 kernels:
# CONFIG_DEBUG_INFO_BTF is off there), so vmemfs-profile can make its
# profile: downloads the kernel's -dbg package (the vmlinux with DWARF),
# encodes the DWARF as BTF with pahole, and keeps, in the guest's cache
# directory (made by mkguest.sh):
#   vmlinux-btf    the vmlinux without debug sections and relocations, with
#                  a .BTF section (vmemfs-profile --btf reads its BTF, banner
#                  and link-time _text; ~25 MiB instead of ~300)
#   System.map     the kernel's full symbol table, link-time addresses (the
#                  -dbg package's; a kernel without CONFIG_KALLSYMS_ALL,
#                  like Debian's 686-pae, lists no data symbols such as
#                  init_task in /proc/kallsyms)
# Idempotent; prints the path of vmlinux-btf on stdout (the last line).
# The -dbg package is large (765 MB for 686-pae): it is streamed and only
# the vmlinux is taken out.  Exit status 77 when the -dbg package or pahole
# cannot be had.
#
# Usage: mkbtf.sh CACHE_DIR
set -eu

CACHE=${1:?usage: mkbtf.sh CACHE_DIR}
log() { echo "mkbtf: $*" >&2; }
die() { log "error: $*"; exit 1; }
unavailable() { log "cannot be had here: $*"; exit 77; }

[ -f "$CACHE/kernel-package" ] && [ -f "$CACHE/kernel-version" ] ||
    die "$CACHE is not a guest cache made by mkguest.sh"
if [ -s "$CACHE/vmlinux-btf" ] && [ -s "$CACHE/System.map" ]; then
    echo "$CACHE/vmlinux-btf"
    exit 0
fi
command -v pahole >/dev/null 2>&1 || unavailable "pahole (apt-get install dwarves)"
for t in objcopy apt-get apt-cache dpkg-deb tar; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (run contrib/install-deps.sh)"
done
CACHE=$(cd "$CACHE" && pwd)
kpkg=$(cat "$CACHE/kernel-package")
kver=$(cat "$CACHE/kernel-version")
qual=
[ "$(cat "$CACHE/arch" 2>/dev/null)" = i386 ] && qual=:i386
# linux-image-X-unsigned's debug symbols are in linux-image-X-dbg, of the
# very same version (one ABI name can see several uploads).
dbg=${kpkg%-unsigned}-dbg$qual
if [ -s "$CACHE/kernel-package-version" ]; then
    dbg="$dbg=$(cat "$CACHE/kernel-package-version")"
fi
apt-cache show --no-all-versions "$dbg" 2>/dev/null | grep -q '^Version:' ||
    unavailable "$dbg"

tmp=$(mktemp -d "$CACHE/.btf.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
sandbox=
[ "$(id -u)" = 0 ] && sandbox="-o APT::Sandbox::User=root"
log "downloading $dbg"
# shellcheck disable=SC2086
(cd "$tmp" && apt-get download -q $sandbox "$dbg" >&2) ||
    die "apt-get download $dbg failed"
member=./usr/lib/debug/boot/vmlinux-$kver
map=./usr/lib/debug/boot/System.map-$kver
# Both come early in the archive: stop reading there.
dpkg-deb --fsys-tarfile "$tmp"/*.deb 2>/dev/null |
    tar -x -C "$tmp" --occurrence=1 "$member" "$map" 2>/dev/null || true
[ -s "$tmp/$member" ] || die "no $member in $dbg"
[ -s "$tmp/$map" ] || die "no $map in $dbg"
rm -f "$tmp"/*.deb
log "encoding BTF with $(pahole --version)"
pahole --btf_encode_detached="$tmp/vmlinux.btf" "$tmp/$member" >&2 ||
    die "pahole failed on $member"
objcopy --strip-debug --remove-section='.rel*' --remove-section='.rela*' \
    --add-section .BTF="$tmp/vmlinux.btf" "$tmp/$member" "$tmp/vmlinux-btf" ||
    die "objcopy failed"
cp "$tmp/$map" "$CACHE/System.map.tmp"
mv "$CACHE/System.map.tmp" "$CACHE/System.map"
mv "$tmp/vmlinux-btf" "$CACHE/vmlinux-btf"
echo "$CACHE/vmlinux-btf"
