"""vmemfs_test.py - helpers for the Python integration tests: mount a vmemfs
with some VMs, wait for it, unmount it whatever happens, and count checks."""
import os
import subprocess
import sys
import tempfile
import time


class Checks:
    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def ok(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL: %s: %s" % (self.name, what), flush=True)
        return cond

    def eq(self, got, want, what):
        return self.ok(got == want, "%s: got %r, want %r" % (what, got, want))

    def finish(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


class Mount:
    """vmemfs in the foreground as a child process; unmounted on exit."""

    def __init__(self, vmemfs, vms, extra=(), mountpoint=None, timeout=None):
        self.dir = mountpoint or tempfile.mkdtemp(prefix="vmemfs-mnt-")
        args = [vmemfs, self.dir, "-f"] + list(extra)
        for name, spec in vms:
            args += ["--vm", "%s=%s" % (name, spec)]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        # vmemfs mounts only after every --vm is open, and opening a Linux
        # guest loads or builds its profile: ~3 s in a release build, ~15-30 s
        # under ASan+UBSan on a loaded 2-core machine.  A daemon that fails
        # exits (caught below at once); the deadline only catches a hang.
        limit = timeout if timeout is not None else float(
            os.environ.get("VMEMFS_TEST_MOUNT_TIMEOUT",
                           os.environ.get("VMEMFS_MOUNT_TIMEOUT", 240)))
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("vmemfs exited %d: %s" % (self.proc.returncode, self.output()))
            if os.path.ismount(self.dir):
                return
            time.sleep(0.05)
        self.close()
        raise RuntimeError("vmemfs did not mount within %s s: %s" % (limit, self.output()))

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def alive(self):
        return self.proc.poll() is None

    def status(self, field):
        """A field of /proc/<daemon>/status in kB (VmHWM, VmRSS)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return None

    def close(self):
        if self.proc.poll() not in (None, 0):
            # The daemon died under the test: show why (a sanitizer report).
            print("vmemfs exited with %d; its output:\n%s" % (self.proc.returncode,
                                                          self.output()[-20000:]))
        if os.path.ismount(self.dir):
            subprocess.run(["fusermount3", "-u", self.dir], check=False)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            os.rmdir(self.dir)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pread_all(path, off, size):
    """(bytes, errno or 0): one pread, like a reader would do."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, off), 0
    except OSError as e:
        return b"", e.errno
    finally:
        os.close(fd)


def same_file(a, b, chunk=1 << 20):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if x != y:
                return False
            if not x:
                return True
