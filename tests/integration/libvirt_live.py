#!/usr/bin/env python3
"""libvirt_live.py - the libvirt driver against the libvirtd t_libvirt.sh
started (see there for the list of checks).

    libvirt_live.py VMEMFS WATCH WORK GUEST_DIR REMOTE_URI PREFIX ISF_DIR

Environment: VMEMFS_LIBVIRTD_START (the command that starts libvirtd) and
VMEMFS_LIBVIRTD_PIDFILE, for the restart while mounted."""
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from live_common import (Checks, Truth, compare_with_elf, control, log, mount,  # noqa: E402
                         pread_errno, wait_until, check_exit)

vmemfs, watch_bin, work, guest, remote, prefix, isf = sys.argv[1:8]
LOCAL = "qemu:///system"
MAGIC = 0x564D454D46530000
c = Checks("libvirt_live")

A, B, C = prefix + "a", prefix + "b", prefix + "c"      # shared file, plain, extra


def virsh(*args, uri=LOCAL, check=True):
    r = subprocess.run(["virsh", "-q", "-c", uri] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    if check and r.returncode != 0:
        raise RuntimeError("virsh %s: %s" % (" ".join(args), r.stderr.decode().strip()))
    return r


def domain_xml(name, shared):
    """A transient TCG domain booting the test guest from copies of its
    kernel and initramfs (libvirt takes ownership of what it boots)."""
    boot = os.path.join(work, "boot-" + name)
    os.mkdir(boot)
    for f in ("vmlinuz", "initramfs.gz"):
        shutil.copy(os.path.join(guest, f), boot)
    backing = ("<memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>"
               if shared else "")
    serial = os.path.join(work, name + ".serial")
    return """<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>256</memory>
  %s
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type>
    <kernel>%s/vmlinuz</kernel><initrd>%s/initramfs.gz</initrd>
    <cmdline>console=ttyS0 panic=-1</cmdline></os>
  <cpu mode='custom'><model>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <serial type='file'><source path='%s'/></serial>
    <console type='file'><source path='%s'/></console>
  </devices>
</domain>
""" % (name, backing, boot, boot, serial, serial)


def create(name, shared=False):
    path = os.path.join(work, name + ".xml")
    with open(path, "w") as f:
        f.write(domain_xml(name, shared))
    virsh("create", path)


def truth_of(name, timeout=240):
    """The guest's truth from its serial log, once it is ready."""
    serial = os.path.join(work, name + ".serial")

    def ready():
        try:
            with open(serial, errors="replace") as f:
                text = f.read()
        except OSError:
            return None
        return text if "VMEMFS-READY" in text else None
    text = wait_until(ready, timeout, 0.5)
    if not text:
        raise RuntimeError("%s: no VMEMFS-READY within %d s" % (name, timeout))
    lines = [ln.rstrip("\r") for ln in text.splitlines()]
    b, e = lines.index("VMEMFS-TRUTH-BEGIN"), lines.index("VMEMFS-TRUTH-END")
    path = os.path.join(work, name + ".truth")
    with open(path, "w") as f:
        f.write("\n".join(lines[b + 1:e]) + "\n")
    return Truth(path)


class Watcher:
    """libvirt_watch on a URI: the discovery's found/lost lines."""

    def __init__(self, uri):
        self.out = os.path.join(work, "watch.out")
        self.f = open(self.out, "w")
        self.proc = subprocess.Popen([watch_bin, "h1=" + uri], stdout=self.f,
                                     stderr=subprocess.STDOUT)
        with open(os.path.join(work, "watch.pid"), "w") as f:
            f.write(str(self.proc.pid))

    def lines(self):
        with open(self.out) as f:
            return [ln.strip() for ln in f]

    def wait_for(self, line, timeout=30):
        return wait_until(lambda: line in self.lines(), timeout, 0.1)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.f.close()


def info(m, vm):
    import json
    with open(m.path(vm, "info.json")) as f:
        return json.load(f)


def ranges(m, vm):
    return [(int(r["start"], 16), int(r["end"], 16)) for r in info(m, vm)["ranges"]]


def check_pattern(m, vm, truth, what):
    """One page of a tag-1 heap pattern region through proc/PID/vmem."""
    pid, tag, kind, addr, length = [p for p in truth.patterns if p[1] == 1][0]
    data, err = pread_errno(m.path(vm, "proc", str(pid), "vmem"), addr, 4096)
    c.eq(err, 0, "%s: read proc/%d/vmem at %#x" % (what, pid, addr))
    if err == 0:
        words = struct.unpack("<512Q", data)
        bad = sum(1 for i, w in enumerate(words) if w != (addr + 8 * i) ^ MAGIC ^ tag)
        c.eq(bad, 0, "%s: words of the pattern wrong in proc/%d/vmem at %#x" % (what, pid, addr))


def check_procs(m, vm, truth, what):
    pids = set(os.listdir(m.path(vm, "proc")))
    want = set(str(p) for p in truth.procs)
    c.ok(want <= pids, "%s: the guest's processes are in proc/ (missing %s)"
         % (what, sorted(want - pids)[:8]))


def compare_dump(m, vm, dom, what):
    elf = os.path.join(work, "%s.elf" % vm)
    virsh("dump", "--memory-only", dom, elf)
    rs = ranges(m, vm)
    n, bad, nonzero, outside = compare_with_elf(elf, m.path(vm, "pmem.raw"), rs)
    log("%s: compared %d MiB of pmem.raw with virsh dump (%d MiB non-zero; outside RAM: %s)"
        % (what, n >> 20, nonzero >> 20, ["%#x+%#x" % o for o in outside]))
    c.eq(n, sum(e - s for s, e in rs), "%s: the dump covers all RAM" % what)
    c.ok(nonzero > 16 << 20, "%s: the dump holds data" % what)
    c.ok(not bad, "%s: paused pmem.raw == virsh dump --memory-only byte for byte (%d pages "
         "differ%s)" % (what, len(bad), ": " + ", ".join("%#x" % p for p in bad[:8]) if bad else ""))
    os.unlink(elf)


def restart_libvirtd():
    pidfile = os.environ["VMEMFS_LIBVIRTD_PIDFILE"]
    pid = int(open(pidfile).read())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not os.path.exists("/proc/%d" % pid), 30)
    return pid


