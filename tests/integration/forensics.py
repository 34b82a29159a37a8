#!/usr/bin/env python3
"""forensics.py VMEMFS CAPTURE_DIR SYMBOLS_DIR [DUMP [QMP2]] - the responder's files
(issue 11) of a real guest against what the guest said of itself (the FX
lines of truth.txt, printed by contrib/guest/init from its own /proc):

  - proc/<pid>/cmdline and environ equal /proc/<pid>/{cmdline,environ};
  - exe, cwd, root equal the readlink of /proc/<pid>/{exe,cwd,root};
  - fds has every descriptor of /proc/<pid>/fd with its link name, and
    fdinfo's pos and flags;
  - threads has /proc/<pid>/task's tids, states and names;
  - status has the guest's Uid/Gid/Cap*/Vm*/Rss*/PPid/State lines, the
    start time of /proc/<pid>/stat and the namespace inode numbers;
  - kernel/modules equals /proc/modules; kernel/cmdline /proc/cmdline;
    kernel/mounts has /proc/mounts's lines (options: the generic ones, a
    prefix of the guest's); kernel/dmesg has every line dmesg printed;
  - kernel/net/* has every socket the socket holder owns, as
    /proc/net/* shows it (address, port, state, uid, inode);
  - processes.json and .csv have a row per process of proc/ with the
    guest's pid, ppid, name, uid, command line; nothing is flagged hidden.

DUMP is a file in CAPTURE_DIR or a VM spec (qemu:QMP_SOCKET: the same guest
running, CAPTURE_DIR being qemu_boot.py's --out).  With QMP2 (a second QMP
socket of that QEMU) the files are also seen to follow the running guest
(the mount is -o rw for this):
  - kernel/dmesg: an NMI injected through QMP makes the guest's kernel log
    two lines (its console prints them); a later open of kernel/dmesg has
    them, exactly, while a descriptor opened before keeps its snapshot;
  - environ: 13 bytes of the socket holder's environment rewritten through
    its vmem; a later open of environ shows them.
"""
import csv
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmemfs_test import Checks, Mount  # noqa: E402

vmemfs, cap, symbols = sys.argv[1], sys.argv[2], sys.argv[3]
dump = sys.argv[4] if len(sys.argv) > 4 else "guest.elf"
qmp2 = sys.argv[5] if len(sys.argv) > 5 else None
spec = dump if ":" in dump else "file:" + os.path.join(cap, dump)
c = Checks("forensics[%s %s]" % (os.path.basename(cap), dump.split(",")[0]))

fx = {"cmdline": {}, "environ": {}, "exe": {}, "cwd": {}, "root": {}, "fd": {}, "status": {},
      "start": {}, "ns": {}, "task": {}}
mods, kcmd, mounts, dmesg, net, procs = [], [], [], [], {}, {}
pids = []
for line in open(os.path.join(cap, "truth.txt"), errors="replace"):
    line = line.rstrip("\n")
    m = re.match(r"PROC (\d+) (\d+) (\d+) (.*)$", line)
    if m:
        procs[int(m[1])] = (int(m[2]), int(m[3]), m[4])
        continue
    if not line.startswith("FX"):
        continue
    key, _, rest = line.partition(" ")
    if key == "FXPIDS":
        pids = [int(x) for x in rest.split()]
    elif key in ("FXCMDLINE", "FXENVIRON"):
        pid, _, hexs = rest.partition(" ")
        fx[key[2:].lower()][int(pid)] = bytes.fromhex(hexs)
    elif key in ("FXEXE", "FXCWD", "FXROOT"):
        pid, _, path = rest.partition(" ")
        fx[key[2:].lower()][int(pid)] = path
    elif key == "FXFD":
        f = re.match(r"(\d+) (\d+) (\d+) (\d+) (.*)$", rest)
        if f:       # a descriptor gone before its fdinfo was read has none
            fx["fd"].setdefault(int(f[1]), {})[int(f[2])] = (int(f[3]), int(f[4], 8), f[5])
    elif key == "FXSTATUS":
        pid, _, l = rest.partition(" ")
        k, _, v = l.partition(":")
        fx["status"].setdefault(int(pid), {})[k] = v.strip()
    elif key == "FXSTART":
        pid, ticks = rest.split()
        fx["start"][int(pid)] = int(ticks)
    elif key == "FXNS":
        pid, *ns = rest.split()
        fx["ns"][int(pid)] = [int(re.search(r"\[(\d+)\]", n)[1]) for n in ns]
    elif key == "FXTASK":
        pid, tid, st, name = rest.split(" ", 3)
        fx["task"].setdefault(int(pid), []).append((int(tid), st, name))
    elif key == "FXMOD":
        mods.append(rest)
    elif key == "FXKCMD":
        kcmd.append(rest)
    elif key == "FXMOUNT":
        mounts.append(rest)
    elif key == "FXDMESG":
        dmesg.append(rest)
    elif key == "FXNET":
        n, _, l = rest.partition(" ")
        net.setdefault(n, []).append(l)
