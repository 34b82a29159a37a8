#!/usr/bin/env bash
# bench_libvirt.sh - the libvirt driver's two data paths on one running
# domain, against raw virDomainMemoryPeek.  A benchmark, not a test (about
# a minute for 256 MiB).  Needs a running libvirtd that also listens on a
# URI the peek path can use (t_libvirt.sh shows such a setup:
# listen_tcp on 127.0.0.1, auth_tcp none), and a running QEMU domain.
#
#   contrib/bench/bench_libvirt.sh DOMAIN REMOTE_URI [MIB] [VMEMFS]
#
# Prints, in MB/s: raw peek at 4 MiB and at 1 MiB calls (REMOTE_URI), vmemfs
# pmem.raw through the local fast path (libvirt:DOMAIN) and through the peek
# path (libvirt:DOMAIN@REMOTE_URI), sequential dd bs=1M, and the ratios the
# driver is held to: peek path >= 80 % of raw 4 MiB peeks, local >= 20x
# the peek path.
set -euo pipefail
DOM=$1 REMOTE=$2 MIB=${3:-256}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
VMEMFS=${4:-$SRC/build/vmemfs}
W=$(mktemp -d "${TMPDIR:-/var/tmp}/bench-libvirt.XXXXXX")
trap 'fusermount3 -u "$W/mnt" 2>/dev/null || true; [ -n "${PID:-}" ] && wait "$PID" 2>/dev/null; rm -rf "$W"' EXIT
cc -O2 -o "$W/peek" "$SRC/contrib/bench/bench_libvirt_peek.c" $(pkg-config --cflags --libs libvirt)

raw4=$("$W/peek" "$REMOTE" "$DOM" "$MIB" $((4 << 20)) | cut -d' ' -f1)
raw1=$("$W/peek" "$REMOTE" "$DOM" "$MIB" $((1 << 20)) | cut -d' ' -f1)

mkdir "$W/mnt"
"$VMEMFS" "$W/mnt" -f --vm l="libvirt:$DOM" --vm p="libvirt:$DOM@$REMOTE" 2>"$W/log" & PID=$!
for _ in $(seq 200); do [ -d "$W/mnt/p" ] && break; sleep 0.1; done
rate() {   # MB/s of dd of the first MIB MiB of $1
    dd if="$1" of=/dev/null bs=1M count="$MIB" 2>&1 | awk '/copied/ {
        for (i = 1; i <= NF; i++) if ($i == "s,") s = $(i - 1); print $1 / s / 1e6 }'
}
loc=$(rate "$W/mnt/l/pmem.raw")
peek=$(rate "$W/mnt/p/pmem.raw")
fusermount3 -u "$W/mnt"; wait "$PID"; PID=

awk -v r4="$raw4" -v r1="$raw1" -v l="$loc" -v p="$peek" -v m="$MIB" 'BEGIN {
    printf "| %d MiB sequential | MB/s |\n|---|---|\n", m
    printf "| raw virDomainMemoryPeek, 4 MiB calls | %.1f |\n", r4
    printf "| raw virDomainMemoryPeek, 1 MiB calls | %.1f |\n", r1
    printf "| vmemfs pmem.raw, peek path | %.1f |\n", p
    printf "| vmemfs pmem.raw, local fast path | %.1f |\n", l
    printf "\npeek path / raw 4 MiB peeks: %.0f %% (target >= 80 %%)\n", 100 * p / r4
    printf "local / peek path: %.0fx (target >= 20x)\n", l / p }'