def start_libvirtd():
    subprocess.run(os.environ["VMEMFS_LIBVIRTD_START"].split(), check=True)
    wait_until(lambda: virsh("version", check=False).returncode == 0, 30, 0.2)


def main():
    t0 = time.monotonic()
    w = Watcher(LOCAL)
    c.ok(w.wait_for("started"), "libvirt_watch started: %s" % w.lines())
    create(A, shared=True)
    create(B)
    c.ok(w.wait_for("found %s libvirt:%s@%s" % (A, A, LOCAL)), "discovery: %s found" % A)
    c.ok(w.wait_for("found %s libvirt:%s@%s" % (B, B, LOCAL)), "discovery: %s found" % B)
    ta, tb = truth_of(A), truth_of(B)
    log("guests ready in %.0f s" % (time.monotonic() - t0))

    vms = [("a", "libvirt:" + A), ("b", "libvirt:" + B), ("r", "libvirt:%s@%s" % (B, remote))]
    # --libvirt h1=URI: every running domain of the host under h1/, as the
    # mount's own discovery follows them.
    with mount(vmemfs, work, vms, extra=["--symbols", isf, "--libvirt", "h1=" + LOCAL],
               timeout=240) as m:
        log("mounted in %.0f s" % (time.monotonic() - t0))
        c.eq(sorted(os.listdir(m.dir)), ["a", "b", "h1", "r"], "ls MNT")
        c.ok(wait_until(lambda: {A, B} <= set(os.listdir(m.path("h1"))), 120, 0.5),
             "ls MNT/h1 shows the host's running domains: %s" % os.listdir(m.path("h1")))
        c.ok(os.path.exists(m.path("h1", A, "pmem.raw")), "h1/%s/pmem.raw" % A)
        want_path = {"a": "shared file", "b": "process memory", "r": "memory peek"}
        for vm in "abr":
            src = info(m, vm).get("source", {})
            c.eq(info(m, vm).get("driver"), "libvirt", "%s: info.json driver" % vm)
            c.eq(src.get("data_path"), want_path[vm], "%s: info.json data_path" % vm)
        c.eq(ranges(m, "r"), [(0, 256 << 20)], "r: peek path RAM map from the domain")
        c.eq(ranges(m, "b"), [(0, 256 << 20)], "b: qemu path RAM map")
        c.ok(len(info(m, "a").get("vcpus", [])) == 1 and "cr3" in info(m, "a")["vcpus"][0],
             "a: vCPU registers through the passthrough")
        for vm, t in (("a", ta), ("b", tb), ("r", tb)):
            check_procs(m, vm, t, vm)
            check_pattern(m, vm, t, vm)

        # virsh keeps working on mounted domains.
        c.ok(b"running" in virsh("domstate", A).stdout, "virsh domstate while mounted")
        c.ok(b"running" in virsh("qemu-monitor-command", A, '{"execute":"query-status"}').stdout,
             "virsh qemu-monitor-command while mounted")

        # Pause through control: libvirt knows; pmem.raw == virsh dump.
        for vm, dom in (("b", B), ("r", B)):
            ok, err = control(m, vm, "pause")
            c.ok(ok, "%s: echo pause > control (%s)" % (vm, err))
            c.ok(b"paused" in virsh("domstate", dom).stdout, "%s: virsh says paused" % vm)
            compare_dump(m, vm, dom, vm)
            ok, err = control(m, vm, "resume")
            c.ok(ok, "%s: echo resume > control (%s)" % (vm, err))
        c.ok(b"running" in virsh("domstate", B).stdout, "virsh says running after resume")

        # libvirtd restarted while mounted.
        restart_libvirtd()
        data, err = pread_errno(m.path("a", "pmem.raw"), 1 << 20, 4096)
        c.eq(err, 0, "a: pmem.raw readable while libvirtd is down (the fast path needs no libvirtd)")
        start_libvirtd()
        time.sleep(1)
        for vm, t in (("r", tb), ("a", ta)):
            check_pattern(m, vm, t, "%s after libvirtd restart" % vm)
        ok, err = control(m, "a", "pause")
        c.ok(ok, "a: pause after libvirtd restart (%s)" % err)
        c.ok(b"paused" in virsh("domstate", A).stdout, "a: virsh says paused after restart")
        control(m, "a", "resume")
        c.ok(info(m, "r")["source"].get("reconnects", 0) >= 1, "r: reconnected (info.json)")
        c.ok(not any(ln.startswith("lost") for ln in w.lines()),
             "discovery: nothing lost across the restart: %s" % w.lines())

        # A domain that starts and goes while mounted.
        create(C)
        c.ok(w.wait_for("found %s libvirt:%s@%s" % (C, C, LOCAL)), "discovery: %s found" % C)
        c.ok(wait_until(lambda: C in os.listdir(m.path("h1")), 120, 0.5),
             "h1/%s appears when the domain starts" % C)
        virsh("destroy", C)
        c.ok(w.wait_for("lost %s" % C), "discovery: %s lost" % C)
        c.ok(wait_until(lambda: C not in os.listdir(m.path("h1")), 60, 0.5),
             "h1/%s goes when the domain is destroyed" % C)

        # B destroyed while being read.
        errs = {"r": [], "b": []}
        stop = threading.Event()

        def reader(vm):
            fd = os.open(m.path(vm, "pmem.raw"), os.O_RDONLY)
            off = 0
            while not stop.is_set():
                try:
                    os.pread(fd, 1 << 20, off)
                except OSError as e:
                    errs[vm].append(e.errno)
                    if len(errs[vm]) > 3:
                        break
                off = (off + (1 << 20)) % (256 << 20)
            os.close(fd)
        ts = [threading.Thread(target=reader, args=(vm,)) for vm in ("r", "b")]
        for t in ts:
            t.start()
        time.sleep(1)
        virsh("destroy", B)
        gone = wait_until(lambda: not {"b", "r"} & set(os.listdir(m.dir)), 30, 0.2)
        stop.set()
        for t in ts:
            t.join(timeout=60)
        c.ok(gone, "b and r leave the mount after virsh destroy: %s" % os.listdir(m.dir))
        for vm in ("r", "b"):
            c.ok(errs[vm] and set(errs[vm]) <= {5}, "%s: reads fail with EIO after destroy (%s)"
                 % (vm, errs[vm]))
        c.ok(w.wait_for("lost %s" % B), "discovery: %s lost" % B)
        c.ok(wait_until(lambda: B not in os.listdir(m.path("h1")), 60, 0.5),
             "h1/%s goes with it" % B)
        check_pattern(m, "a", ta, "a after b was destroyed")
        c.ok(m.alive(), "vmemfs still running")
    check_exit(c, m, "mount")

    # One clear line for what cannot be opened.
    for spec, want in (("libvirt:%s" % (prefix + "nosuch"), "no such domain"),
                       ("libvirt:%s@qemu+tcp://127.0.0.1:1/system" % A, "cannot connect")):
        mp = os.path.join(work, "mnt-bad")
        os.makedirs(mp, exist_ok=True)
        r = subprocess.run([vmemfs, mp, "-f", "--vm", "x=" + spec], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode(errors="replace").strip().splitlines()
        c.ok(r.returncode != 0 and len(out) == 1 and want in out[0],
             "%s: one line saying '%s': %s" % (spec, want, out))
        os.rmdir(mp)

    virsh("destroy", A)
    c.ok(w.wait_for("lost %s" % A), "discovery: %s lost" % A)
    w.stop()
    c.ok(w.lines()[-1:] == ["stopped"], "libvirt_watch stopped cleanly: %s" % w.lines()[-3:])
    log("libvirt_live: %.0f s" % (time.monotonic() - t0))
    c.finish()


if __name__ == "__main__":
    main()
