"""live_common.py - shared by the live-VM integration tests (live_*.py, run by
t_live.sh): booting the test guest under QEMU TCG through qemu_boot.py, a
small QMP client with timeouts for the test's own (second) QMP socket, the
guest's truth.txt, ELF dumps, and polling helpers."""
import errno
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from vmemfs_test import Checks, Mount  # noqa: E402,F401

QEMU_BOOT = os.path.join(HERE, "qemu_boot.py")
MiB = 1 << 20


def note(msg):
    print("NOTE: " + msg, flush=True)


def log(msg):
    print("  " + msg, flush=True)


class QMPError(Exception):
    pass


class QMP:
    """Synchronous QMP client on a unix socket; every wait is bounded."""

    def __init__(self, path, timeout=60):
        self.path = path
        deadline = time.monotonic() + 30
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(path)
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.sock = s
        self.f = s.makefile("rw", encoding="utf-8", newline="\n")
        greeting = self._read()
        if "QMP" not in greeting:
            raise QMPError("unexpected QMP greeting %r" % greeting)
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.f.readline()
        if not line:
            raise QMPError("QMP %s: connection closed" % self.path)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        while True:
            r = self._read()
            if "event" in r:
                continue
            if "error" in r:
                raise QMPError("QMP %s: %s" % (name, r["error"].get("desc", r)))
            return r.get("return")

    def hmp(self, line):
        return self.cmd("human-monitor-command", **{"command-line": line})

    def status(self):
        """QEMU's run state: 'running', 'paused', ..."""
        return self.cmd("query-status")["status"]

    def xp_u64(self, paddr):
        """The guest-physical uint64 at paddr, as QEMU itself reads it."""
        out = self.hmp("xp /1gx %#x" % paddr)
        m = re.search(r":\s*0x([0-9a-f]+)", out)
        if not m:
            raise QMPError("xp: unexpected output %r" % out)
        return int(m.group(1), 16)

    def pmemsave(self, paddr, size, path):
        self.cmd("pmemsave", val=paddr, size=size, filename=path)
        with open(path, "rb") as f:
            data = f.read()
        os.unlink(path)
        return data

    def close(self):
        # The file object holds the socket open too: close both, or QEMU
        # keeps serving this (idle) client and nobody else.
        for o in (self.f, self.sock):
            try:
                o.close()
            except (OSError, ValueError):
                pass


class Guest:
    """One booted test guest (qemu_boot.py output), killed by close()."""

    def __init__(self, info):
        self.pid = int(info["QEMU_PID"])
        self.sock = info["QMP_SOCKET"]
        self.sock2 = info.get("QMP_SOCKET2")
        self.out = info["OUT"]
        self.truth = Truth(os.path.join(self.out, "truth.txt"))
        self.ranges = []
        with open(os.path.join(self.out, "ranges.txt")) as f:
            for line in f:
                s, e = line.split("-")
                self.ranges.append((int(s, 16), int(e, 16)))
        self._qmp = None

    @property
    def qmp(self):
        if self._qmp is None:
            self._qmp = QMP(self.sock2)
        return self._qmp

    def alive(self):
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return not _is_zombie(self.pid)

    def kill(self):
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if _is_ours(self.pid):
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
        # QEMU ran in its own session as qemu_boot.py's child; qemu_boot has
        # exited, so init reaps it.  Wait until it has really gone.
        wait_until(lambda: not self.alive(), 10)

    close = kill


class Started(Guest):
    """A QEMU started by start_like(): QEMU's child, not qemu_boot's."""

    def __init__(self, popen, sock, sock2, out, ranges):
        self.popen, self.pid = popen, popen.pid
        self.sock, self.sock2, self.out = sock, sock2, out
        self.ranges = ranges
        self.truth = None
        self._qmp = None

    def alive(self):
        return self.popen.poll() is None

    def wait_ready(self, timeout=300):
        """Until the guest prints VMEMFS-READY on its console."""
        serial = os.path.join(self.out, "serial.log")

        def ready():
            try:
                with open(serial, "rb") as f:
                    return b"VMEMFS-READY" in f.read()
            except OSError:
                return False
        return wait_until(lambda: ready() or not self.alive(), timeout, 0.2) and self.alive()

    def kill(self):
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()

    close = kill


