#!/usr/bin/env bash
# demo.sh - the main job, on a fresh Debian 12 machine, needing nothing from
# the user: installs what is missing, builds vmemfs, boots a small Debian
# guest under QEMU (TCG), captures its memory (ELF core and kdump-zlib),
# builds a kernel profile from the kernel's BTF and the guest's kallsyms,
# mounts both dumps in one vmemfs, shows the files, the guest's processes,
# one process's maps and a hexdump of its memory; then mounts the same guest
# live, watches a counter in a guest process move and stop while paused,
# and cleans up.
#
#   contrib/demo.sh            (root: FUSE mounts and apt-get)
#
# Environment: VMEMFS_DEMO_DIR (default: a fresh temporary directory),
# VMEMFS_DEMO_BUILD (a build directory already built: used as it is, not
# configured nor built again; default: build/, configured and built here).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$SRC/build

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "Installing what is missing (Debian packages) and building"
"$SRC/contrib/install-deps.sh"
if [ -n "${VMEMFS_DEMO_BUILD:-}" ]; then
    # A tree already built (the test suite's own): use it as it is.
    BUILD=$VMEMFS_DEMO_BUILD
    echo "using the build in $BUILD"
else
    cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" -j"$(nproc)" >/dev/null
fi
VMEMFS=$BUILD/vmemfs

