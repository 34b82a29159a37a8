#!/usr/bin/env python3
"""live_signal.py VMEMFS WORK SHM - a signal ends vmemfs cleanly (issue 13).

A test guest under QEMU TCG, mounted with --freeze-on-open; pmem.raw opened
(the guest pauses) and held open while vmemfs gets SIGTERM: vmemfs resumes
the guest it paused, releases the open files (ASan's leak check sees what
is left), unmounts and exits 0.  The same with SIGINT; and a guest the user
paused through control stays paused (it was not vmemfs's to resume).
"""
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from live_common import Checks, boot, check_exit, control, log, mount, wait_until  # noqa: E402

vmemfs, work, shm = sys.argv[1], sys.argv[2], sys.argv[3]
c = Checks("live_signal")
g = None


def signalled(sig, user_pause=False):
    what = signal.Signals(sig).name + (" (guest paused by the user)" if user_pause else "")
    m = mount(vmemfs, work, [("g", "qemu:" + g.sock)], extra=["--freeze-on-open"])
    try:
        c.ok(wait_until(lambda: g.qmp.status() == "running", 10), "%s: running at first" % what)
        if user_pause:
            control(m, "g", "pause")
        fds = [os.open(m.path("g", "pmem.raw"), os.O_RDONLY),
               os.open(m.path("g", "pmem"), os.O_RDONLY),
               os.open(m.path("g", "info.json"), os.O_RDONLY),
               os.open(m.path("g", "memmap"), os.O_RDONLY)]
        c.eq(g.qmp.status(), "paused", "%s: pmem.raw open: the guest is paused" % what)
        c.ok(len(os.pread(fds[0], 4096, 0x100000)) == 4096, "%s: pmem.raw reads" % what)
        m.proc.send_signal(sig)
        try:
            m.proc.wait(timeout=30)
        except Exception:          # noqa: BLE001 - reported below
            pass
        c.eq(m.proc.returncode, 0, "%s: vmemfs exits 0 on the signal" % what)
        want = "paused" if user_pause else "running"
        c.ok(wait_until(lambda: g.qmp.status() == want, 10),
             "%s: the guest is %s after vmemfs exited (%s)" % (what, want, g.qmp.status()))
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        c.ok(not os.path.ismount(m.dir), "%s: unmounted" % what)
    finally:
        m.close()
        if user_pause:
            g.qmp.cmd("cont")
    check_exit(c, m, what)


try:
    t0 = time.monotonic()
    g = boot(os.path.join(work, "sig"), "--qmp2", os.path.join(work, "sig.qmp2"))
    log("booted (pid %d) in %.1f s" % (g.pid, time.monotonic() - t0))
    signalled(signal.SIGTERM)
    signalled(signal.SIGINT)
    signalled(signal.SIGTERM, user_pause=True)
except Exception as e:             # noqa: BLE001 - counted, then shown
    traceback.print_exc()
    c.ok(False, "aborted: %s" % e)
finally:
    if g:
        g.kill()
c.finish()
