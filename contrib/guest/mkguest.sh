#!/bin/sh
# Builds the vmemfs test guest, idempotently, into a cache directory:
#   vmlinuz        Debian's cloud kernel (linux-image-*-cloud-amd64-unsigned)
#   config, kernel-version, kernel-package (and -version), qemu_fw_cfg.ko (same package;
#   its System.map is only a stub pointing to the -dbg package, so not kept)
#   pattern        tests/guest/pattern.c, static
#   initramfs.gz   busybox-static + pattern + contrib/guest/init (cpio newc)
#   arch           x86_64 or i386
# Prints the cache directory on stdout (the last line).
#
# With --arch i386 the guest is 32-bit, in its own cache directory: Debian's
# PAE kernel (linux-image-*-686-pae-unsigned, an i386 package), the i386
# busybox-static (downloaded, not installed: busybox-static:i386 cannot be
# installed beside the amd64 one) and pattern built with -m32.  i386
# packages need `dpkg --add-architecture i386 && apt-get update` once
# (contrib/install-deps.sh does it).  When a package cannot be had, the exit
# status is 77 (tests skip on it).
#
# Usage: mkguest.sh [--arch x86_64|i386] [CACHE_DIR]
# Env:   VMEMFS_GUEST_ARCH   x86_64 (default) or i386, as --arch
#        VMEMFS_GUEST_CACHE  cache dir of the x86_64 guest (default
#                            $XDG_CACHE_HOME/vmemfs-guest or
#                            ~/.cache/vmemfs-guest)
#        VMEMFS_GUEST_CACHE_I386  same for i386 (default .../vmemfs-guest-i386)
#        VMEMFS_GUEST_KPKG   kernel package to use (default below)
#        BUSYBOX             a static busybox of the guest's architecture
#                            (x86_64 default /bin/busybox; i386 default:
#                            busybox-static:i386 from apt)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
ARCH=${VMEMFS_GUEST_ARCH:-x86_64}
if [ "${1:-}" = --arch ]; then
    [ $# -ge 2 ] || { echo "mkguest: --arch needs a value" >&2; exit 2; }
    ARCH=$2
    shift 2
fi
case $ARCH in
x86_64|amd64)
    ARCH=x86_64
    CACHE=${1:-${VMEMFS_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmemfs-guest}}
    KPKG=${VMEMFS_GUEST_KPKG:-linux-image-6.1.0-50-cloud-amd64-unsigned}
    KPKG_RE='^linux-image-[0-9].*-cloud-amd64-unsigned$'
    BUSYBOX=${BUSYBOX:-/bin/busybox}
    CFLAGS_ARCH=
    ;;
i386|i686|x86)
    ARCH=i386
    CACHE=${1:-${VMEMFS_GUEST_CACHE_I386:-${XDG_CACHE_HOME:-$HOME/.cache}/vmemfs-guest-i386}}
    KPKG=${VMEMFS_GUEST_KPKG:-linux-image-6.1.0-50-686-pae-unsigned}
    KPKG_RE='^linux-image-[0-9][0-9.]*-[0-9]+-686-pae-unsigned$'
    BUSYBOX=${BUSYBOX:-}
    CFLAGS_ARCH=-m32
    ;;
*)
    echo "mkguest: unknown --arch '$ARCH' (x86_64 or i386)" >&2
    exit 2
    ;;
esac

log() { echo "mkguest: $*" >&2; }
die() { log "error: $*"; exit 1; }
unavailable() { log "cannot be had here: $*"; exit 77; }

for t in apt-get apt-cache dpkg-deb gcc cpio gzip sha256sum readelf; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (run contrib/install-deps.sh)"
done

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
# Tests run in parallel (ctest -j): one builder of a cache at a time, the
# others wait and then find it up to date.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/.lock"
    flock 9
fi

pkg_available() {
    apt-cache show --no-all-versions "$1" 2>/dev/null | grep -q '^Version:'
}
# apt-get download writes into the cwd. As root, apt would first try to
# write it as its sandbox user _apt, which cannot enter ~/.cache, and
# warn; say up front that it downloads as root.
sandbox=
[ "$(id -u)" = 0 ] && sandbox="-o APT::Sandbox::User=root"
# Download package $1 into the directory $2.
download() {
    # shellcheck disable=SC2086
    (cd "$2" && apt-get download -q $sandbox "$1" >&2)
}
file_is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q INTERP; }
file_is_i386() {
    LC_ALL=C readelf -h "$1" 2>/dev/null | grep -q 'Machine:.*80386'
}

