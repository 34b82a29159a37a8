#!/usr/bin/env python3
"""fake_qmp.py - hostile QMP peers for the qemu driver's regression tests
(t_qemu_peer.sh).  Each binds a unix socket at SOCK, prints READY once it
listens, and serves QMP as the mode says:

  exited FILE   the process that listens exits at once; a child it forked
                answers every connection, claiming that FILE (a root-only
                file) is the guest's RAM: a shared memory-backend-file.
                SO_PEERCRED names the exited process.
  liar FILE     the same claim, from the process that listens, which stays
                alive but never maps FILE.
  stall         greets every client, then never answers a command.
  stall-qom     answers query-memdev with 64 backends, then never answers
                a qom-get (each backend asks two): an open that waited for
                every one would take 64 x 2 x 5 s.

The fake serves until killed (by the test, by pid: it prints PID=N of the
process that answers)."""
import json
import os
import socket
import sys
import threading
import time


def mtree(size):
    # "info mtree -f" as QEMU 7.2 prints it: the system address space's
    # flat view with the backend's RAM at 0.
    return ("FlatView #0\n AS \"memory\", root: system\n Root memory region: system\n"
            "  0000000000000000-%016x (prio 0, ram): ram\n" % (size - 1))


def answer(cmd, args, ram_file, size):
    if cmd in ("qmp_capabilities", "stop", "cont"):
        return {}
    if cmd == "query-version":
        return {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": "fake"}
    if cmd == "query-status":
        return {"status": "running", "running": True}
    if cmd == "query-cpus-fast":
        return [{"cpu-index": 0}]
    if cmd == "query-memdev":
        return [{"id": "ram", "size": size, "share": True, "merge": False,
                 "dump": True, "prealloc": False, "policy": "default",
                 "host-nodes": []}]
    if cmd == "qom-get":
        prop = args.get("property")
        if args.get("path") == "/objects/ram" and prop == "type":
            return "memory-backend-file"
        if args.get("path") == "/objects/ram" and prop == "mem-path":
            return ram_file
        return None
    if cmd == "human-monitor-command":
        line = args.get("command-line", "")
        if line == "info mtree -f":
            return mtree(size)
        return ""
    return None


def serve(conn, mode, ram_file, size):
    f = conn.makefile("rw", encoding="utf-8", newline="\n")
    try:
        f.write(json.dumps({"QMP": {"version": {"qemu": {"major": 7, "minor": 2,
                                                         "micro": 0}, "package": "fake"},
                                    "capabilities": []}}) + "\r\n")
        f.flush()
        for line in f:
            if mode == "stall":
                continue            # read, never answer
            msg = json.loads(line)
            if mode == "stall-qom" and msg.get("execute") == "qom-get":
                continue
            if mode == "stall-qom" and msg.get("execute") == "query-memdev":
                reply = {"return": [{"id": "ram%d" % i, "size": 1 << 20, "share": False}
                                    for i in range(64)], "id": msg.get("id")}
                f.write(json.dumps(reply) + "\r\n")
                f.flush()
                continue
            ret = answer(msg.get("execute"), msg.get("arguments", {}), ram_file, size)
            reply = ({"return": ret} if ret is not None else
                     {"error": {"class": "GenericError", "desc": "not in the fake"}})
            if "id" in msg:
                reply["id"] = msg["id"]
            f.write(json.dumps(reply) + "\r\n")
            f.flush()
    except (OSError, ValueError):
        pass
    finally:
        conn.close()


def accept_loop(lsock, mode, ram_file, size):
    print("PID=%d" % os.getpid(), flush=True)
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=serve, args=(conn, mode, ram_file, size),
                         daemon=True).start()


def main():
    sock, mode = sys.argv[1], sys.argv[2]
    ram_file = sys.argv[3] if len(sys.argv) > 3 else ""
    size = os.stat(ram_file).st_size if ram_file else 0
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(sock)
    lsock.listen(8)
    if mode == "exited":
        parent = os.getpid()
        if os.fork() == 0:
            # The child keeps the listening socket and answers once its
            # parent, the process SO_PEERCRED names, has exited.
            os.setsid()
            while os.getppid() == parent:
                time.sleep(0.01)
            print("READY", flush=True)
            accept_loop(lsock, mode, ram_file, size)
        os._exit(0)
    print("READY", flush=True)
    accept_loop(lsock, mode, ram_file, size)


if __name__ == "__main__":
    main()
