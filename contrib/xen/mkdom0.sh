#!/bin/bash
# mkdom0.sh - a Xen 4.17 host to run nested under QEMU TCG: the hypervisor,
# a generic Debian kernel for dom0 and a dom0 initramfs (busybox, xl,
# xenstored, xenconsoled, xen-init-dom0, their libraries, the xen and fuse
# modules) plus whatever the caller adds.  See contrib/xen/README.md.
#
#   mkdom0.sh OUTDIR [SRC:DEST ...]
#
# Packages come from the Debian mirror with `apt-get download` (never
# installed), cached in $VMEMFS_XEN_CACHE (default ~/.cache/vmemfs-xen).
# Writes OUTDIR/xen.elf, OUTDIR/vmlinuz (dom0) and OUTDIR/dom0.cpio.gz, the
# initramfs with each SRC (a file; executables get their libraries, found
# with ldd) at DEST.  Exit 77 when the packages cannot be had.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: mkdom0.sh OUTDIR [SRC:DEST ...]}
shift
CACHE=${VMEMFS_XEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmemfs-xen}
KVER=${VMEMFS_XEN_KVER:-6.1.0-50-amd64}
PKGS="xen-hypervisor-4.17-amd64 xen-utils-4.17 libxenmisc4.17 libxenstore4
      libxencall1 libxenforeignmemory1 libxendevicemodel1 libxenevtchn1
      libxengnttab1 libxenhypfs1 libxentoolcore1 libxentoollog1
      linux-image-$KVER-unsigned"
mkdir -p "$CACHE/debs" "$OUT"

if [ ! -f "$CACHE/x.stamp" ]; then
    ( cd "$CACHE/debs" && apt-get download $PKGS >/dev/null 2>&1 ) || {
        echo "mkdom0: cannot download $PKGS" >&2; exit 77; }
    rm -rf "$CACHE/x" && mkdir "$CACHE/x"
    for d in "$CACHE"/debs/*.deb; do dpkg-deb -x "$d" "$CACHE/x"; done
    touch "$CACHE/x.stamp"
fi
X=$CACHE/x
zcat "$X"/boot/xen-4.17-amd64.gz > "$OUT/xen.elf"
cp "$X/boot/vmlinuz-$KVER" "$OUT/vmlinuz"

R=$OUT/root
rm -rf "$R"
mkdir -p "$R"/{bin,sbin,etc,proc,sys,dev,tmp,run,var/run/xen,var/lib/xen,var/log/xen/console,lib/modules,mnt}
ln -s ../run "$R/var/run/xenstored" 2>/dev/null || true
cp /bin/busybox "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do
    [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"
done
export LD_LIBRARY_PATH=$X/usr/lib/x86_64-linux-gnu:$X/usr/lib/xen-4.17/lib

# An executable and every library it needs, at the same paths as here
# (the xen ones from the packages, the rest from this Debian).
add_exe() {   # SRC DEST
    mkdir -p "$R/$(dirname "$2")"
    cp -L "$1" "$R/$2"
    { ldd "$1" 2>/dev/null || true; } | awk '/=> \//{print $3} /^\t\/lib/{print $1}' |
    while read -r lib; do
        local dest=${lib#$X}
        [ -e "$R$dest" ] && continue
        mkdir -p "$R$(dirname "$dest")"
        cp -L "$lib" "$R$dest"
    done
}
for b in xl xenstored xenconsoled xen-init-dom0; do
    add_exe "$X/usr/lib/xen-4.17/bin/$b" "/usr/lib/xen-4.17/bin/$b"
    ln -sf "/usr/lib/xen-4.17/bin/$b" "$R/sbin/$b"
done
# Every library of the packages (vmemfs and the benchmark need some xl does not).
mkdir -p "$R/usr/lib/x86_64-linux-gnu"
cp -a "$X"/usr/lib/x86_64-linux-gnu/lib* "$R/usr/lib/x86_64-linux-gnu/"
[ -d "$X/usr/lib/xen-4.17/lib" ] && mkdir -p "$R/usr/lib/xen-4.17" &&
    cp -a "$X/usr/lib/xen-4.17/lib" "$R/usr/lib/xen-4.17/"
cp -a "$X/etc/xen" "$R/etc/" 2>/dev/null || true
mkdir -p "$R/etc/xen"
command -v fusermount3 >/dev/null && add_exe "$(command -v fusermount3)" /bin/fusermount3

M=$X/lib/modules/$KVER/kernel
for m in drivers/xen/xen-privcmd.ko drivers/xen/xen-evtchn.ko \
         drivers/xen/xenfs/xenfs.ko drivers/xen/xen-gntdev.ko \
         drivers/xen/xen-gntalloc.ko fs/fuse/fuse.ko; do
    cp "$M/$m" "$R/lib/modules/"
done
cp "$HERE/dom0-init" "$R/init"
chmod +x "$R/init"

for spec in "$@"; do
    src=${spec%%:*} dest=${spec#*:}
    if [ -x "$src" ] && [ "$(head -c 4 "$src" | tail -c 3)" = ELF ]; then
        add_exe "$src" "$dest"
    else
        mkdir -p "$R/$(dirname "$dest")"
        cp -L "$src" "$R/$dest"
    fi
done
( cd "$R" && find . | cpio -o -H newc --quiet ) | gzip -1 > "$OUT/dom0.cpio.gz"
echo "$OUT"
