#!/usr/bin/env python3
"""live_qemu_dir.py VMEMFS WORK SHM_PREFIX [SYMBOLS_DIR] - `--qemu-dir DIR`
with real guests (QEMU TCG, 256 MiB) whose QMP sockets live in DIR:

  - web1 (RAM in a shared file) is booted first, its socket DIR/web1.qmp:
    once mounted, MNT/web1 is there (with proc/ when there are symbols);
  - web2 (plain RAM: process memory) is started while mounted as libvirt
    starts guests: paused before its firmware ran (-S), its socket created
    in DIR by QEMU, then `cont`: MNT/web2 appears within a few seconds, and
    once the guest has booted vmemfs shows its RAM as the guest has it
    (the firmware turns 0xc0000-0xfffff into RAM after QEMU started);
  - web1's QEMU is killed (SIGKILL) while a thread loops reading
    web1/pmem.raw: that reader gets EIO (does not hang), web1's directory
    goes within a few seconds, a new open of it fails with ENOENT, and web2
    (paused) reads the same bytes all along, equal to QEMU's pmemsave;
    vmemfs stays up;
  - removing DIR/web2.qmp removes web2 from the mount.
"""
import errno
import json
import os
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from live_common import (MiB, Checks, check_exit, mount, boot, control, log, note,  # noqa: E402
                         open_errno, page_diff, start_like, wait_until)

vmemfs, work, shm = sys.argv[1], sys.argv[2], sys.argv[3]
symbols = sys.argv[4] if len(sys.argv) > 4 and os.path.isdir(sys.argv[4]) else None
c = Checks("live_qemu_dir")
qdir = os.path.join(work, "qd")
os.makedirs(qdir, exist_ok=True)
REGION = 32 * MiB              # of web2, compared while web1 dies
APPEAR = 10                    # seconds allowed for a directory to come or go

guests = []


def ls(m):
    try:
        return sorted(os.listdir(m.dir))
    except OSError as e:
        return ["<%s>" % errno.errorcode.get(e.errno, e.errno)]


