#!/usr/bin/env bash
# contrib/demo.sh end to end, as a user runs it (with this build): it must
# exit 0 and show what a user relies on: the guest's processes, a process's
# status and maps, the hexdump of its heap (the guest's own pattern), the
# live guest's counter moving, standing still while paused, moving again.
. "$(dirname "$0")/lib.sh"
need_fuse
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing"
[ -x "$BUILD/vmemfs-profile" ] || skip "$BUILD/vmemfs-profile not built (libbpf missing?)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-t-demo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/demo"
rc=0
VMEMFS_DEMO_BUILD=$BUILD VMEMFS_DEMO_DIR=$WORK/demo bash "$SRC/contrib/demo.sh" \
    >"$WORK/out" 2>&1 || rc=$?
# Without the terminal's bold escapes.
sed 's/\x1b\[[0-9;]*m//g' "$WORK/out" >"$WORK/demo.txt"
if [ $rc -ne 0 ]; then
    tail -n 40 "$WORK/demo.txt"
    echo "FAIL: contrib/demo.sh exited $rc"
    exit 1
fi
python3 - "$WORK/demo.txt" "$WORK/demo/guest/truth.txt" <<'PY'
import re, sys
out = open(sys.argv[1], errors="replace").read()
truth = open(sys.argv[2], errors="replace").read()
fails = 0
def ok(cond, what):
    global fails
    if not cond:
        fails += 1
        print("FAIL: demo: " + what)
procs = {int(m[1]): m[3] for m in re.finditer(r"^PROC (\d+) (\d+) \d+ (.*)$", truth, re.M)}
# The process list: header, then "PID PPID NAME" rows; every user process
# of the guest with its name (kernel threads are partly filtered out).
listing = out.split("   PID   PPID  NAME\n", 1)
ok(len(listing) == 2, "the process list header")
rows = {int(m[1]): m[3] for m in re.finditer(r"^ *(\d+) +(\d+)  (\S+)$", listing[-1], re.M)}
for pid, name in procs.items():
    if name in ("init", "sh", "pattern", "sleep"):
        ok(rows.get(pid) == name, "process %d %s listed (got %r)" % (pid, name, rows.get(pid)))
# The pattern process's status and maps.
m = re.search(r"^PATTERN pid=(\d+) tag=(\d+) kind=heap addr=0x([0-9a-f]+)", truth, re.M)
pid, tag, heap = int(m[1]), int(m[2]), int(m[3], 16)
ok(re.search(r"^Name:\tpattern$", out, re.M) and re.search(r"^Pid:\t%d$" % pid, out, re.M),
   "status of process %d" % pid)
ok(re.search(r"^[0-9a-f]+-[0-9a-f]+ rw-p .* \[heap\]$", out, re.M), "maps shows [heap]")
# The hexdump of the heap's first whole page: 4 lines of the pattern, each
# 8-byte word its own address XOR magic XOR tag (contrib/guest/verify.py).
page = (heap + 4095) // 4096 * 4096
want = b"".join(((page + i) ^ 0x564D454D46530000 ^ tag).to_bytes(8, "little") for i in range(0, 64, 8))
got = b""
for i in range(4):
    mm = re.search(r"^%08x  ((?:[0-9a-f]{2} +){16})" % (i * 16), out, re.M)
    ok(mm, "hexdump line %d" % i)
    got += bytes.fromhex(mm[1].replace(" ", "")) if mm else b""
ok(got == want, "hexdump of the heap is the guest's pattern: %s, want %s" % (got.hex(), want.hex()))
# The live counter: moving, still while paused, moving again.
run = [int(x) for x in re.findall(r"^  running: (\d+)$", out, re.M)]
paused = [int(x) for x in re.findall(r"^  paused:  (\d+)$", out, re.M)]
resumed = [int(x) for x in re.findall(r"^  resumed: (\d+)$", out, re.M)]
ok(len(run) == 3 and run[0] < run[1] < run[2], "counter moves while running: %s" % run)
ok(len(paused) == 2 and paused[0] == paused[1] >= run[-1], "counter still while paused: %s" % paused)
ok(len(resumed) == 1 and paused and resumed[0] > paused[-1], "counter moves after resume: %s" % resumed)
ok("QEMU has exited: its directory is gone" in out and out.rstrip().endswith("done."),
   "the demo ran to its end")
print("demo: %s" % ("all checks passed" if not fails else "%d checks failed" % fails))
sys.exit(1 if fails else 0)
PY