if not pids:
    print("SKIP: truth.txt has no FX lines (guest built from an older init)")
    sys.exit(77)


def read(*p):
    with open(m.path("g", *p), "rb") as f:
        return f.read()


def live_refresh(netpid):
    """The files of a running guest follow it (QMP2 given)."""
    from live_common import QMP, wait_until     # noqa: E402 - live runs only
    q = QMP(qmp2)
    try:
        serial = os.path.join(cap, "serial.log")
        nmi_re = re.compile(r"\[ *[0-9]+\.[0-9]+\] (Uhhuh\. NMI|Dazed and confused).*")

        def console_nmi():
            with open(serial, errors="replace") as f:
                return [mo[0] for mo in nmi_re.finditer(f.read())]
        n0 = len(console_nmi())
        old = os.open(m.path("g", "kernel", "dmesg"), os.O_RDONLY)
        try:
            before = os.pread(old, 1 << 22, 0)
            t0 = time.monotonic()
            q.cmd("inject-nmi")
            want = wait_until(lambda: len(console_nmi()) >= n0 + 2 and console_nmi(), 60)
            c.ok(want, "the guest's console printed the NMI's two lines")
            want = want or ["(none)"] * (n0 + 2)

            def nmi_in_dmesg():
                dm = read("kernel", "dmesg").decode(errors="replace").splitlines()
                return [l for l in dm if nmi_re.fullmatch(l)]
            got = wait_until(lambda: len(nmi_in_dmesg()) >= len(want) and nmi_in_dmesg(), 30, 0.2)
            print("  kernel/dmesg had the NMI's lines %.1f s after it" % (time.monotonic() - t0))
            c.eq(got, want, "kernel/dmesg has the NMI's lines")
            c.eq(os.pread(old, 1 << 22, 0), before, "kernel/dmesg opened before keeps its snapshot")
        finally:
            os.close(old)
    finally:
        q.close()

    # The socket holder's environment, rewritten in its stack (where the
    # kernel put it) through vmem.
    mark, new = b"VMEMFS_FX=forensics-env", b"VMEMFS_FX=rewritten-env"
    c.ok(mark in read("proc", str(netpid), "environ"), "the holder's environ has %r" % mark)
    where = None
    for l in read("proc", str(netpid), "maps").decode().splitlines():
        if l.endswith("[stack]"):
            lo, hi = (int(x, 16) for x in l.split()[0].split("-"))
            fd = os.open(m.path("g", "proc", str(netpid), "vmem"), os.O_RDWR)
            try:
                top = max(lo, hi - (256 << 10))
                at = os.pread(fd, hi - top, top).rfind(mark)
                if at >= 0:
                    where = top + at
                    c.eq(os.pwrite(fd, new, where), len(new), "write through vmem")
            finally:
                os.close(fd)
    if c.ok(where is not None, "the environment found in the holder's [stack]"):
        t0 = time.monotonic()
        got = wait_until(lambda: new in read("proc", str(netpid), "environ"), 30, 0.2)
        print("  proc/%d/environ showed the rewrite %.1f s after it" % (netpid, time.monotonic() - t0))
        c.ok(got, "proc/%d/environ shows the rewritten bytes" % netpid)
        c.ok(mark not in read("proc", str(netpid), "environ"), "and not the old ones")


