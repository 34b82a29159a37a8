#!/usr/bin/env python3
"""live_vms.py VMEMFS WORK SHM_PREFIX [SYMBOLS_DIR] - two running guests
(QEMU TCG, 256 MiB each) in one vmemfs, through FUSE, as a user would:

  a  guest RAM in a shared memory-backend-file (the zero-copy path)
  b  plain RAM (vmemfs reads QEMU's process memory)

Each guest has a second QMP socket for the test's own commands (vmemfs holds
the first).  Checked:

 1. ls shows both; info.json names the data path; paused with
    `echo pause > control`, pmem.raw equals QEMU's own dump-guest-memory
    (ELF, paging=false) of the same paused guest byte for byte; resumed.
 2. The guest's counter through proc/<pid>/vmem (through pmem at its
    physical address when there are no symbols): it moves while the guest
    runs (two reads 1.5 s apart, past the 1 s cache validity); after
    `echo flush > control` a read is at least what QEMU read just before;
    right after `pause` a read shows the paused value (not one cached from
    before), and stays so; after `resume` it moves again.
 3. --freeze-on-open: an open pmem.raw pauses the guest (query-status on
    the second socket) and shows the frozen instant (even for a page read
    a moment before), the counter stands still, a second handle keeps it
    paused after the first closes, closing the last resumes it.
 4. Read-only by default: opening vmem/pmem/pmem.raw for writing fails with
    EROFS.  With -o rw: 8 bytes written at the counter's address through
    vmem reach the guest (QEMU reads them; the counter counts on from
    there); a page written through pmem reads back through pmem, pmem.raw,
    QEMU (pmemsave) and the process's vmem; so does a partial-page write.
"""
import errno
import json
import os
import random
import struct
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from live_common import (Checks, check_exit, mount, boot_many, compare_with_elf,  # noqa: E402
                         control, dump_elf, log, note, open_errno, u64, wait_until,
                         QMP, QMPError)

vmemfs, work, shm = sys.argv[1], sys.argv[2], sys.argv[3]
symbols = sys.argv[4] if len(sys.argv) > 4 and os.path.isdir(sys.argv[4]) else None
c = Checks("live_vms")
VMS = ("a", "b")
WANT_PATH = {"a": "shared file", "b": "process memory"}
sym_opt = ["--symbols", symbols] if symbols else []
if not symbols:
    note("no symbols directory (ISF): proc/ is not checked; the counter is "
         "read through pmem at its physical address instead of proc/<pid>/vmem")

G = {}


def vms_spec():
    return [(n, "qemu:" + G[n].sock) for n in VMS]


class Counter:
    """The guest's counter as a user reads it: proc/<pid>/vmem at the
    address the guest printed, or pmem at its physical address."""

    def __init__(self, m, vm, flags=os.O_RDONLY):
        g = G[vm]
        pid, vaddr = g.truth.counter
        if symbols:
            self.path, self.off = m.path(vm, "proc", str(pid), "vmem"), vaddr
        else:
            self.path, self.off = m.path(vm, "pmem"), g.truth.counter_paddr
        self.fd = os.open(self.path, flags)

    def read(self):
        return u64(self.fd, self.off)

    def write(self, v):
        return os.pwrite(self.fd, struct.pack("<Q", v), self.off)

    def close(self):
        os.close(self.fd)


def running(g):
    return g.qmp.status() == "running"


