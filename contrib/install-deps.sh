#!/bin/sh
# Installs, from Debian 12's own packages, everything vmemfs needs to build,
# run its demo and run its tests. Idempotent: packages already present are
# left alone, and apt-get is not touched at all when nothing is missing.
set -eu

PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
      libfuse3-dev fuse3 libcmocka-dev libjson-c-dev liblzma-dev zlib1g-dev
      liblzo2-dev libsnappy-dev libzstd-dev libbpf-dev libelf-dev libvirt-dev libxen-dev
      qemu-system-x86 qemu-utils busybox-static cpio xz-utils
      socat python3 gcc-multilib"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