opt = ["--symbols", symbols] if os.path.isdir(symbols) else ["--profile", symbols]
if qmp2:
    opt += ["-o", "rw"]
with Mount(vmemfs, [("g", spec)], extra=opt) as m:
    c.ok(os.path.isdir(m.path("g", "proc")), "proc/ exists: " + m.output().strip()[-400:])
    netpid = pids[1]
    for pid in pids:
        d = ("proc", str(pid))
        c.eq(read(*d, "cmdline"), fx["cmdline"][pid], "pid %d cmdline" % pid)
        c.eq(read(*d, "environ"), fx["environ"][pid], "pid %d environ" % pid)
        for k in ("exe", "cwd", "root"):
            c.eq(read(*d, k).decode(), fx[k][pid] + "\n", "pid %d %s" % (pid, k))
        got = {}
        for l in read(*d, "fds").decode().splitlines():
            if l.startswith("#"):
                c.ok(False, "pid %d fds incomplete: %s" % (pid, l))
                continue
            fd, pos, flags, path = l.split("\t", 3)
            got[int(fd)] = (int(pos), int(flags, 8), path)
        # fd/ of the guest's ls includes the descriptor the listing itself
        # had open (the directory), which is gone by the dump.
        want = {fd: v for fd, v in fx["fd"][pid].items() if v[2] or fd in got}
        if pid == 1:
            # init was running the truth listing itself: its pipes and the
            # script's position moved on; its console descriptors did not.
            # (fd 0 was the fdinfo file the listing's loop read from)
            got = {fd: v for fd, v in got.items() if 1 <= fd < 3}
            want = {fd: v for fd, v in want.items() if 1 <= fd < 3}
        c.eq(got, want, "pid %d fds" % pid)
        thr = [tuple(l.split("\t")) for l in read(*d, "threads").decode().splitlines()]
        c.eq(sorted((int(a), b if pid != 1 else "", n) for a, b, n in thr),
             sorted((a, b if pid != 1 else "", n) for a, b, n in fx["task"][pid]),
             "pid %d threads" % pid)
        st = {}
        for l in read(*d, "status").decode().splitlines():
            k, _, v = l.partition(":")
            st[k] = v.strip()
        stable = ("Name", "PPid", "Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd",
                  "CapAmb", "Threads")
        moving = ("State", "VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon",
                  "RssFile", "RssShmem", "VmData", "VmStk", "VmSwap")
        for k in stable + (moving if pid != 1 else ()):     # init ran the listing
            if k in fx["status"][pid]:
                c.eq(st.get(k), fx["status"][pid][k], "pid %d status %s" % (pid, k))
        c.eq(int(st.get("StartTicks", -1)), fx["start"][pid], "pid %d start time" % pid)
        c.eq([int(st.get(k, -1)) for k in ("PidNs", "MntNs", "NetNs")], fx["ns"][pid],
             "pid %d namespaces" % pid)
        c.ok("Hidden" not in st, "pid %d not flagged hidden" % pid)
    # The socket holder's descriptors name its sockets, a pipe, an eventfd.
    names = [v[2] for v in fx["fd"][netpid].values()]
    c.ok(sum(n.startswith("socket:[") for n in names) >= 6 and
         any(n.startswith("pipe:[") for n in names) and "anon_inode:[eventfd]" in names,
         "the socket holder's descriptors: %r" % names)

    c.eq(read("kernel", "modules").decode().splitlines(), mods, "kernel/modules")
    c.ok(any(l.startswith("qemu_fw_cfg ") for l in mods), "the guest loaded a module")
    c.eq(read("kernel", "cmdline").decode().splitlines(), kcmd, "kernel/cmdline")
    gm = read("kernel", "mounts").decode().splitlines()
    c.eq(len(gm), len(mounts), "kernel/mounts: as many mounts")
    for a, b in zip(gm, mounts):
        fa, fb = a.split(" "), b.split(" ")
        c.eq(fa[:3] + fa[4:], fb[:3] + fb[4:], "mount %s" % b)
        c.ok((fb[3] + ",").startswith(fa[3] + ","), "mount options %s of %s" % (fa[3], b))
    dm = read("kernel", "dmesg").decode(errors="replace").splitlines()
    missing = [l for l in dmesg if l not in set(dm)]
    c.ok(len(dmesg) > 50 and not missing, "kernel/dmesg has the guest's %d lines (missing %d: %r)"
         % (len(dmesg), len(missing), missing[:3]))
    c.eq(dm[:len(dmesg)][:20], dmesg[:20], "kernel/dmesg starts as the guest's")

    # /proc/net: every socket of the holder, by inode, same columns.
    inodes = {int(re.match(r"socket:\[(\d+)\]", n)[1]) for n in names if n.startswith("socket:")}
    for n in ("tcp", "udp", "tcp6", "udp6", "unix"):
        ours = read("kernel", "net", n).decode().splitlines()
        c.eq(ours[0].split(), net[n][0].split(), "net/%s header" % n)
        if n == "unix":
            def key(l):
                f = l.split()
                return (f[3], f[4], f[5], int(f[6]), " ".join(f[7:]))
            col = 6
        else:
            def key(l):
                f = l.split()
                return (f[1], f[2], f[3], f[7], int(f[9]))
            col = 9
        want = sorted(key(l) for l in net[n][1:] if int(l.split()[col]) in inodes)
        got = sorted(key(l) for l in ours[1:] if int(l.split()[col]) in inodes)
        c.eq(got, want, "net_%s: the socket holder's sockets" % n)
        if n in ("tcp", "udp", "unix"):
            c.ok(len(want) >= (3 if n == "tcp" else 1), "net_%s has the guest's sockets" % n)

    rows = json.loads(read("processes.json"))["processes"]
    listed = sorted(int(p) for p in os.listdir(m.path("g", "proc")))
    c.eq(sorted(r["pid"] for r in rows), listed, "processes.json: a row per proc/ entry")
    byp = {r["pid"]: r for r in rows}
    for pid, (ppid, uid, name) in procs.items():
        r = byp.get(pid)
        if r is None and ppid == 2 and name.startswith("kworker/"):
            continue            # an idle worker thread may exit at any time
        if c.ok(r is not None, "processes.json has pid %d" % pid):
            # A kworker's /proc name adds its workqueue: comm is the prefix.
            c.ok((r["ppid"], r["uid"]) == (ppid, uid) and name.startswith(r["name"]),
                 "row of pid %d: %r, want %r" % (pid, r, (ppid, uid, name)))
    for pid in pids:
        want = fx["cmdline"][pid].rstrip(b"\0").replace(b"\0", b" ").decode()
        c.eq(byp[pid]["cmdline"], want, "processes.json cmdline of %d" % pid)
        c.eq(byp[pid]["start_ticks"], fx["start"][pid], "processes.json start of %d" % pid)
    c.ok(all(r["flags"] == [] for r in rows), "nothing flagged hidden")
    crow = list(csv.DictReader(read("processes.csv").decode().splitlines()))
    c.eq([(int(r["pid"]), r["name"], r["cmdline"]) for r in crow],
         [(r["pid"], r["name"], r["cmdline"]) for r in rows], "processes.csv = processes.json")
    if qmp2:
        live_refresh(netpid)
    c.ok(m.alive(), "vmemfs alive")
c.finish()
