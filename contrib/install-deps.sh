#!/bin/sh
# Installs, from Debian 12's own packages, everything vmemfs needs to build,
# run its demo and run its tests. Idempotent: packages already present are
# left alone, and apt-get is not touched at all when nothing is missing.
set -eu

PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
      libfuse3-dev fuse3 libcmocka-dev libjson-c-dev liblzma-dev zlib1g-dev
      liblzo2-dev libsnappy-dev libzstd-dev libbpf-dev libelf-dev libvirt-dev libxen-dev
      qemu-system-x86 qemu-utils busybox-static cpio xz-utils
      socat python3 gcc-multilib dwarves python3-pefile"

# The 32-bit test guest (contrib/guest/mkguest.sh --arch i386) downloads
# i386 packages: Debian's 686-pae kernel, its -dbg package (mkbtf.sh) and
# busybox-static:i386.  They are fetched with apt-get download, never
# installed, but apt must list the i386 architecture to find them.
FOREIGN_ARCHS="i386"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
new_archs=""
for a in $FOREIGN_ARCHS; do
    dpkg --print-foreign-architectures | grep -qx "$a" || new_archs="$new_archs $a"
done
[ -z "$missing" ] && [ -z "$new_archs" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
for a in $new_archs; do
    echo "install-deps: adding the $a architecture (multiarch)" >&2
    $SUDO dpkg --add-architecture "$a"
done
export DEBIAN_FRONTEND=noninteractive
# A foreign architecture's index can fail alone (a mirror mid-sync): that
# costs the 32-bit guest only (its test then skips), not the install.
$SUDO apt-get update -qq ||
    echo "install-deps: warning: apt-get update reported errors; going on" >&2
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing" >&2
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