def part1_2_4ro():
    with mount(vmemfs, work, vms_spec(), extra=sym_opt) as m:
        # ---- 1: two guests, one mount -------------------------------------
        c.eq(sorted(os.listdir(m.dir)), list(VMS), "ls MNT")
        for vm in VMS:
            g = G[vm]
            with open(m.path(vm, "info.json")) as f:
                info = json.load(f)
            src = info.get("source", {})
            c.eq(info.get("driver"), "qemu", "%s: info.json driver" % vm)
            c.eq(src.get("data_path"), WANT_PATH[vm], "%s: info.json data_path" % vm)
            c.eq(src.get("pid"), g.pid, "%s: info.json QEMU pid" % vm)
            c.eq(src.get("run_state"), "running", "%s: info.json run_state" % vm)
            c.eq(info.get("writable"), False, "%s: info.json writable without -o rw" % vm)
            c.eq([(int(r["start"], 16), int(r["end"], 16)) for r in info.get("ranges", [])],
                 g.ranges, "%s: info.json ranges = QEMU's RAM ranges" % vm)
            size = g.ranges[-1][1]
            c.eq(os.stat(m.path(vm, "pmem.raw")).st_size, size, "%s: pmem.raw st_size" % vm)
            if symbols:
                pids = set(os.listdir(m.path(vm, "proc")))
                cpid = g.truth.counter[0]
                c.ok(str(cpid) in pids, "%s: the counter process %d is in proc/" % (vm, cpid))
                with open(m.path(vm, "proc", str(cpid), "status")) as f:
                    c.ok("Name:\tpattern" in f.read(), "%s: proc/%d/status names pattern" % (vm, cpid))

        # ---- QEMU's monitor stays usable: vmemfs holds no QMP connection
        # between commands, so the operator's own client on the very socket
        # vmemfs uses is served at once, while the VM is mounted and read.
        for vm in VMS:
            g = G[vm]
            try:
                op = QMP(g.sock, timeout=5)
                st = op.status()
                with open(m.path(vm, "pmem.raw"), "rb") as f:
                    head = f.read(4096)
                op.close()
                c.eq(st, "running", "%s: a second QMP client on vmemfs's socket is "
                     "served while mounted" % vm)
                c.eq(len(head), 4096, "%s: pmem.raw reads while that client is "
                     "connected" % vm)
            except (OSError, QMPError) as e:
                c.ok(False, "%s: a second QMP client on vmemfs's socket while "
                     "mounted: %s" % (vm, e))
            with open(m.path(vm, "info.json")) as f:
                c.eq(json.load(f).get("source", {}).get("run_state"), "running",
                     "%s: vmemfs's own commands still work after it" % vm)

        for vm in VMS:
            g = G[vm]
            # A user looks around first (this fills vmemfs's frame cache),
            # then pauses and takes the image.
            cnt = Counter(m, vm)
            cnt.read()
            time.sleep(0.3)               # well within the 1 s validity
            ok, err = control(m, vm, "pause")
            c.ok(ok, "%s: echo pause > control (%s)" % (vm, err))
            c.eq(g.qmp.status(), "paused", "%s: QEMU says paused after 'pause'" % vm)
            elf = dump_elf(g.qmp, os.path.join(work, vm + ".elf"))
            t = time.monotonic()
            n, bad, nonzero, outside = compare_with_elf(elf, m.path(vm, "pmem.raw"), g.ranges)
            log("%s: compared %d MiB of pmem.raw with the QMP dump in %.1f s (%d MiB non-zero)"
                % (vm, n >> 20, time.monotonic() - t, nonzero >> 20))
            c.eq(n, sum(e - s for s, e in g.ranges), "%s: dump covers all RAM" % vm)
            c.ok(not bad, "%s: paused pmem.raw == QMP dump-guest-memory byte for byte "
                 "(%d pages differ%s)" % (vm, len(bad), ": " + ", ".join(
                     "%#x" % p for p in bad[:8]) if bad else ""))
            if outside:
                log("%s: dump PT_LOADs outside RAM (ROM, not in pmem): %s"
                    % (vm, ", ".join("%#x+%#x" % o for o in outside)))
            os.unlink(elf)
            ok, err = control(m, vm, "resume")
            c.ok(ok, "%s: echo resume > control (%s)" % (vm, err))
            c.eq(g.qmp.status(), "running", "%s: QEMU says running after 'resume'" % vm)
            cnt.close()

        # ---- 2: the counter ----------------------------------------------
        for vm in VMS:
            g = G[vm]
            pa = g.truth.counter_paddr
            cnt = Counter(m, vm)
            v1 = cnt.read()
            time.sleep(1.5)
            v2 = cnt.read()
            c.ok(v2 > v1, "%s: counter moves while running: %d then %d 1.5 s later" % (vm, v1, v2))
            # Without flush, a read 0.3 s later may come from the cache:
            # shown, not asserted.
            v3 = cnt.read()
            time.sleep(0.3)
            v4 = cnt.read()
            log("%s: no flush, 0.3 s apart: %d, %d (%s)"
                % (vm, v3, v4, "cached" if v3 == v4 else "fresh"))
            # flush: once QEMU has seen the counter pass v4, a read after
            # flush must not be older than what QEMU saw.
            q = wait_until(lambda: (lambda x: x if x > v4 else None)(g.qmp.xp_u64(pa)), 10)
            c.ok(q is not None, "%s: QEMU sees the counter move past %d" % (vm, v4))
            ok, err = control(m, vm, "flush")
            c.ok(ok, "%s: echo flush > control (%s)" % (vm, err))
            v5 = cnt.read()
            c.ok(q is not None and v5 >= q,
                 "%s: after flush the read is fresh: %d, QEMU had %s before the flush" % (vm, v5, q))
            # pause: the first read after pausing must be the paused value,
            # even when the page was read (cached) a moment before.
            cnt.read()
            time.sleep(0.3)
            ok, err = control(m, vm, "pause")
            c.ok(ok, "%s: pause (%s)" % (vm, err))
            qp = g.qmp.xp_u64(pa)
            p1 = cnt.read()
            c.eq(p1, qp, "%s: read right after pause = the paused guest's counter "
                 "(QEMU's xp), not a value cached before the pause" % vm)
            time.sleep(1.5)
            p2 = cnt.read()
            c.eq(p2, qp, "%s: paused: counter still %d 1.5 s later" % (vm, qp))
            c.eq(g.qmp.xp_u64(pa), qp, "%s: paused: QEMU's counter still" % vm)
            ok, err = control(m, vm, "resume")
            c.ok(ok, "%s: resume (%s)" % (vm, err))
            moved = wait_until(lambda: cnt.read() > qp, 10)
            c.ok(moved, "%s: counter moves again after resume" % vm)
            cnt.close()

        # ---- 4 (read-only part): no writes without -o rw -------------------
        for vm in VMS:
            targets = [m.path(vm, "pmem"), m.path(vm, "pmem.raw")]
            if symbols:
                targets.append(m.path(vm, "proc", str(G[vm].truth.counter[0]), "vmem"))
            for p in targets:
                c.eq(errno.errorcode.get(open_errno(p, os.O_WRONLY), "0"), "EROFS",
                     "%s: open(%s, O_WRONLY) without -o rw" % (vm, os.path.relpath(p, m.dir)))
                c.eq(errno.errorcode.get(open_errno(p, os.O_RDWR), "0"), "EROFS",
                     "%s: open(%s, O_RDWR) without -o rw" % (vm, os.path.relpath(p, m.dir)))
        c.ok(m.alive(), "vmemfs alive (ro mount)")
    check_exit(c, m, "ro mount")


