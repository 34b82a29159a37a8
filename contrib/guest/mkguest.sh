#!/bin/sh
# Builds the vmemfs test guest, idempotently, into a cache directory:
#   vmlinuz        Debian's cloud kernel (linux-image-*-cloud-amd64-unsigned)
#   config, kernel-version, kernel-package, qemu_fw_cfg.ko (same package;
#   its System.map is only a stub pointing to the -dbg package, so not kept)
#   pattern        tests/guest/pattern.c, static
#   initramfs.gz   busybox-static + pattern + contrib/guest/init (cpio newc)
# Prints the cache directory on stdout (the last line).
#
# Usage: mkguest.sh [CACHE_DIR]
# Env:   VMEMFS_GUEST_CACHE  cache dir (default $XDG_CACHE_HOME/vmemfs-guest
#                            or ~/.cache/vmemfs-guest)
#        VMEMFS_GUEST_KPKG   kernel package to use (default below)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
CACHE=${1:-${VMEMFS_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmemfs-guest}}
KPKG=${VMEMFS_GUEST_KPKG:-linux-image-6.1.0-50-cloud-amd64-unsigned}
BUSYBOX=${BUSYBOX:-/bin/busybox}

log() { echo "mkguest: $*" >&2; }
die() { log "error: $*"; exit 1; }

for t in apt-get apt-cache dpkg-deb gcc cpio gzip sha256sum; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (run contrib/install-deps.sh)"
done
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found (apt-get install busybox-static)"
"$BUSYBOX" --list >/dev/null 2>&1 || die "$BUSYBOX is not a working busybox"
file_is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q INTERP; }
file_is_static "$BUSYBOX" || die "$BUSYBOX is dynamic; install busybox-static"

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

# ---- kernel ---------------------------------------------------------------
pkg_available() {
    apt-cache show --no-all-versions "$1" 2>/dev/null | grep -q '^Version:'
}
if [ ! -s "$CACHE/vmlinuz" ]; then
    if ! pkg_available "$KPKG"; then
        log "$KPKG not available; looking for the newest cloud kernel"
        KPKG=$(apt-cache pkgnames linux-image- |
               grep -E '^linux-image-[0-9].*-cloud-amd64-unsigned$' |
               sort -V | tail -n 1)
        [ -n "$KPKG" ] || die "no linux-image-*-cloud-amd64-unsigned in apt (apt-get update?)"
    fi
    log "downloading $KPKG"
    tmp=$(mktemp -d "$CACHE/.kernel.XXXXXX")
    # apt-get download writes into the cwd. As root, apt would first try to
    # write it as its sandbox user _apt, which cannot enter ~/.cache, and
    # warn; say up front that it downloads as root.
    sandbox=
    [ "$(id -u)" = 0 ] && sandbox="-o APT::Sandbox::User=root"
    # shellcheck disable=SC2086
    (cd "$tmp" && apt-get download -q $sandbox "$KPKG" >&2) || { rm -rf "$tmp"; die "apt-get download $KPKG failed"; }
    dpkg-deb -x "$tmp"/*.deb "$tmp/x"
    vmlinuz=
    for v in "$tmp"/x/boot/vmlinuz-*; do vmlinuz=$v; break; done
    [ -f "$vmlinuz" ] || { rm -rf "$tmp"; die "no boot/vmlinuz-* in $KPKG"; }
    kver=${vmlinuz##*/vmlinuz-}
    cp "$tmp/x/boot/config-$kver" "$CACHE/config"
    fwcfg=$(find "$tmp/x/lib/modules" -name 'qemu_fw_cfg.ko*' | head -n 1)
    rm -f "$CACHE/qemu_fw_cfg.ko"
    if [ -n "$fwcfg" ]; then
        case $fwcfg in
        *.ko) cp "$fwcfg" "$CACHE/qemu_fw_cfg.ko" ;;
        *.ko.xz) xz -dc "$fwcfg" > "$CACHE/qemu_fw_cfg.ko" ;;
        esac
    fi
    # Everything the guest needs must be built in: check the essentials.
    for c in CONFIG_SERIAL_8250_CONSOLE CONFIG_BLK_DEV_INITRD CONFIG_RD_GZIP \
             CONFIG_DEVTMPFS CONFIG_PROC_FS CONFIG_SYSFS CONFIG_BINFMT_ELF \
             CONFIG_KALLSYMS; do
        grep -q "^$c=y" "$CACHE/config" || { rm -rf "$tmp"; die "$KPKG: $c is not built in"; }
    done
    echo "$kver" > "$CACHE/kernel-version"
    echo "$KPKG" > "$CACHE/kernel-package"
    cp "$vmlinuz" "$CACHE/vmlinuz.tmp" && mv "$CACHE/vmlinuz.tmp" "$CACHE/vmlinuz"
    rm -rf "$tmp"
fi
log "kernel $(cat "$CACHE/kernel-version")"

# ---- pattern program ------------------------------------------------------
PSRC=$SRC/tests/guest/pattern.c
[ -f "$PSRC" ] || die "missing $PSRC"
pstamp=$(sha256sum "$PSRC" | sed 's/ .*//')
if [ ! -x "$CACHE/pattern" ] || [ "$(cat "$CACHE/pattern.stamp" 2>/dev/null)" != "$pstamp" ]; then
    log "building pattern"
    gcc -std=c11 -static -O2 -Wall -o "$CACHE/pattern.tmp" "$PSRC"
    mv "$CACHE/pattern.tmp" "$CACHE/pattern"
    echo "$pstamp" > "$CACHE/pattern.stamp"
fi

# ---- initramfs ------------------------------------------------------------
stamp=$( {
    sha256sum "$HERE/init" "$HERE/mkguest.sh" "$CACHE/pattern" "$BUSYBOX"
    [ -f "$CACHE/qemu_fw_cfg.ko" ] && sha256sum "$CACHE/qemu_fw_cfg.ko"
    true
} | sed 's/ .*//' | sha256sum | sed 's/ .*//')
if [ ! -s "$CACHE/initramfs.gz" ] || [ "$(cat "$CACHE/initramfs.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "building initramfs"
    root=$(mktemp -d "$CACHE/.root.XXXXXX")
    mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" \
             "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/lib" \
             "$root/root" "$root/etc"
    cp "$BUSYBOX" "$root/bin/busybox"
    # Applet links, at the paths busybox itself names (--list-full).
    "$BUSYBOX" --list-full | while read -r a; do
        [ "$a" = bin/busybox ] && continue
        d=$(dirname "$a")
        mkdir -p "$root/$d"
        case $d in
        bin|sbin) ln -sf ../bin/busybox "$root/$a" ;;
        usr/bin|usr/sbin) ln -sf ../../bin/busybox "$root/$a" ;;
        *) ln -sf /bin/busybox "$root/$a" ;;
        esac
    done
    cp "$CACHE/pattern" "$root/bin/pattern"
    [ -f "$CACHE/qemu_fw_cfg.ko" ] && cp "$CACHE/qemu_fw_cfg.ko" "$root/lib/"
    cp "$HERE/init" "$root/init"
    chmod 755 "$root/init"
    # The kernel's built-in initramfs already provides /dev/console, which
    # is opened for init before devtmpfs is mounted, but add it anyway
    # (needs root; skipped otherwise).
    mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
    (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
        gzip -9 -n > "$CACHE/initramfs.gz.tmp"
    mv "$CACHE/initramfs.gz.tmp" "$CACHE/initramfs.gz"
    echo "$stamp" > "$CACHE/initramfs.stamp"
    rm -rf "$root"
fi

echo "$CACHE"
