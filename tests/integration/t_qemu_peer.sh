#!/usr/bin/env bash
# The qemu driver against hostile QMP peers (tests/integration/fake_qmp.py),
# through the vmemfs command as a user runs it: --vm NAME=qemu:SOCK must
# fail to open, with one clear line and within a bounded time, and never
# serve the file the peer names.
#   exited  the process that listened on the socket has exited; a child
#           answers, naming a root-only file as the guest's RAM: refused
#           (the peer cannot be verified), the file never opened
#   liar    a live peer names a root-only file it does not map: refused
#   stall   a peer that greets and never answers a command: the open gives
#           up after the monitor's timeout (5 s), not minutes
#   stall-qom  one that stops answering after query-memdev: the first
#           timeout ends the open (not one timeout per command)
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip "python3 missing"
[ -x "$VMEMFS" ] || { echo "FAIL: $VMEMFS not built"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmemfs-peer.XXXXXX")
# start_fake runs in a command substitution (a subshell): the pids of the
# fakes and of their children go to a file, not to a variable.
PIDFILE=$WORK/fake.pids
cleanup() {
    local p
    [ -f "$PIDFILE" ] && for p in $(cat "$PIDFILE"); do kill -9 "$p" 2>/dev/null || true; done
    fusermount3 -u -z "$WORK/mnt" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir "$WORK/mnt"

# A root-only "secret" the size of a small guest, with a marker inside.
SECRET=$WORK/secret.ram
python3 -c "import sys; sys.stdout.buffer.write(b'TOPSECRET-MARKER' * 65536)" >"$SECRET"
chmod 0600 "$SECRET"

fail=0
start_fake() {   # NAME MODE [FILE]: prints the socket path
    local sock=$WORK/$1.qmp out=$WORK/$1.out i
    python3 "$SRC/tests/integration/fake_qmp.py" "$sock" "$2" ${3:+"$3"} >"$out" 2>&1 &
    echo $! >>"$PIDFILE"
    for i in $(seq 100); do
        grep -q READY "$out" 2>/dev/null && break
        sleep 0.05
    done
    grep -q READY "$out" || { cat "$out"; echo "FAIL: fake $1 did not start"; exit 1; }
    sed -n 's/^PID=//p' "$out" >>"$PIDFILE"
    echo "$sock"
}

# vmemfs --vm NAME=qemu:SOCK must exit non-zero, saying WANT, within LIMIT s.
expect_refused() {   # NAME SOCK WANT LIMIT
    local name=$1 sock=$2 want=$3 limit=$4 t0 t1 rc=0
    t0=$(date +%s%N)
    timeout 30 "$VMEMFS" "$WORK/mnt" -f --vm "$name=qemu:$sock" >"$WORK/$name.log" 2>&1 || rc=$?
    t1=$(date +%s%N)
    local ms=$(( (t1 - t0) / 1000000 ))
    echo "   $name: exit $rc after $ms ms: $(head -c 300 "$WORK/$name.log")"
    if mountpoint -q "$WORK/mnt"; then
        echo "FAIL: $name: vmemfs mounted"
        fusermount3 -u -z "$WORK/mnt" || true
        fail=1
    fi
    if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then
        echo "FAIL: $name: vmemfs did not refuse (exit $rc)"; fail=1
    fi
    if ! grep -q -- "$want" "$WORK/$name.log"; then
        echo "FAIL: $name: the message does not say '$want'"; fail=1
    fi
    if grep -q TOPSECRET "$WORK/$name.log"; then
        echo "FAIL: $name: the secret's bytes reached the output"; fail=1
    fi
    if [ "$ms" -gt $((limit * 1000)) ]; then
        echo "FAIL: $name: took $ms ms, bound ${limit} s"; fail=1
    fi
}

echo "== a peer whose listening process has exited, naming a root-only file"
sock=$(start_fake exited exited "$SECRET")
expect_refused exited "$sock" "cannot be verified" 15
echo "== a live peer naming a root-only file it does not map"
sock=$(start_fake liar liar "$SECRET")
expect_refused liar "$sock" "not a file QEMU (pid [0-9]*) maps" 15

echo "== a peer that greets and never answers"
sock=$(start_fake stall stall)
expect_refused stall "$sock" "no reply within" 15

echo "== a peer that stops answering in the middle of the open (64 backends)"
sock=$(start_fake stallqom stall-qom)
expect_refused stallqom "$sock" "stopped answering while opening" 20

[ "$fail" = 0 ] || { echo "FAIL: t_qemu_peer"; exit 1; }
echo "PASS: t_qemu_peer"
