#!/usr/bin/env bash
# noprofile.sh [DUMP] - a benchmark, not a test: from mount to a complete
# `ls proc/` of a Linux guest with no profile given (issue 10), and the time
# of each step of building the profile from guest memory (the daemon's log
# line "profile built from guest memory: ... in N ms (kallsyms, checks, BTF,
# ISF + load)").  Banner scan, KASLR and the task walk are the rest.
# Without DUMP it captures a 4 GiB guest (contrib/guest/capture.py --mem
# 4096M, raw) into a temporary dir first (about a minute under TCG).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
VMEMFS=${VMEMFS:-$SRC/build/vmemfs}
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/vmemfs-bench-noprofile.XXXXXX")
cleanup() { fusermount3 -u "$WORK/mnt" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
DUMP=${1:-}
if [ -z "$DUMP" ]; then
    python3 "$SRC/contrib/guest/capture.py" --mem 4096M --formats raw --out "$WORK/g" >/dev/null
    DUMP=$WORK/g/guest.raw
fi
mkdir "$WORK/mnt"
cat "$DUMP" >/dev/null 2>&1 || true        # warm: the file's read speed is not the point
for rep in 1 2 3; do
    t0=$(date +%s.%N)
    "$VMEMFS" "$WORK/mnt" --vm g="file:$DUMP" -f >"$WORK/log" 2>&1 &
    pid=$!
    until [ -d "$WORK/mnt/g" ]; do sleep 0.01; done
    n=$(ls "$WORK/mnt/g/proc" | wc -l)
    t1=$(date +%s.%N)
    echo "run $rep: mount to complete ls proc/ ($n processes): $(echo "$t1 - $t0" | bc) s"
    grep -o 'in [0-9]* ms (kallsyms.*)' "$WORK/log" | sed 's/^/  profile build: /'
    fusermount3 -u "$WORK/mnt"
    wait $pid || true
done
