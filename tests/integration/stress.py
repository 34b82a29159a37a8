#!/usr/bin/env python3
"""stress.py VMEMFS [SECONDS] - concurrent readers, every byte checked.

The synthetic layout of mkdump.py (holes, an unaligned range) as raw, ELF, LiME and kdump dumps, four VMs in one mount; 16 reader
threads for SECONDS (60 by default, VMEMFS_STRESS_SECS) read pmem.raw and
pmem of random VMs at random offsets and sizes (1 byte to 1 MiB, across
holes and range ends), each through its own handle or a shared one, and
check every byte against the source: pmem.raw is the padded truth; pmem
ends at a hole (short read) or fails with EIO when the read starts in one.
A 17th thread stats, lists and reads info.json and memmap meanwhile.
Prints reads, bytes checked and wrong bytes; any wrong byte, unexpected
error or dead daemon fails.
"""
import errno
import json
import mmap
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmemfs_test import Checks, Mount  # noqa: E402

PAGE = 4096
vmemfs = sys.argv[1]
secs = float(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("VMEMFS_STRESS_SECS", 60))
here = os.path.dirname(os.path.abspath(__file__))
work = tempfile.mkdtemp(prefix="vmemfs-stress-")
c = Checks("stress")
# Without --high: the writer holds the whole layout in memory.
subprocess.run([sys.executable, os.path.join(here, "mkdump.py"), work], check=True)
lay = json.load(open(os.path.join(work, "layout.json")))
ranges = [tuple(r) for r in lay["ranges"]]
size = ranges[-1][1]
excluded = lay["kdump_excluded_gfn"] * PAGE
VMS = {"raw": "padded.raw", "elf": "dump.elf", "lime": "dump.lime", "kd": "dump.kdump"}
tf = open(os.path.join(work, "padded.raw"), "rb")
truth = mmap.mmap(tf.fileno(), 0, prot=mmap.PROT_READ)


def ranges_of(vm):
    """A raw image is one range: its holes are data (zeros)."""
    return [(0, size)] if vm == "raw" else ranges


def present(vm, a):
    """Does the source hold byte a?"""
    if vm == "kd" and excluded <= a < excluded + PAGE:
        return False
    return any(s <= a < e for s, e in ranges_of(vm))


def data_end(vm, a):
    """The end of the data run holding a (strict reads stop there)."""
    for s, e in ranges_of(vm):
        if s <= a < e:
            if vm == "kd" and a < excluded < e:
                return excluded
            if vm == "kd" and excluded <= a < excluded + PAGE:
                return a
            return e
    return a


def expect(vm, kind, off, n):
    """(bytes, errno) a correct vmemfs answers."""
    n = max(0, min(n, size - off))
    if kind == "pmem.raw":
        b = bytearray(truth[off:off + n])
        if vm == "kd" and off < excluded + PAGE and off + n > excluded:
            a, z = max(off, excluded), min(off + n, excluded + PAGE)
            b[a - off:z - off] = bytes(z - a)
        return bytes(b), 0
    if n == 0:
        return b"", 0
    if not present(vm, off):
        return b"", errno.EIO
    end = min(off + n, data_end(vm, off))
    return bytes(truth[off:end]), 0


stats = {"reads": 0, "bytes": 0, "wrong": 0, "errors": 0}
lock = threading.Lock()
stop = time.time() + secs


def reader(m, seed):
    rnd = random.Random(seed)
    shared = {}
    while time.time() < stop:
        vm = rnd.choice(list(VMS))
        kind = rnd.choice(("pmem.raw", "pmem"))
        # Offsets near range edges half the time: holes and ends are where
        # plans split.
        if rnd.random() < 0.5:
            edge = rnd.choice([x for r in ranges for x in r] + [excluded])
            off = max(0, edge + rnd.randint(-3 * PAGE, 3 * PAGE))
        else:
            off = rnd.randrange(0, size)
        n = rnd.choice((1, 7, PAGE, 3 * PAGE + 5, 64 << 10, 1 << 20, rnd.randint(1, 1 << 20)))
        path = m.path(vm, kind)
        own = rnd.random() < 0.5
        if not own and path not in shared:
            shared[path] = os.open(path, os.O_RDONLY)
        fd = os.open(path, os.O_RDONLY) if own else shared[path]
        try:
            got, e = os.pread(fd, n, off), 0
        except OSError as ex:
            got, e = b"", ex.errno
        finally:
            if own:
                os.close(fd)
        want, we = expect(vm, kind, off, n)
        wrong = 0
        if e != we or got != want:
            wrong = sum(1 for a, b in zip(got, want) if a != b) + abs(len(got) - len(want))
            with lock:
                if stats["wrong"] + stats["errors"] < 10:
                    print("MISMATCH %s/%s off 0x%x n %d: got %d bytes errno %d, want %d "
                          "bytes errno %d" % (vm, kind, off, n, len(got), e, len(want), we),
                          flush=True)
        with lock:
            stats["reads"] += 1
            stats["bytes"] += len(got)
            stats["wrong"] += wrong
            stats["errors"] += 1 if e != we else 0
    for fd in shared.values():
        os.close(fd)


def meta(m):
    while time.time() < stop:
        for vm in VMS:
            os.stat(m.path(vm, "pmem"))
            os.listdir(m.path(vm))
            with open(m.path(vm, "info.json")) as f:
                json.load(f)
            with open(m.path(vm, "memmap")) as f:
                f.read()


try:
    with Mount(vmemfs, [(vm, "file:" + os.path.join(work, f)) for vm, f in VMS.items()]) as m:
        threads = [threading.Thread(target=reader, args=(m, i)) for i in range(16)]
        threads.append(threading.Thread(target=meta, args=(m,)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("stress: %d readers, %.0f s: %d reads, %d bytes checked, %d wrong bytes, "
              "%d unexpected errors" % (16, secs, stats["reads"], stats["bytes"],
                                        stats["wrong"], stats["errors"]), flush=True)
        c.ok(stats["reads"] > 16, "stress: reads happened")
        c.eq(stats["wrong"], 0, "stress: wrong bytes")
        c.eq(stats["errors"], 0, "stress: unexpected errors")
        c.ok(m.alive(), "stress: the daemon lives")
    c.eq(m.proc.returncode, 0, "stress: vmemfs exit status")
finally:
    truth.close()
    tf.close()
    subprocess.run(["rm", "-rf", work], check=False)
c.finish()
