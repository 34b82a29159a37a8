#!/usr/bin/env bash
# demo.sh - the main job, on a fresh Debian 12 machine, needing nothing from
# the user: installs what is missing, builds vmemfs, boots a small Debian
# guest under QEMU (TCG), captures its memory (ELF core and kdump-zlib),
# mounts both dumps in one vmemfs, shows the files and reads from them, and
# cleans up.
#
#   contrib/demo.sh            (root: FUSE mounts and apt-get)
#
# Environment: VMEMFS_DEMO_DIR (default: a fresh temporary directory).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$SRC/build

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "Installing what is missing (Debian packages) and building"
"$SRC/contrib/install-deps.sh"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
VMEMFS=$BUILD/vmemfs

WORK=${VMEMFS_DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-demo.XXXXXX")}
MNT=$WORK/mnt
mkdir -p "$MNT"
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && fusermount3 -u "$MNT"
    [ -n "${VMEMFS_DEMO_DIR:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

say "Booting a Debian guest (linux-image-6.1.0-50-cloud-amd64, QEMU TCG, 256 MiB) and capturing it"
python3 "$SRC/contrib/guest/capture.py" --mem 256M --out "$WORK/guest" \
    --formats elf,kdump-zlib 2>&1 | sed 's/^/  /'
ls -l "$WORK/guest/guest.elf" "$WORK/guest/guest.kdump.flat"

say "Mounting both dumps in one vmemfs"
run "$VMEMFS" "$MNT" --vm web1=file:"$WORK/guest/guest.elf" \
    --vm web1-kdump=file:"$WORK/guest/guest.kdump.flat"
run ls -l "$MNT" "$MNT/web1"
run cat "$MNT/web1/memmap"
say "info.json (what vmemfs knows: source, ranges, vCPU registers, cache)"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["vcpus"]=[{k:v for k,v in c.items() if k in ("id","cr3","rip","cr4")} for c in d["vcpus"]]; print(json.dumps(d, indent=1))' "$MNT/web1/info.json"

say "Reading: the kernel banner, found in physical memory"
off=$(grep -abo -m1 'Linux version [^ ]* (debian-kernel@lists' "$MNT/web1/pmem.raw" | cut -d: -f1)
printf 'banner at guest-physical 0x%x\n' "$off"
run dd if="$MNT/web1/pmem.raw" bs=1 skip="$off" count=160 status=none | tr -c '[:print:]' '.'
echo
run hexdump -C -s "$off" -n 64 "$MNT/web1/pmem"

say "The two formats give the same bytes (first 256 MiB)"
run cmp -n $((256 << 20)) "$MNT/web1/pmem.raw" "$MNT/web1-kdump/pmem.raw" && echo "identical"

say "Holes: pmem.raw reads them as zeros, pmem fails with EIO, lseek skips them"
python3 - "$MNT/web1" <<'PY'
import os, sys
d = sys.argv[1]
fd = os.open(d + "/pmem.raw", os.O_RDONLY)
end = os.fstat(fd).st_size
off = 0
while off < end:
    data = os.lseek(fd, off, os.SEEK_DATA) if off else 0
    hole = os.lseek(fd, data, os.SEEK_HOLE)
    print("  data 0x%09x-0x%09x (%d MiB)" % (data, hole, (hole - data) >> 20))
    try:
        off = os.lseek(fd, hole, os.SEEK_DATA)
        print("  hole 0x%09x-0x%09x" % (hole, off))
    except OSError:
        break
fs = os.open(d + "/pmem", os.O_RDONLY)
try:
    os.pread(fs, 4096, 0x20000000)
except OSError as e:
    print("  pread(pmem, 0x20000000) ->", e.strerror)
print("  pread(pmem.raw, 0x20000000) -> %d zero bytes" % os.pread(fd, 4096, 0x20000000).count(0))
PY

say "Cache figures of the compressed dump after those reads"
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cache"])' "$MNT/web1-kdump/info.json"

say "Unmounting"
run fusermount3 -u "$MNT"
echo "done."
