#!/usr/bin/env python3
"""forensics_vol.py VMEMFS DUMP SYMBOLS_DIR VOLATILITY3_DIR - Volatility 3,
run on vmemfs's own pmem.raw of DUMP, agrees with vmemfs's responder files
(issue 11) on the same dump:

  linux.psaux     a process per proc/ entry; its ARGS = proc/<pid>/cmdline
                  (NULs as spaces)
  linux.envars    proc/<pid>/environ's KEY=VALUE strings, in order
  linux.lsof      every (pid, fd) of proc/<pid>/fds, the same path; the
                  inode of a socket or pipe is the one its name carries
  linux.lsmod     kernel/modules: name, size, address
  linux.kmsg      kernel/dmesg, line for line
  linux.sockstat  every socket descriptor, found by its inode in
                  kernel/net/*: protocol, addresses, ports, state (unix:
                  path and inode)

Documented differences (what the two say differently on purpose):
  - a kernel thread's ARGS is "[comm]" (ps's habit); its cmdline, as the
    guest's /proc has it, is empty;
  - lsof names an anonymous inode by its inode number (anon_inode:[9964]),
    /proc (and vmemfs) by its class (anon_inode:[eventfd]);
  - lsmod's Offset is the address of the struct module (without its sign
    extension), /proc/modules's the base of the module's memory, which
    holds the struct: the test checks it lies there;
  - kmsg also prints a record's dictionary (" SUBSYSTEM=acpi" lines, as
    /dev/kmsg does; dmesg does not), and stops one record short: its walk
    ends when it reaches head_id, so the newest record is never printed.
"""
import json
import os
import re
import subprocess
import shutil
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmemfs_test import Checks, Mount  # noqa: E402

vmemfs, dump, symbols, vol3 = sys.argv[1:5]
c = Checks("forensics_vol[%s]" % os.path.basename(dump))
PLUGINS = ("psaux", "envars", "lsof", "lsmod", "kmsg", "sockstat")


def interpreter():
    """A Python that can run Volatility's Linux plugins (they import
    pefile, Debian's python3-pefile): the first such of python3 on PATH
    (a pyenv one may lack Debian's packages) and Debian's own."""
    for py in ("python3", "/usr/bin/python3"):
        try:
            if subprocess.run([py, "-c", "import pefile"], capture_output=True).returncode == 0:
                return py
        except OSError:
            pass
    return None


py = interpreter()
if not py:
    print("SKIP: no python3 with pefile for Volatility 3 (apt-get install python3-pefile)")
    sys.exit(77)


def vol(image, plugin, out, config):
    """One plugin; the first run saves what Volatility found (the kernel's
    place: its banner scan), the next ones start from it."""
    cfg = ["-c", config] if os.path.exists(config) else ["--save-config", config]
    r = subprocess.run([py, os.path.join(vol3, "vol.py"), "--offline", "-q", "-r", "json",
                        "-s", symbols, "-f", image] + cfg + ["linux." + plugin],
                       capture_output=True, timeout=900)
    try:
        out[plugin] = json.loads(r.stdout)
    except ValueError:
        out[plugin] = None
        print("linux.%s exited %d: %s" % (plugin, r.returncode, r.stderr.decode()[-2000:]))


def read(m, *p):
    with open(m.path("g", *p), "rb") as f:
        return f.read()


