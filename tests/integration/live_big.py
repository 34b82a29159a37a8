#!/usr/bin/env python3
"""live_big.py VMEMFS WORK SHM_PREFIX - a running guest with RAM above
4 GiB (QEMU TCG, q35, 4608 MiB: RAM 0-2 GiB and 4-6.5 GiB) whose RAM is a
shared file in SHM, through FUSE:

  - pmem and pmem.raw: st_size = the end of the highest RAM range (above
    4 GiB), st_blocks = the RAM, memmap lists both ranges;
  - the hole below 4 GiB: zeros in pmem.raw, EIO in pmem (a read running
    into it is cut short there), SEEK_DATA/SEEK_HOLE find its ends;
  - paused, every byte above 4 GiB (and the last 16 MiB below the hole)
    equals QEMU's dump-guest-memory of those ranges (paging=false);
  - reading all of it does not allocate the guest's sparse RAM file.
"""
import errno
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from live_common import (MiB, Checks, check_exit, mount, boot, compare_with_elf, control,  # noqa: E402
                         dump_elf, log, pread_errno, shm_room)

vmemfs, work, shm = sys.argv[1], sys.argv[2], sys.argv[3]
c = Checks("live_big")
GiB = 1 << 30
ram_file = shm + ".big.ram"
# The dump of 2.5 GiB goes next to the RAM file when there is room for it.
dump_dir = os.path.dirname(ram_file) if shm_room(ram_file) > 8 * GiB else work

guest = None
dumps = []