def part3_freeze():
    with mount(vmemfs, work, vms_spec(), extra=["--freeze-on-open"]) as m:
        for vm in VMS:
            g = G[vm]
            pa = g.truth.counter_paddr
            c.ok(wait_until(lambda: running(g), 5), "%s: running before pmem.raw is opened" % vm)
            raw = m.path(vm, "pmem.raw")
            # The counter's page read a moment before (through pmem, which
            # does not freeze): the frozen image must still be the instant
            # of the freeze, not what was cached before it.
            fd = os.open(m.path(vm, "pmem"), os.O_RDONLY)
            u64(fd, pa)
            os.close(fd)
            time.sleep(0.3)
            h1 = os.open(raw, os.O_RDONLY)
            c.eq(g.qmp.status(), "paused", "%s: --freeze-on-open: open pmem.raw pauses the guest" % vm)
            q1 = g.qmp.xp_u64(pa)
            c.eq(u64(h1, pa), q1, "%s: frozen: pmem.raw holds the frozen guest's counter "
                 "(QEMU's xp), not one cached before the freeze" % vm)
            time.sleep(1.2)
            c.eq(g.qmp.xp_u64(pa), q1, "%s: frozen: the counter stands still" % vm)
            c.eq(u64(h1, pa), q1, "%s: frozen: pmem.raw still shows it" % vm)
            h2 = os.open(raw, os.O_RDONLY)
            os.close(h1)
            time.sleep(0.5)            # release is asynchronous: give it time
            c.eq(g.qmp.status(), "paused", "%s: closing one of two handles keeps it paused" % vm)
            c.eq(g.qmp.xp_u64(pa), q1, "%s: ... and the counter still" % vm)
            os.close(h2)
            c.ok(wait_until(lambda: running(g), 10),
                 "%s: closing the last handle resumes the guest (%s)" % (vm, g.qmp.status()))
            c.ok(wait_until(lambda: g.qmp.xp_u64(pa) > q1, 10), "%s: the counter moves again" % vm)
        # Not part of the contract, shown only: what closing a frozen
        # handle does to a guest the user had paused through control.
        g = G["a"]
        control(m, "a", "pause")
        os.close(os.open(m.path("a", "pmem.raw"), os.O_RDONLY))
        time.sleep(0.5)
        st = g.qmp.status()
        if st != "paused":
            note("--freeze-on-open: a guest paused with 'echo pause > control' is "
                 "resumed when a pmem.raw handle opened afterwards closes (%s)" % st)
        control(m, "a", "resume")
        c.ok(m.alive(), "vmemfs alive (--freeze-on-open mount)")
    check_exit(c, m, "--freeze-on-open mount")