# ---- busybox ----------------------------------------------------------------
if [ "$ARCH" = i386 ] && [ -z "$BUSYBOX" ]; then
    BUSYBOX=$CACHE/busybox
    if [ ! -s "$BUSYBOX" ]; then
        pkg_available busybox-static:i386 ||
            unavailable "busybox-static:i386 (dpkg --add-architecture i386 && apt-get update)"
        log "downloading busybox-static:i386"
        tmp=$(mktemp -d "$CACHE/.busybox.XXXXXX")
        download busybox-static:i386 "$tmp" || { rm -rf "$tmp"; die "apt-get download busybox-static:i386 failed"; }
        dpkg-deb -x "$tmp"/*.deb "$tmp/x"
        [ -f "$tmp/x/bin/busybox" ] || { rm -rf "$tmp"; die "no bin/busybox in busybox-static:i386"; }
        cp "$tmp/x/bin/busybox" "$BUSYBOX.tmp" && mv "$BUSYBOX.tmp" "$BUSYBOX"
        rm -rf "$tmp"
    fi
fi
[ -f "$BUSYBOX" ] || die "$BUSYBOX not found (apt-get install busybox-static)"
file_is_static "$BUSYBOX" || die "$BUSYBOX is dynamic; install busybox-static"
if [ "$ARCH" = i386 ]; then
    file_is_i386 "$BUSYBOX" || die "$BUSYBOX is not an i386 binary"
fi
# The applet list: from the busybox itself; an i386 one that this host
# cannot run (no ia32 emulation) borrows the host busybox's list (same
# Debian build configuration).
if "$BUSYBOX" --list-full >/dev/null 2>&1; then
    APPLETS_FROM=$BUSYBOX
elif [ "$ARCH" = i386 ] && /bin/busybox --list-full >/dev/null 2>&1; then
    log "$BUSYBOX does not run here: taking the applet list from /bin/busybox"
    APPLETS_FROM=/bin/busybox
else
    die "$BUSYBOX is not a working busybox"
fi

# ---- kernel ---------------------------------------------------------------
# i386 packages are asked for as such (an amd64 host lists them as foreign).
qual=
[ "$ARCH" = i386 ] && qual=:i386
if [ ! -s "$CACHE/vmlinuz" ]; then
    if ! pkg_available "$KPKG$qual"; then
        log "$KPKG not available; looking for the newest of its kind"
        KPKG=$(apt-cache pkgnames linux-image- | grep -E "$KPKG_RE" |
               sort -V | tail -n 1)
        if [ -z "$KPKG" ]; then
            [ "$ARCH" = i386 ] &&
                unavailable "no linux-image-*-686-pae-unsigned in apt (dpkg --add-architecture i386 && apt-get update)"
            die "no linux-image-*-cloud-amd64-unsigned in apt (apt-get update?)"
        fi
    fi
    log "downloading $KPKG$qual"
    tmp=$(mktemp -d "$CACHE/.kernel.XXXXXX")
    download "$KPKG$qual" "$tmp" || { rm -rf "$tmp"; die "apt-get download $KPKG$qual failed"; }
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
    # (A 686 kernel without CONFIG_X86_PAE works too: 2-level paging.)
    if [ "$ARCH" = i386 ]; then
        grep -q "^CONFIG_X86_32=y" "$CACHE/config" || { rm -rf "$tmp"; die "$KPKG is not a 32-bit kernel"; }
    fi
    echo "$kver" > "$CACHE/kernel-version"
    echo "$KPKG" > "$CACHE/kernel-package"
    dpkg-deb -f "$tmp"/*.deb Version > "$CACHE/kernel-package-version"
    echo "$ARCH" > "$CACHE/arch"
    cp "$vmlinuz" "$CACHE/vmlinuz.tmp" && mv "$CACHE/vmlinuz.tmp" "$CACHE/vmlinuz"
    rm -rf "$tmp"
fi
[ -f "$CACHE/arch" ] || echo "$ARCH" > "$CACHE/arch"
[ "$(cat "$CACHE/arch")" = "$ARCH" ] ||
    die "$CACHE holds a $(cat "$CACHE/arch") guest, not $ARCH: use another directory"
log "kernel $(cat "$CACHE/kernel-version") ($ARCH)"

# ---- pattern program ------------------------------------------------------
PSRC=$SRC/tests/guest/pattern.c
[ -f "$PSRC" ] || die "missing $PSRC"
pstamp=$(sha256sum "$PSRC" | sed 's/ .*//')
[ -n "$CFLAGS_ARCH" ] && pstamp="$pstamp $CFLAGS_ARCH"
if [ ! -x "$CACHE/pattern" ] || [ "$(cat "$CACHE/pattern.stamp" 2>/dev/null)" != "$pstamp" ]; then
    log "building pattern"
    # shellcheck disable=SC2086 # empty or one flag
    gcc $CFLAGS_ARCH -std=c11 -static -O2 -Wall -o "$CACHE/pattern.tmp" "$PSRC" ||
        { [ "$ARCH" = i386 ] && unavailable "gcc -m32 -static failed (apt-get install gcc-multilib)"; die "building pattern failed"; }
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
    "$APPLETS_FROM" --list-full | while read -r a; do
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