def run():
    global guest
    t = time.monotonic()
    guest = boot(os.path.join(work, "big"), "--mem", "4608M", "--shared-ram", ram_file,
                 "--qmp2", os.path.join(work, "big.qmp2"))
    log("booted 4608 MiB guest (pid %d) in %.1f s; RAM %s" % (
        guest.pid, time.monotonic() - t, ", ".join("%#x-%#x" % r for r in guest.ranges)))
    rg = guest.ranges
    c.ok(len(rg) == 2 and rg[0][0] == 0 and rg[1][0] >= 4 * GiB,
         "QEMU's RAM: one range below and one above 4 GiB")
    lo_e, (hi_s, hi_e) = rg[0][1], rg[-1]
    with mount(vmemfs, work, [("big", "qemu:" + guest.sock)]) as m:
        raw, pmem = m.path("big", "pmem.raw"), m.path("big", "pmem")
        for p in (raw, pmem):
            st = os.stat(p)
            name = os.path.basename(p)
            c.eq(st.st_size, hi_e, "%s st_size = end of the highest RAM range" % name)
            c.eq(st.st_blocks * 512, 4608 * MiB, "%s st_blocks = the RAM" % name)
        with open(m.path("big", "memmap")) as f:
            mm = f.read()
        for s, e in rg:
            c.ok("%08x-%08x" % (s, e - 1) in mm, "memmap lists %#x-%#x: %r" % (s, e, mm))

        ok, err = control(m, "big", "pause")
        c.ok(ok, "echo pause > control (%s)" % err)
        c.eq(guest.qmp.status(), "paused", "QEMU says paused")
        blocks0 = os.stat(ram_file).st_blocks

        # The hole between the ranges.
        for at in (lo_e, (lo_e + hi_s) // 2, hi_s - MiB):
            data, e = pread_errno(raw, at, MiB)
            c.ok(e == 0 and data == bytes(MiB), "pmem.raw at %#x (hole): 1 MiB of zeros (%s)"
                 % (at, errno.errorcode.get(e, "%d bytes" % len(data))))
            data, e = pread_errno(pmem, at, MiB)
            c.eq(errno.errorcode.get(e, "read %d bytes" % len(data)), "EIO", "pmem at %#x (hole)" % at)
        below = guest.qmp.pmemsave(lo_e - 4096, 4096, os.path.join(work, "big.page"))
        data, e = pread_errno(pmem, lo_e - 4096, 8192)
        c.ok(e == 0 and data == below, "pmem: a read running into the hole stops at it "
             "(%s, %d bytes)" % (errno.errorcode.get(e, "ok"), len(data)))
        data, e = pread_errno(raw, lo_e - 4096, 8192)
        c.ok(e == 0 and data == below + bytes(4096), "pmem.raw: the same read, zeros after the RAM")
        fd = os.open(pmem, os.O_RDONLY)
        try:
            c.eq(os.lseek(fd, 0, os.SEEK_HOLE), lo_e, "SEEK_HOLE from 0")
            c.eq(os.lseek(fd, lo_e, os.SEEK_DATA), hi_s, "SEEK_DATA from the hole")
            c.eq(os.lseek(fd, hi_s, os.SEEK_HOLE), hi_e, "SEEK_HOLE above 4 GiB")
        finally:
            os.close(fd)

        # vmemfs reads a tmpfs hole through the file, not through a mapping
        # (which would allocate it), so reading everything above 4 GiB
        # leaves the sparse RAM file as it was.  (QEMU's dump, below, does
        # allocate it: it reads through its own mapping.)
        t = time.monotonic()
        with open(raw, "rb", buffering=0) as f:
            at = hi_s
            while at < hi_e:
                at += len(os.pread(f.fileno(), 4 * MiB, at)) or hi_e
        log("read %d MiB above 4 GiB in %.1f s" % ((hi_e - hi_s) >> 20, time.monotonic() - t))
        c.eq(os.stat(ram_file).st_blocks, blocks0,
             "reading it all did not allocate the guest's sparse RAM file")

        # Above 4 GiB (and the top of the low range) against QEMU's dump.
        t = time.monotonic()
        hi_elf = dump_elf(guest.qmp, os.path.join(dump_dir, os.path.basename(shm) + ".big-hi.elf"),
                          hi_s, hi_e - hi_s)
        dumps.append(hi_elf)
        lo_elf = dump_elf(guest.qmp, os.path.join(work, "big-lo.elf"), lo_e - 16 * MiB, 16 * MiB)
        dumps.append(lo_elf)
        log("dumped %d MiB in %.1f s" % ((hi_e - hi_s + 16 * MiB) >> 20, time.monotonic() - t))
        t = time.monotonic()
        n, bad, nonzero, _ = compare_with_elf(hi_elf, raw, rg)
        log("compared %d MiB above 4 GiB in %.1f s (%d MiB non-zero)"
            % (n >> 20, time.monotonic() - t, nonzero >> 20))
        c.eq(n, hi_e - hi_s, "the dump covers all RAM above 4 GiB")
        c.ok(not bad, "pmem.raw above 4 GiB == dump-guest-memory (%d pages differ%s)"
             % (len(bad), ": " + ", ".join("%#x" % p for p in bad[:8]) if bad else ""))
        n, bad, _, _ = compare_with_elf(hi_elf, pmem, [(hi_s, hi_s + 64 * MiB), (hi_e - 64 * MiB, hi_e)])
        c.ok(n == 128 * MiB and not bad, "pmem (strict) at both ends above 4 GiB == the dump")
        n, bad, _, _ = compare_with_elf(lo_elf, raw, rg)
        c.ok(n == 16 * MiB and not bad, "the 16 MiB below the hole == the dump")
        for p in dumps:
            os.unlink(p)
        dumps.clear()

        ok, err = control(m, "big", "resume")
        c.ok(ok, "echo resume > control (%s)" % err)
        c.eq(guest.qmp.status(), "running", "QEMU says running")
        c.ok(m.alive(), "vmemfs alive")
    check_exit(c, m, "mount")


try:
    run()
except Exception as e:             # noqa: BLE001 - counted, then shown
    traceback.print_exc()
    c.ok(False, "aborted: %s" % e)
finally:
    if guest:
        guest.kill()
    for p in dumps + [ram_file]:
        if os.path.exists(p):
            os.unlink(p)
c.finish()