def part4_rw():
    rnd = random.Random(0x5eed)
    with mount(vmemfs, work, vms_spec(), extra=["-o", "rw"] + sym_opt) as m:
        for vm in VMS:
            g = G[vm]
            pa = g.truth.counter_paddr
            with open(m.path(vm, "info.json")) as f:
                c.eq(json.load(f).get("writable"), True, "%s: info.json writable with -o rw" % vm)
            # 8 bytes at the counter's address.
            cnt = Counter(m, vm, os.O_RDWR)
            before = cnt.read()              # the frame may now be cached
            new = 0x5A5A00000000 + rnd.randrange(1 << 24)
            c.eq(cnt.write(new), 8, "%s: pwrite 8 bytes at the counter (%s)"
                 % (vm, "vmem" if symbols else "pmem"))
            back = cnt.read()
            c.ok(new <= back < new + 100000,
                 "%s: read back right after the write: %d (wrote %d, was %d)" % (vm, back, new, before))
            q = g.qmp.xp_u64(pa)
            c.ok(new <= q < new + 100000, "%s: QEMU sees the written counter: %d (wrote %d)" % (vm, q, new))
            c.ok(wait_until(lambda: g.qmp.xp_u64(pa) > max(q, new), 10),
                 "%s: the guest counts on from the written value" % vm)
            c.ok(wait_until(lambda: cnt.read() > max(q, new), 10),
                 "%s: ... and vmemfs reads it counting on" % vm)
            cnt.close()

            # A page of the tag-1 process's mmap region through pmem.
            pid1 = [p for p, tag, kind, _, _ in g.truth.patterns if tag == 1 and kind == "mmap"][0]
            vaddr, ppage = g.truth.phys[(pid1, "mmap")]
            page = bytes(rnd.randrange(256) for _ in range(4096))
            fd = os.open(m.path(vm, "pmem"), os.O_RDWR)
            try:
                c.eq(os.pwrite(fd, page, ppage), 4096, "%s: pwrite a page at %#x through pmem" % (vm, ppage))
                c.ok(os.pread(fd, 4096, ppage) == page, "%s: pmem reads the page back" % vm)
                patch = bytes(rnd.randrange(256) for _ in range(24))
                c.eq(os.pwrite(fd, patch, ppage + 0x123), 24, "%s: pwrite 24 bytes inside the page" % vm)
                page = page[:0x123] + patch + page[0x123 + 24:]
                c.ok(os.pread(fd, 4096, ppage) == page, "%s: pmem reads the patched page back" % vm)
            finally:
                os.close(fd)
            with open(m.path(vm, "pmem.raw"), "rb") as f:
                f.seek(ppage)
                c.ok(f.read(4096) == page, "%s: pmem.raw shows the written page" % vm)
            saved = g.qmp.pmemsave(ppage, 4096, os.path.join(work, vm + ".page"))
            c.ok(saved == page, "%s: QEMU's pmemsave shows the written page" % vm)
            if symbols:
                fd = os.open(m.path(vm, "proc", str(pid1), "vmem"), os.O_RDONLY)
                try:
                    c.ok(os.pread(fd, 4096, vaddr) == page,
                         "%s: proc/%d/vmem shows the page written through pmem" % (vm, pid1))
                finally:
                    os.close(fd)
        c.ok(m.alive(), "vmemfs alive (-o rw mount)")
    check_exit(c, m, "-o rw mount")


try:
    t0 = time.monotonic()
    G.update(zip(VMS, boot_many([
        (os.path.join(work, "a"), "--shared-ram", shm + ".a.ram",
         "--qmp2", os.path.join(work, "a.qmp2")),
        (os.path.join(work, "b"), "--qmp2", os.path.join(work, "b.qmp2")),
    ])))
    log("booted a (pid %d) and b (pid %d) in %.1f s"
        % (G["a"].pid, G["b"].pid, time.monotonic() - t0))
    part1_2_4ro()
    part3_freeze()
    part4_rw()
except Exception as e:             # noqa: BLE001 - counted, then shown
    traceback.print_exc()
    c.ok(False, "aborted: %s" % e)
finally:
    for g in G.values():
        g.kill()
    for vm in VMS:
        if os.path.exists(shm + ".%s.ram" % vm):
            os.unlink(shm + ".%s.ram" % vm)
c.finish()