with Mount(vmemfs, [("g", "file:" + dump)], extra=["--symbols", symbols]) as m:
    # The first alone (it saves the config), then two at a time (2 cores);
    # each reads pmem.raw through FUSE.
    config = os.path.join(tempfile.mkdtemp(prefix="vmemfs-vol-"), "config.json")
    res, todo = {}, [PLUGINS[:1]] + [PLUGINS[i:i + 2] for i in range(1, len(PLUGINS), 2)]
    for batch in todo:
        ts = [threading.Thread(target=vol, args=(m.path("g", "pmem.raw"), p, res, config))
              for p in batch]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    shutil.rmtree(os.path.dirname(config), ignore_errors=True)
    for p in PLUGINS:
        c.ok(isinstance(res.get(p), list) and res[p], "linux.%s gave rows" % p)
    if c.failed:
        c.finish()

    pids = sorted(int(p) for p in os.listdir(m.path("g", "proc")))
    status = {}
    for pid in pids:
        status[pid] = dict(l.split(":\t", 1) for l in read(m, "proc", str(pid), "status")
                           .decode().splitlines() if ":\t" in l)

    # psaux: the same processes, the same command lines.
    ps = {r["PID"]: r for r in res["psaux"]}
    c.eq(sorted(ps), pids, "psaux: the processes of proc/")
    for pid in pids:
        if pid not in ps:
            continue
        ours = read(m, "proc", str(pid), "cmdline").rstrip(b"\0").replace(b"\0", b" ").decode(
            errors="replace")
        if status[pid].get("Kthread") == "1":
            c.eq((ours, ps[pid]["ARGS"]), ("", "[%s]" % status[pid]["Name"]),
                 "psaux: kernel thread %d" % pid)
        else:
            c.eq(ours, ps[pid]["ARGS"], "psaux: command line of %d" % pid)

    # envars: every process's environment.
    env = {}
    for r in res["envars"]:
        env.setdefault(r["PID"], []).append("%s=%s" % (r["KEY"], r["VALUE"]))
    for pid in pids:
        ours = [s.decode(errors="replace") for s in
                read(m, "proc", str(pid), "environ").split(b"\0") if s]
        c.eq(ours, env.get(pid, []), "envars: environment of %d" % pid)
    c.ok(any("VMEMFS_FX=forensics-env" in e for e in env.values()),
         "envars: the socket holder's marker variable")

    # lsof: every descriptor, its path and inode.
    fds = {}
    for pid in pids:
        for l in read(m, "proc", str(pid), "fds").decode(errors="replace").splitlines():
            c.ok(not l.startswith("#"), "fds of %d complete: %s" % (pid, l))
            if not l.startswith("#"):
                fd, _pos, _flags, path = l.split("\t", 3)
                fds[(pid, int(fd))] = path
    lsof = {(r["PID"], r["FD"]): r for r in res["lsof"]}     # a row per thread: one kept
    c.eq(sorted(lsof), sorted(fds), "lsof: the same (pid, fd) pairs")
    anon = 0
    for k in sorted(set(lsof) & set(fds)):
        r, ours = lsof[k], fds[k]
        a = re.match(r"anon_inode:\[(.*)\]$", ours)
        if a:
            anon += 1
            c.eq(r["Path"], "anon_inode:[%d]" % r["Inode"], "lsof %r: anon inode by number" % (k,))
            continue
        c.eq(ours, r["Path"], "lsof %r: path" % (k,))
        n = re.match(r"(socket|pipe):\[(\d+)\]$", ours)
        if n:
            c.eq(int(n[2]), r["Inode"], "lsof %r: inode" % (k,))
    c.ok(anon >= 1, "lsof: the eventfd (an anonymous inode) was compared")

    # lsmod: name and size; its Offset is the struct module, which lies in
    # the module's own memory (the base /proc/modules prints, and its size).
    mods = {f[0]: (int(f[1]), int(f[5], 16) & ((1 << 48) - 1)) for f in
            (l.split() for l in read(m, "kernel", "modules").decode().splitlines())}
    c.eq(sorted((r["Name"], r["Size"]) for r in res["lsmod"]),
         sorted((n, v[0]) for n, v in mods.items()), "lsmod = kernel/modules: names, sizes")
    for r in res["lsmod"]:
        size, base = mods.get(r["Name"], (0, 0))
        c.ok(base <= r["Offset"] < base + size, "lsmod %s: struct module at %#x in [%#x, +%#x)"
             % (r["Name"], r["Offset"], base, size))

    # kmsg: line for line, less the dictionaries, one record short.
    dm = read(m, "kernel", "dmesg").decode(errors="replace").splitlines()
    vk = ["[%12s] %s" % (r["timestamp"], r["line"]) for r in res["kmsg"]
          if not re.match(r" [A-Z_]+=", r["line"])]
    c.ok(len(vk) > 50, "kmsg: %d lines" % len(vk))
    c.eq(dm[:len(vk)], vk, "kmsg = kernel/dmesg line for line")
    rest = dm[len(vk):]
    last = re.match(r"\[ *[0-9.]+\]", dm[-1])[0] if dm else None
    c.ok(len(rest) <= 8 and all(l.startswith(last) for l in rest),
         "kernel/dmesg adds only the newest record to kmsg's: %r" % rest)

    # sockstat: each socket descriptor found by its inode in kernel/net/*.
    net = {}
    for name in ("tcp", "tcp6", "udp", "udp6", "unix"):
        for l in read(m, "kernel", "net", name).decode().splitlines()[1:]:
            f = l.split()
            net[int(f[6] if name == "unix" else f[9])] = (name, f)
    socks = {k for k, p in fds.items() if p.startswith("socket:[")}
    rows = {(r["PID"], r["FD"]): r for r in res["sockstat"]}
    c.eq(sorted(rows), sorted(socks), "sockstat: the socket descriptors of proc/*/fds")
    states = {"01": "ESTABLISHED", "0A": "LISTEN", "07": "UNCONNECTED"}
    inet = 0
    for k in sorted(set(rows) & socks):
        r, ino = rows[k], int(re.match(r"socket:\[(\d+)\]", fds[k])[1])
        if not c.ok(ino in net, "sockstat %r: inode %d in kernel/net/*" % (k, ino)):
            continue
        name, f = net[ino]
        if name == "unix":
            c.eq((r["Family"], r["Source Addr"], int(r["Source Port"])),
                 ("AF_UNIX", f[7] if len(f) > 7 else None, ino), "sockstat %r: unix socket" % (k,))
            continue

        def addr(hexa):
            h, p = hexa.split(":")
            if len(h) == 8:
                return ".".join(str(b) for b in bytes.fromhex(h)[::-1]), str(int(p, 16))
            return h, str(int(p, 16))
        if name in ("tcp", "udp"):
            inet += 1
            got = (r["Proto"], r["Source Addr"], r["Source Port"], r["Destination Addr"],
                   r["Destination Port"], r["State"])
            want = (name.upper(),) + addr(f[1]) + addr(f[2]) + (states.get(f[3], f[3]),)
            c.eq(got, want, "sockstat %r: inode %d" % (k, ino))
    c.ok(inet >= 5, "sockstat: %d TCP/UDP sockets compared" % inet)
    c.ok(m.alive(), "vmemfs alive after Volatility")
c.finish()