def run():
    web1 = boot(os.path.join(work, "web1"), "--shared-ram", shm + ".web1.ram",
                "--qmp-socket", os.path.join(qdir, "web1.qmp"),
                "--qmp2", os.path.join(work, "web1.qmp2"))
    guests.append(web1)
    extra = ["--qemu-dir", qdir] + (["--symbols", symbols] if symbols else [])
    with mount(vmemfs, work, [], extra=extra) as m:
        c.ok(wait_until(lambda: ls(m) == ["web1"], APPEAR),
             "web1 (socket there before mounting) is in the mount: %s" % ls(m))
        if symbols:
            c.ok(wait_until(lambda: os.path.isdir(m.path("web1", "proc")), 2),
                 "web1 has proc/")
            cpid = web1.truth.counter[0]
            c.ok(str(cpid) in os.listdir(m.path("web1", "proc")),
                 "web1: the counter process %d is in proc/" % cpid)

        # ---- a second guest started while mounted -------------------------
        # As libvirt does it: QEMU starts paused before its firmware (-S),
        # its monitor socket appears in DIR at once, then `cont`.
        sock2 = os.path.join(qdir, "web2.qmp")
        web2 = start_like(web1, os.path.join(work, "web2"), sock2, os.path.join(work, "web2.qmp2"))
        guests.append(web2)
        t_sock = wait_until(lambda: os.path.exists(sock2) and time.monotonic(), 60)
        c.ok(t_sock, "QEMU created web2.qmp in DIR")
        appeared = wait_until(lambda: "web2" in ls(m) and time.monotonic(), 30)
        c.ok(appeared and t_sock and appeared - t_sock <= APPEAR,
             "web2 appears within %d s of its socket (%s)"
             % (APPEAR, "%.1f s" % (appeared - t_sock) if appeared and t_sock else "never"))
        if appeared and t_sock:
            log("web2 in the mount %.2f s after QEMU created its socket" % (appeared - t_sock))
        web2.qmp.cmd("cont")
        t = time.monotonic()
        if not web2.wait_ready(300):
            raise RuntimeError("web2 did not boot (console in %s)" % web2.out)
        log("web2 (pid %d) booted in %.1f s; mount: %s" % (web2.pid, time.monotonic() - t, ls(m)))
        with open(m.path("web2", "info.json")) as f:
            info = json.load(f)
        for b in info["source"].get("ram_blocks", []):
            if b.get("guest_ram"):
                log("web2 RAM block %s: %s at %s, verified %s (%s)" % (
                    b.get("id"), b.get("access"), b.get("host_address"), b.get("verified"), b.get("note")))
        got = [(int(r["start"], 16), int(r["end"], 16)) for r in info.get("ranges", [])]
        c.eq(got, web2.ranges, "web2: info.json ranges = the booted guest's RAM ranges "
             "(the firmware maps 0xc0000-0xfffff as RAM after QEMU started)")
        if symbols and not os.path.isdir(m.path("web2", "proc")):
            note("web2, picked up when QEMU created its socket (before its kernel "
                 "ran), has no proc/ even now that it has booted: %s"
                 % info.get("guest", {}).get("why_no_proc"))

        # ---- web1 killed during reads ------------------------------------
        ok, err = control(m, "web2", "pause")
        c.ok(ok, "web2: echo pause > control (%s)" % err)
        c.eq(web2.qmp.status(), "paused", "web2: QEMU says paused")
        with open(m.path("web2", "pmem.raw"), "rb") as f:
            ref = f.read(REGION)
        saved = web2.qmp.pmemsave(0, REGION, os.path.join(work, "web2.region"))
        c.ok(ref == saved, "web2 (paused): pmem.raw's first %d MiB = QEMU's pmemsave (%s)"
             % (REGION >> 20, page_diff(ref, saved)))

        state = {"reads": 0, "errno": None, "err_at": None, "other": None,
                 "w2_reads": 0, "w2_bad": 0, "w2_err": None}
        stop = threading.Event()

        def reader():
            try:
                fd = os.open(m.path("web1", "pmem.raw"), os.O_RDONLY)
            except OSError as e:
                state["other"] = "open: %s" % e
                return
            off = 0
            try:
                while not stop.is_set():
                    try:
                        os.pread(fd, MiB, off)
                    except OSError as e:
                        state["errno"], state["err_at"] = e.errno, time.monotonic()
                        return
                    state["reads"] += 1
                    off = (off + MiB) % (256 * MiB)
            finally:
                os.close(fd)

        def web2_reader():
            while not stop.is_set():
                try:
                    with open(m.path("web2", "pmem.raw"), "rb") as f:
                        got = f.read(REGION)
                except OSError as e:
                    state["w2_err"] = str(e)
                    return
                state["w2_reads"] += 1
                if got != ref:
                    state["w2_bad"] += 1

        r1 = threading.Thread(target=reader, daemon=True)
        r2 = threading.Thread(target=web2_reader, daemon=True)
        r1.start()
        r2.start()
        c.ok(wait_until(lambda: state["reads"] >= 20, 10), "web1: the reader reads (%d)" % state["reads"])
        t_kill = time.monotonic()
        os.kill(web1.pid, 9)
        r1.join(APPEAR + 5)
        c.ok(not r1.is_alive(), "web1: the reader does not hang once QEMU is killed")
        c.eq(errno.errorcode.get(state["errno"], state["errno"] or state["other"]), "EIO",
             "web1: the reader's error after the kill")
        if state["err_at"]:
            log("web1: EIO %.2f s after the kill, %d reads before" % (state["err_at"] - t_kill, state["reads"]))
        gone = wait_until(lambda: "web1" not in ls(m) and time.monotonic(), APPEAR)
        c.ok(gone, "web1's directory goes within %d s of the kill: %s" % (APPEAR, ls(m)))
        if gone:
            log("web1 gone from the mount %.2f s after the kill" % (gone - t_kill))
        c.eq(errno.errorcode.get(open_errno(m.path("web1", "pmem.raw"), os.O_RDONLY), "0"), "ENOENT",
             "web1/pmem.raw opened after it went")
        # web2 read on all along; a few more rounds now web1 is gone.
        n = state["w2_reads"]
        wait_until(lambda: state["w2_reads"] >= n + 2, 20)
        stop.set()
        r2.join(30)
        c.ok(not r2.is_alive() and state["w2_err"] is None,
             "web2 reads kept working (%s)" % (state["w2_err"] or "no error"))
        c.ok(state["w2_reads"] >= 3 and state["w2_bad"] == 0,
             "web2 read the same %d MiB throughout: %d reads, %d differed"
             % (REGION >> 20, state["w2_reads"], state["w2_bad"]))
        c.eq(ls(m), ["web2"], "ls MNT after web1's death")
        c.ok(m.alive(), "vmemfs alive after a QEMU was killed during reads")
        ok, err = control(m, "web2", "resume")
        c.ok(ok, "web2: resume (%s)" % err)
        c.eq(web2.qmp.status(), "running", "web2 runs again")

        # ---- a socket removed --------------------------------------------
        os.unlink(sock2)
        c.ok(wait_until(lambda: ls(m) == [], APPEAR),
             "removing web2.qmp from DIR removes web2: %s" % ls(m))
        c.ok(web2.alive(), "web2's QEMU itself still runs")
        c.ok(m.alive(), "vmemfs alive at the end")
    check_exit(c, m, "--qemu-dir mount")


try:
    run()
except Exception as e:             # noqa: BLE001 - counted, then shown
    traceback.print_exc()
    c.ok(False, "aborted: %s" % e)
finally:
    for g in guests:
        g.kill()
    if os.path.exists(shm + ".web1.ram"):
        os.unlink(shm + ".web1.ram")
c.finish()