def start_like(template, out, sock, sock2, paused=True):
    """Start QEMU as qemu_boot.py started template (its meta.json argv), but
    with plain RAM, these QMP sockets and console, and - as libvirt starts
    every guest - paused before the firmware runs (-S) when paused: the
    caller sends `cont`.  The RAM layout is template's (same -m, machine)."""
    with open(os.path.join(template.out, "meta.json")) as f:
        argv = json.load(f)["argv"]
    os.makedirs(out, exist_ok=True)
    new, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "-object" and argv[i + 1].startswith("memory-backend"):
            i += 2
            continue
        if a == "-machine":
            new += [a, argv[i + 1].split(",")[0]]
        elif a == "-serial":
            new += [a, "file:" + os.path.join(out, "serial.log")]
        elif a == "-qmp":
            pass
        else:
            new.append(a)
            i += 1
            continue
        i += 2
    for p in (sock, sock2):
        new += ["-qmp", "unix:%s,server=on,wait=off" % p]
    if paused:
        new.append("-S")
    with open(os.path.join(out, "qemu.log"), "wb") as lf:
        popen = subprocess.Popen(new, stdin=subprocess.DEVNULL, stdout=lf,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    return Started(popen, sock, sock2, out, list(template.ranges))


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def _is_ours(pid):
    """Still the QEMU we started (not a recycled pid)?"""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    work = os.environ.get("VMEMFS_LIVE_WORK", "")
    return b"qemu-system" in cmd and (not work or work.encode() in cmd)


def boot(out, *opts, log_to=None):
    """Boot the test guest with qemu_boot.py (its options in opts); a Guest
    once the guest printed its truth, or RuntimeError with the log."""
    logf = log_to or out + ".log"
    with open(logf, "wb") as lf:
        r = subprocess.run([sys.executable, QEMU_BOOT, "--out", out] + list(opts),
                           stdout=subprocess.PIPE, stderr=lf)
    info = dict(l.split("=", 1) for l in r.stdout.decode().splitlines() if "=" in l)
    if r.returncode or "QEMU_PID" not in info:
        with open(logf, errors="replace") as f:
            raise RuntimeError("qemu_boot.py %s failed:\n%s" % (" ".join(opts), f.read()[-3000:]))
    return Guest(info)


def boot_many(specs):
    """Boot several guests at once: specs = [(out, opts...)], guests in order."""
    res = [None] * len(specs)

    def one(i):
        try:
            res[i] = boot(specs[i][0], *specs[i][1:])
        except Exception as e:           # noqa: BLE001 - reported below
            res[i] = e
    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(specs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    errs = [r for r in res if isinstance(r, Exception)]
    if errs:
        for r in res:
            if isinstance(r, Guest):
                r.kill()
        raise errs[0]
    return res


class Truth:
    """What the guest said of itself (contrib/guest/README.md)."""

    def __init__(self, path):
        self.counter = None          # (pid, vaddr)
        self.phys = {}               # (pid, kind) -> (vaddr, paddr)
        self.patterns = []           # (pid, tag, kind, addr, len)
        self.procs = {}
        with open(path) as f:
            for line in f:
                m = re.match(r"COUNTER pid=(\d+) addr=0x([0-9a-f]+)", line)
                if m:
                    self.counter = (int(m[1]), int(m[2], 16))
                m = re.match(r"PHYS pid=(\d+) kind=(\w+) vaddr=0x([0-9a-f]+) paddr=0x([0-9a-f]+)", line)
                if m:
                    self.phys[(int(m[1]), m[2])] = (int(m[3], 16), int(m[4], 16))
                m = re.match(r"PATTERN pid=(\d+) tag=(\d+) kind=(\w+) addr=0x([0-9a-f]+) len=0x([0-9a-f]+)", line)
                if m:
                    self.patterns.append((int(m[1]), int(m[2]), m[3], int(m[4], 16), int(m[5], 16)))
                m = re.match(r"PROC (\d+) (\d+) (\d+) (.*)$", line)
                if m:
                    self.procs[int(m[1])] = m[4]

    @property
    def counter_paddr(self):
        return self.phys[(self.counter[0], "counter")][1]


def wait_until(cond, timeout, interval=0.05):
    """Poll cond() until it is true (its value) or timeout (None)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def control(mount, vm, cmd):
    """echo CMD > MNT/VM/control, as a user would."""
    r = subprocess.run(["sh", "-c", 'echo "$1" > "$2"', "sh", cmd, mount.path(vm, "control")],
                       stderr=subprocess.PIPE)
    return r.returncode == 0, r.stderr.decode().strip()


def u64(fd, off):
    data = os.pread(fd, 8, off)
    if len(data) != 8:
        raise OSError(errno.EIO, "short read (%d bytes) at %#x" % (len(data), off))
    return struct.unpack("<Q", data)[0]


def page_diff(got, want, base=0, limit=8):
    """'' if equal, else which 4 KiB pages differ (addresses from base)."""
    if got == want:
        return ""
    if len(got) != len(want):
        return "%d bytes, want %d" % (len(got), len(want))
    bad = [base + p for p in range(0, len(want), 4096) if got[p:p + 4096] != want[p:p + 4096]]
    return "%d pages differ: %s" % (len(bad), ", ".join("%#x" % a for a in bad[:limit]))


def open_errno(path, flags):
    """0 if path opens with flags, else the errno."""
    try:
        os.close(os.open(path, flags))
        return 0
    except OSError as e:
        return e.errno


def pread_errno(path, off, size):
    """(bytes, 0) or (b'', errno)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, off), 0
    except OSError as e:
        return b"", e.errno
    finally:
        os.close(fd)


def elf_loads(path):
    """PT_LOADs of an ELF64 core: [(paddr, file offset, filesz)]."""
    with open(path, "rb") as f:
        eh = f.read(64)
        if eh[:4] != b"\x7fELF" or eh[4] != 2:
            raise ValueError("%s: not an ELF64 file" % path)
        phoff, = struct.unpack_from("<Q", eh, 32)
        phentsize, phnum = struct.unpack_from("<HH", eh, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    out = []
    for i in range(phnum):
        p_type, _flags, off, _va, pa, filesz = struct.unpack_from("<IIQQQQ", ph, i * phentsize)
        if p_type == 1:
            out.append((pa, off, filesz))
    return out


def compare_with_elf(elf, image, ranges, chunk=4 * MiB):
    """Every byte of every PT_LOAD of elf that lies in a RAM range against
    image (a vmemfs pmem/pmem.raw) at its guest-physical address.
    Returns (bytes compared, [differing page addresses], nonzero bytes seen,
    [PT_LOADs outside RAM])."""
    compared, bad, nonzero, outside = 0, [], 0, []
    zero = bytes(chunk)
    with open(elf, "rb") as fe, open(image, "rb", buffering=0) as fi:
        for pa, off, size in elf_loads(elf):
            spans = []
            for s, e in ranges:
                lo, hi = max(s, pa), min(e, pa + size)
                if lo < hi:
                    spans.append((lo, hi))
            if sum(h - l for l, h in spans) < size:
                outside.append((pa, size))
            for lo, hi in spans:
                at = lo
                while at < hi:
                    n = min(chunk, hi - at)
                    fe.seek(off + (at - pa))
                    want = fe.read(n)
                    got = os.pread(fi.fileno(), n, at)
                    if got != want:
                        for p in range(0, n, 4096):
                            if got[p:p + 4096] != want[p:p + 4096]:
                                bad.append(at + p)
                    if want != zero[:n]:
                        nonzero += n - want.count(0)
                    compared += n
                    at += n
    return compared, bad, nonzero, outside


def dump_elf(qmp, path, begin=None, length=None):
    """dump-guest-memory paging=false (ELF), synchronous."""
    if os.path.exists(path):
        os.unlink(path)
    args = {"paging": False, "protocol": "file:" + path}
    if begin is not None:
        args.update(begin=begin, length=length)
    # A synchronous dump of gigabytes takes as long as the disk and a busy
    # machine make it: this one command gets a longer bound.
    old = qmp.sock.gettimeout()
    qmp.sock.settimeout(600)
    try:
        qmp.cmd("dump-guest-memory", **args)
    finally:
        qmp.sock.settimeout(old)
    return path


def check_exit(c, m, what):
    """After a mount is closed: vmemfs exited cleanly (0, and no sanitizer
    report: contrib/test.sh runs it under ASan/UBSan)."""
    out = m.output()
    c.eq(m.proc.returncode, 0, "%s: vmemfs exit status after unmount" % what)
    c.ok("Sanitizer" not in out and "runtime error" not in out,
         "%s: no sanitizer report from vmemfs%s" % (what, (":\n" + out[-3000:]) if "Sanitizer" in out
                                                     or "runtime error" in out else ""))


def mount(vmemfs, work, vms, extra=(), timeout=20):
    """A vmemfs Mount whose mountpoint is under WORK (t_live.sh's cleanup
    unmounts what is left there if a test dies)."""
    n = 0
    while os.path.exists(os.path.join(work, "mnt%d" % n)):
        n += 1
    mp = os.path.join(work, "mnt%d" % n)
    os.mkdir(mp)
    return Mount(vmemfs, vms, extra=extra, mountpoint=mp, timeout=timeout)


def shm_room(path):
    st = os.statvfs(os.path.dirname(path) or ".")
    return st.f_bavail * st.f_frsize