WORK=${VMEMFS_DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-demo.XXXXXX")}
MNT=$WORK/mnt
mkdir -p "$MNT"
QEMU_PID=
SHM=/dev/shm/vmemfs-demo-$$
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && fusermount3 -u "$MNT"
    [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null
    rm -f "$SHM"
    [ -n "${VMEMFS_DEMO_DIR:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

say "Booting a Debian guest (linux-image-6.1.0-50-cloud-amd64, QEMU TCG, 256 MiB) and capturing it"
python3 "$SRC/contrib/guest/capture.py" --mem 256M --out "$WORK/guest" \
    --formats elf,kdump-zlib 2>&1 | sed 's/^/  /'
ls -l "$WORK/guest/guest.elf" "$WORK/guest/guest.kdump.flat"

say "A kernel profile from the kernel's own BTF and the guest's /proc/kallsyms"
GUEST_DIR=$(sh "$SRC/contrib/guest/mkguest.sh" | tail -1)
grep '^KSYM ' "$WORK/guest/truth.txt" | cut -d' ' -f2- > "$WORK/kallsyms"
mkdir -p "$WORK/symbols"
run "$BUILD/vmemfs-profile" --btf "$GUEST_DIR/vmlinuz" --symbols "$WORK/kallsyms" \
    -o "$WORK/symbols/$(cat "$GUEST_DIR/kernel-version").json"

say "Mounting both dumps in one vmemfs"
run "$VMEMFS" "$MNT" --symbols "$WORK/symbols" --vm web1=file:"$WORK/guest/guest.elf" \
    --vm web1-kdump=file:"$WORK/guest/guest.kdump.flat"
run ls -l "$MNT" "$MNT/web1"
run cat "$MNT/web1/memmap"
say "info.json (what vmemfs knows: source, ranges, vCPU registers, cache, guest OS)"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["vcpus"]=[{k:v for k,v in c.items() if k in ("id","cr3","rip","cr4")} for c in d["vcpus"]]; print(json.dumps(d, indent=1))' "$MNT/web1/info.json"

say "Reading: the kernel banner, found in physical memory"
off=$(grep -abo -m1 'Linux version [^ ]* (debian-kernel@lists' "$MNT/web1/pmem.raw" | cut -d: -f1)
printf 'banner at guest-physical 0x%x\n' "$off"
run hexdump -C -s "$off" -n 64 "$MNT/web1/pmem"

say "The two formats give the same bytes (first 256 MiB)"
run cmp -n $((256 << 20)) "$MNT/web1/pmem.raw" "$MNT/web1-kdump/pmem.raw" && echo "identical"

say "Holes: pmem.raw reads them as zeros, pmem fails with EIO, lseek skips them"
python3 - "$MNT/web1" <<'PY'
import os, sys
d = sys.argv[1]
fd = os.open(d + "/pmem.raw", os.O_RDONLY)
end, off = os.fstat(fd).st_size, 0
while off < end:
    data = os.lseek(fd, off, os.SEEK_DATA)
    hole = os.lseek(fd, data, os.SEEK_HOLE)
    print("  data 0x%09x-0x%09x (%d KiB)" % (data, hole, (hole - data) >> 10))
    try:
        off = os.lseek(fd, hole, os.SEEK_DATA)
    except OSError:
        break
fs = os.open(d + "/pmem", os.O_RDONLY)
try:
    os.pread(fs, 4096, 0x20000000)
except OSError as e:
    print("  pread(pmem, 0x20000000) ->", e.strerror)
print("  pread(pmem.raw, 0x20000000) -> %d zero bytes" % os.pread(fd, 4096, 0x20000000).count(0))
PY

say "The guest's processes, as files"
python3 -c 'import json,sys; g=json.load(open(sys.argv[1]))["guest"]; print({k: g[k] for k in ("kernel_release","kaslr_virtual_shift","kaslr_physical_shift","kernel_dtb","paging","processes")})' "$MNT/web1/info.json"
printf '%6s %6s  %s\n' PID PPID NAME
for d in "$MNT"/web1/proc/*; do
    awk -F'\t' '/^Name:/{n=$2} /^Pid:/{p=$2} /^PPid:/{pp=$2} END{printf "%6s %6s  %s\n", p, pp, n}' "$d/status"
done | sort -n | awk 'NR<=6 || $3 !~ /^(kworker|ksoftirq|migration|cpuhp|rcu|idle_inject)/'
PID=$(awk '/^PATTERN/ {sub("pid=","",$2); print $2; exit}' "$WORK/guest/truth.txt")
HEAP=$(awk -v p="pid=$PID" '$2==p && $4=="kind=heap" {sub("addr=","",$5); print $5; exit}' "$WORK/guest/truth.txt")
run cat "$MNT/web1/proc/$PID/status"
run cat "$MNT/web1/proc/$PID/maps"
say "Process $PID's heap at $HEAP, read through its own page tables"
# The first 64 bytes of its first whole page.  dd reads exactly what is
# shown: no "| head" that would leave dd or hexdump to die of SIGPIPE (and
# the demo with them, under pipefail).
HEAP_PAGE=$(( (HEAP + 4095) / 4096 * 4096 ))
printf '$ dd if=%s bs=64 count=1 skip=%d iflag=skip_bytes | hexdump -C\n' "$MNT/web1/proc/$PID/vmem" "$HEAP_PAGE"
dd if="$MNT/web1/proc/$PID/vmem" bs=64 count=1 skip="$HEAP_PAGE" iflag=skip_bytes status=none | hexdump -C
echo "(each 8-byte word is its own address XOR 0x564d454d46530000 XOR the process's tag)"
python3 - "$MNT/web1/proc/$PID/vmem" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size, off = os.fstat(fd).st_size, 0
print("vmem is %d TiB; its mapped ranges, found with SEEK_DATA/SEEK_HOLE:" % (size >> 40))
while True:
    try:
        off = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    end = os.lseek(fd, off, os.SEEK_HOLE)
    print("  0x%012x-0x%012x  %6d KiB" % (off, end, (end - off) >> 10))
    off = end
PY
run fusermount3 -u "$MNT"

say "The same guest, live: QEMU with its RAM in a shared file, read with zero copy"
python3 "$SRC/tests/integration/qemu_boot.py" --out "$WORK/live" \
    --shared-ram "$SHM" > "$WORK/live.env" 2>"$WORK/live.log"
QEMU_PID=$(sed -n 's/^QEMU_PID=//p' "$WORK/live.env")
SOCK=$(sed -n 's/^QMP_SOCKET=//p' "$WORK/live.env")
run "$VMEMFS" "$MNT" --symbols "$WORK/symbols" --vm live1=qemu:"$SOCK"
read -r CPID CADDR < <(awk '/^COUNTER/ {sub("pid=","",$2); sub("addr=","",$3); print $2, $3; exit}' "$WORK/live/truth.txt")
python3 - "$MNT/live1" "$CPID" "$CADDR" <<'PY'
import os, struct, sys, time
d, pid, addr = sys.argv[1], sys.argv[2], int(sys.argv[3], 16)
def counter():
    fd = os.open("%s/proc/%s/vmem" % (d, pid), os.O_RDONLY)
    v = struct.unpack("<Q", os.pread(fd, 8, addr))[0]
    os.close(fd)
    return v
def control(cmd):
    with open(d + "/control", "w") as f:
        f.write(cmd + "\n")
print("counter of guest process %s at 0x%x:" % (pid, addr))
for i in range(3):
    print("  running: %d" % counter())
    time.sleep(1.2)
control("pause")
for i in range(2):
    print("  paused:  %d" % counter())
    time.sleep(1.2)
control("resume")
time.sleep(1.2)
print("  resumed: %d" % counter())
PY
run dd if="$MNT/live1/pmem.raw" of=/dev/null bs=1M
kill "$QEMU_PID"
QEMU_PID=
sleep 2
say "QEMU has exited: its directory is gone"
run ls -l "$MNT"

say "Unmounting"
run fusermount3 -u "$MNT"
echo "done."
