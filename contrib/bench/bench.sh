#!/usr/bin/env bash
# vmemfs read benchmark: the dump file itself vs. the FUSE ceiling
# (ceilingfs.c) vs. vmemfs's pmem.raw.  A benchmark, not a test: never run
# by ctest.  Needs root (drop_caches, bdi read_ahead_kb, pipe-max-size).
# See README.md next to this script.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

SIZE_MIB=2048
REPS=5
RAND_SECS=1
SEQ_MAX_SECS=8
RA_KB=4096
CEIL_THREADS=4
VMEMFS=${VMEMFS:-$HERE/../../build/vmemfs}
VMEMFS_OPTS=""
VM_SPEC="file:%s"
DUMP=""
RAW=""
WORKDIR=""
KEEP=0
ONLY=""
OUT=""
SEED=1
VERIFY_PAGES=4096
DEFAULT_CONTENDERS="direct,ceil-dio,ceil-dio-splice,ceil-pc,ceil-pc-ra,ceil-pc-ra-splice,vmemfs,vmemfs-ra"
EXTRA_CONTENDERS="ceil-dio-pread,ceil-pc-ra-pread,ceil-pc-splice,ceil-pc-nokeep,vmemfs-ra128"
IDLE_MAX=25
IDLE_WAIT=15
IDLE_BUDGET=60

usage() {
	cat <<EOF
usage: sudo $0 [options] [VMEMFS_BINARY]
  --size MIB        size of the generated raw image (default $SIZE_MIB)
  --dump FILE       mount FILE with vmemfs instead of the generated image
                    (any format vmemfs reads: raw, ELF core, kdump, ...)
  --raw FILE        raw image of the same memory, read by the direct and
                    ceiling contenders and used to verify pmem.raw
                    (default: the --dump file, or the generated image)
  --vmemfs PATH     vmemfs binary (default: \$VMEMFS or ../../build/vmemfs
                    relative to this script); also the positional argument
  --vm-spec SPEC    vmemfs --vm source, %s = dump path (default "$VM_SPEC")
  --vmemfs-opts S   extra vmemfs arguments (word-split)
  --reps N          repetitions per contender (default $REPS)
  --rand-secs S     duration of each random-read run (default $RAND_SECS)
  --seq-max-secs S  stop a sequential read after S s (default $SEQ_MAX_SECS)
  --ra-kb KB        raised FUSE read_ahead_kb for the *-ra contenders (default $RA_KB)
  --ceil-threads N  ceilingfs worker threads (default $CEIL_THREADS)
  --only LIST       comma-separated contenders (default: all of
                    $DEFAULT_CONTENDERS;
                    also available: $EXTRA_CONTENDERS)
  --idle-max PCT    before each contender's suite, wait (up to --idle-wait S,
                    --idle-budget S in all) while other CPU load exceeds PCT %
                    of the machine (default $IDLE_MAX, $IDLE_WAIT s, $IDLE_BUDGET s)
  --quick           --size 512 --reps 3 --rand-secs 0.5 (about 3 minutes)
  --workdir DIR     keep binaries, image and logs in DIR (reused next time;
                    default: a fresh temporary dir, removed at the end)
  --out FILE        also write the markdown report to FILE
EOF
	exit "${1:-2}"
}

while [ $# -gt 0 ]; do
	case $1 in
	--size) SIZE_MIB=$2; shift ;;
	--dump) DUMP=$2; shift ;;
	--raw) RAW=$2; shift ;;
	--vmemfs) VMEMFS=$2; shift ;;
	--vm-spec) VM_SPEC=$2; shift ;;
	--vmemfs-opts) VMEMFS_OPTS=$2; shift ;;
	--reps) REPS=$2; shift ;;
	--rand-secs) RAND_SECS=$2; shift ;;
	--seq-max-secs) SEQ_MAX_SECS=$2; shift ;;
	--ra-kb) RA_KB=$2; shift ;;
	--ceil-threads) CEIL_THREADS=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--idle-max) IDLE_MAX=$2; shift ;;
	--idle-wait) IDLE_WAIT=$2; shift ;;
	--idle-budget) IDLE_BUDGET=$2; shift ;;
	--quick) SIZE_MIB=512; REPS=3; RAND_SECS=0.5 ;;
	--workdir) WORKDIR=$2; KEEP=1; shift ;;
	--out) OUT=$2; shift ;;
	-h|--help) usage 0 ;;
	-*) echo "unknown option $1" >&2; usage ;;
	*) VMEMFS=$1 ;;
	esac
	shift
done

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

[ "$(id -u)" = 0 ] || die "needs root (drop_caches, read_ahead_kb, pipe-max-size)"
for t in cc pkg-config fusermount3 mountpoint fincore awk; do
	command -v $t >/dev/null || die "missing $t"
done
pkg-config --exists fuse3 || die "pkg-config fuse3 not found (libfuse3-dev)"

# ---------------------------------------------------------------- work dir
if [ -z "$WORKDIR" ]; then
	WORKDIR=$(mktemp -d "${TMPDIR:-/var/tmp}/vmemfs-bench.XXXXXX")
fi
mkdir -p "$WORKDIR"/bin "$WORKDIR"/mnt "$WORKDIR"/log
WORKDIR=$(cd "$WORKDIR" && pwd)
RES=$WORKDIR/results.tsv
DIAG=$WORKDIR/diag.txt
: >"$RES"
: >"$DIAG"

declare -A MNT_PID=()      # mountpoint -> daemon pid (only daemons we started)
PIPE_MAX_ORIG=$(cat /proc/sys/fs/pipe-max-size)

cleanup() {
	local m
	for m in "${!MNT_PID[@]}"; do
		fusermount3 -u "$m" 2>/dev/null || true
		wait_pid "${MNT_PID[$m]}" 5 || kill "${MNT_PID[$m]}" 2>/dev/null || true
	done
	echo "$PIPE_MAX_ORIG" >/proc/sys/fs/pipe-max-size 2>/dev/null || true
	if [ "$KEEP" = 0 ]; then
		rm -rf --one-file-system "$WORKDIR"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_pid() { # pid timeout_s: wait for a daemon we started to exit
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
		sleep 0.05
	done
	return 1
}

# ---------------------------------------------------------------- build
vm_spec() { echo "${VM_SPEC//%s/$1}"; }

log "building ceilingfs and benchio in $WORKDIR/bin"
# shellcheck disable=SC2046
cc -O2 -Wall -Wextra -Wno-unused-parameter -o "$WORKDIR"/bin/ceilingfs \
	"$HERE"/ceilingfs.c $(pkg-config --cflags --libs fuse3) -lpthread
cc -O2 -Wall -Wextra -o "$WORKDIR"/bin/benchio "$HERE"/benchio.c -lpthread
BIO=$WORKDIR/bin/benchio
CEIL=$WORKDIR/bin/ceilingfs

# ---------------------------------------------------------------- inputs
if [ -n "$DUMP" ]; then
	[ -r "$DUMP" ] || die "cannot read --dump $DUMP"
	DUMP=$(cd "$(dirname "$DUMP")" && pwd)/$(basename "$DUMP")
	[ -n "$RAW" ] || RAW=$DUMP
	GEN_NOTE="given dump $(basename "$DUMP")"
else
	DUMP=$WORKDIR/image-${SIZE_MIB}M-seed$SEED.raw
	if [ -f "$DUMP" ] && [ "$(stat -c %s "$DUMP")" = $((SIZE_MIB << 20)) ]; then
		log "reusing $DUMP"
		GEN_NOTE="generated raw image, ${SIZE_MIB} MiB (reused)"
	else
		log "generating ${SIZE_MIB} MiB raw image"
		read -r _ _ gmbs < <("$BIO" gen "$DUMP" "$SIZE_MIB" "$SEED")
		GEN_NOTE="generated raw image, ${SIZE_MIB} MiB (xoshiro256**, written at $gmbs MB/s)"
	fi
	[ -n "$RAW" ] || RAW=$DUMP
fi
RAW=$(cd "$(dirname "$RAW")" && pwd)/$(basename "$RAW")
RAW_SIZE=$(stat -c %s "$RAW")
RAW_FSTYPE=$(findmnt -no FSTYPE -T "$RAW" 2>/dev/null || stat -f -c %T "$RAW")
case $RAW_FSTYPE in tmpfs|ramfs) log "WARNING: $RAW is on $RAW_FSTYPE: cold reads are not cold" ;; esac
sync

# ---------------------------------------------------------------- contenders
# name -> kind (file|ceil|vmemfs), ceilingfs flags, readahead (- = leave)
declare -A KIND=() CFLAGS=() RA=()
def() { KIND[$1]=$2; CFLAGS[$1]=$3; RA[$1]=$4; }
def direct            file   ""                    -
def ceil-dio          ceil   "--direct-io"         -
def ceil-dio-splice   ceil   "--direct-io --splice" -
def ceil-pc           ceil   ""                    -
def ceil-pc-ra        ceil   ""                    "$RA_KB"
def ceil-pc-ra-splice ceil   "--splice"            "$RA_KB"
def ceil-dio-pread    ceil   "--direct-io --pread" -
def ceil-pc-ra-pread  ceil   "--pread"             "$RA_KB"
def ceil-pc-splice    ceil   "--splice"            -
def ceil-pc-nokeep    ceil   "--no-keep-cache"     -
def vmemfs            vmemfs ""                    -
def vmemfs-ra         vmemfs ""                    "$RA_KB"
def vmemfs-ra128      vmemfs ""                    128

IFS=, read -r -a CONT <<<"${ONLY:-$DEFAULT_CONTENDERS}"
for c in "${CONT[@]}"; do
	[ -n "${KIND[$c]:-}" ] || die "unknown contender $c"
done

VMEMFS_NOTE=""
want_vmemfs=0
for c in "${CONT[@]}"; do [ "${KIND[$c]}" = vmemfs ] && want_vmemfs=1; done
if [ $want_vmemfs = 1 ]; then
	if [ ! -x "$VMEMFS" ]; then
		VMEMFS_NOTE="vmemfs skipped: no executable at $VMEMFS"
	else
		# run a copy: a rebuild of the original during the run changes nothing
		VMEMFS_ORIG=$VMEMFS
		cp "$VMEMFS" "$WORKDIR/bin/vmemfs"
		VMEMFS=$WORKDIR/bin/vmemfs
		VMEMFS_ID="$("$VMEMFS" --version 2>/dev/null | head -n 1 || true), built $(date -r "$VMEMFS_ORIG" '+%F %T')"
	fi
fi

# mount a FUSE contender; sets MP (mountpoint) and TARGET (file to read)
mount_c() {
	local c=$1 i ra
	MP=$WORKDIR/mnt/$c
	mkdir -p "$MP"
	case ${KIND[$c]} in
	file) TARGET=$RAW; return 0 ;;
	ceil)
		TARGET=$MP/data
		# shellcheck disable=SC2086
		"$CEIL" ${CFLAGS[$c]} --threads "$CEIL_THREADS" "$MP" "$RAW" \
			>>"$WORKDIR/log/$c.log" 2>&1 &
		;;
	vmemfs)
		TARGET=$MP/bench/pmem.raw
		# shellcheck disable=SC2086
		"$VMEMFS" "$MP" -f --vm "bench=$(vm_spec "$DUMP")" $VMEMFS_OPTS \
			>>"$WORKDIR/log/$c.log" 2>&1 &
		;;
	esac
	MNT_PID[$MP]=$!
	for ((i = 0; i < 600; i++)); do
		[ -e "$TARGET" ] && break
		if ! kill -0 "${MNT_PID[$MP]}" 2>/dev/null; then
			wait "${MNT_PID[$MP]}" 2>/dev/null || true
			unset "MNT_PID[$MP]"
			fusermount3 -u -z "$MP" 2>/dev/null || true   # if it died mounted
			return 1
		fi
		sleep 0.05
	done
	if [ ! -e "$TARGET" ]; then
		umount_c
		return 1
	fi
	# open it once first: a daemon may set its own read-ahead on the first
	# open (vmemfs does); a forced value must come after that
	: <"$TARGET" || return 1
	BDI=/sys/class/bdi/$(mountpoint -d "$MP")/read_ahead_kb
	ra=${RA[$c]}
	[ "$ra" = - ] || echo "$ra" >"$BDI"
	RA_SEEN[$c]=$(cat "$BDI")
	return 0
}

umount_c() {
	[ -n "${MNT_PID[$MP]:-}" ] || return 0
	fusermount3 -u "$MP" 2>/dev/null || fusermount3 -u -z "$MP" 2>/dev/null || true
	wait_pid "${MNT_PID[$MP]}" 10 || { kill "${MNT_PID[$MP]}" 2>/dev/null; wait_pid "${MNT_PID[$MP]}" 5 || true; }
	unset "MNT_PID[$MP]"
}

declare -A RA_SEEN=() RESID=()
drop() { # drop the page cache; note how much of the image stayed resident
	local r
	sync
	echo 3 >/proc/sys/vm/drop_caches
	r=$(fincore -nb -o RES "$RAW" 2>/dev/null | awk '{print $1+0}')
	r=$(( ${r:-0} * 100 / RAW_SIZE ))
	[ "$r" -le "${RESID[$1]:-0}" ] || RESID[$1]=$r
}

rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RES"; }

declare -A FAILS=()
fail_c() { # contender broke: log it; skip it from now on the second time
	log "contender $1 failed ($2); see $WORKDIR/log/$1.log"
	tail -n 5 "$WORKDIR/log/$1.log" 2>/dev/null | sed 's/^/  | /' >&2 || true
	echo "- $1 failed in rep ${REP:-0}: $2" >>"$DIAG"
	FAILS[$1]=$(( ${FAILS[$1]:-0} + 1 ))
	[ "${FAILS[$1]}" -lt 2 ] || SKIP[$1]=1
	umount_c
}

seq_read() { # file bs [maxbytes] -> sets SEQ_BYTES, SEQ_MBS; notes capped reads
	local out
	out=$("$BIO" seq "$1" "$2" "$SEQ_MAX_SECS" "${3:-0}") || return 1
	read -r SEQ_BYTES _ SEQ_MBS out <<<"$out"
	[ "$out" != capped ] || CAPPED_ANY[$C]=1
}

cpu_busy() { # percent of all CPUs busy over 0.3 s (us, sys, irq, steal...)
	local a b
	read -r -a a < <(head -n 1 /proc/stat)
	sleep 0.3
	read -r -a b < <(head -n 1 /proc/stat)
	awk -v a="${a[*]}" -v b="${b[*]}" 'BEGIN { n = split(a, x, " "); split(b, y, " ");
		for (i = 2; i <= n; i++) { d = y[i] - x[i]; t += d; if (i == 5 || i == 6) idle += d }
		printf "%d", t ? 100 * (t - idle) / t : 0 }'
}

IDLE_SPENT=0
idle_gate() { # wait a little for other load to pass; record the load seen
	local c=$1 rep=$2 busy t0=$SECONDS
	busy=$(cpu_busy)
	while [ "$busy" -gt "$IDLE_MAX" ] && [ $((SECONDS - t0)) -lt "$IDLE_WAIT" ] &&
		[ $((IDLE_SPENT + SECONDS - t0)) -lt "$IDLE_BUDGET" ]; do
		sleep 1
		busy=$(cpu_busy)
	done
	IDLE_SPENT=$((IDLE_SPENT + SECONDS - t0))
	rec "$c" busy "$rep" "$busy"
}

declare -A SKIP=()
suite() { # contender rep
	local c=$1 rep=$2 out
	C=$c
	# A: cold sequential, 128 KiB reads
	mount_c "$c" || { fail_c "$c" "mount"; return; }
	drop "$c"
	seq_read "$TARGET" 131072 || { fail_c "$c" "seq 128K read"; return; }
	rec "$c" seq128k "$rep" "$SEQ_MBS"
	umount_c
	# B: cold sequential, 1 MiB reads, then the same bytes again (warm)
	mount_c "$c" || { fail_c "$c" "mount"; return; }
	drop "$c"
	seq_read "$TARGET" 1048576 || { fail_c "$c" "seq 1M read"; return; }
	rec "$c" seq1m "$rep" "$SEQ_MBS"
	seq_read "$TARGET" 1048576 "$SEQ_BYTES" || { fail_c "$c" "warm read"; return; }
	rec "$c" warm1m "$rep" "$SEQ_MBS"
	umount_c
	[ "${KIND[$c]}" != ceil ] || grep -o 'reads=.*' "$WORKDIR/log/$c.log" | tail -n 1 |
		sed "s/^/$c /" >>"$WORKDIR/log/reqstats.txt"
	# C: fresh mount, no drop: the image is in the page cache, the FUSE file
	# (and vmemfs's own cache) is not -- "dump in RAM, first read"
	mount_c "$c" || { fail_c "$c" "mount"; return; }
	seq_read "$TARGET" 1048576 "$SEQ_BYTES" || { fail_c "$c" "hot read"; return; }
	rec "$c" hot1m "$rep" "$SEQ_MBS"
	# warm random reads: everything that can be cached now is
	for t in 1 2; do
		out=$("$BIO" rand "$TARGET" "$RAND_SECS" $t $((SEED + rep))) || { fail_c "$c" "warm rand"; return; }
		rec "$c" wrand$t "$rep" "${out##* }"
	done
	umount_c
	# D: cold random reads, 1 and 2 threads (fresh mount each)
	for t in 1 2; do
		mount_c "$c" || { fail_c "$c" "mount"; return; }
		drop "$c"
		out=$("$BIO" rand "$TARGET" "$RAND_SECS" $t $((SEED + rep))) || { fail_c "$c" "cold rand"; return; }
		rec "$c" crand$t "$rep" "${out##* }"
		umount_c
	done
}
declare -A CAPPED_ANY=()

# ---------------------------------------------------------------- checks
# splice of 1 MiB replies needs a pipe of 1 MiB + header, more than the
# default pipe-max-size (1 MiB): libfuse's F_SETPIPE_SZ fails (even as root
# here) and it silently copies instead.  Raised for the run, restored after.
echo $((4 << 20)) >/proc/sys/fs/pipe-max-size
if [ $want_vmemfs = 1 ] && [ -z "$VMEMFS_NOTE" ]; then
	if mount_c vmemfs; then
		log "vmemfs mounts: $TARGET ($(stat -c %s "$TARGET") bytes, read_ahead_kb ${RA_SEEN[vmemfs]})"
		if [ "${RA_SEEN[vmemfs]}" = "$RA_KB" ] && [ -z "$ONLY" ]; then
			# vmemfs raises read-ahead itself: show what that buys instead
			for i in "${!CONT[@]}"; do [ "${CONT[$i]}" != vmemfs-ra ] || CONT[i]=vmemfs-ra128; done
			log "vmemfs sets read_ahead_kb $RA_KB itself: measuring vmemfs-ra128 instead of vmemfs-ra"
		fi
		if grep -q "$(basename "$DUMP")" "/proc/${MNT_PID[$MP]}/maps" 2>/dev/null; then
			echo "- vmemfs mmaps the dump (page cache of mapped pages cannot be dropped while mounted; the bench remounts before each cold read)" >>"$DIAG"
		fi
		umount_c
	else
		VMEMFS_NOTE="vmemfs skipped: $VMEMFS did not mount $(vm_spec "$DUMP") (log: $WORKDIR/log/vmemfs.log)"
		tail -n 5 "$WORKDIR/log/vmemfs.log" 2>/dev/null | sed 's/^/  | /' >&2 || true
	fi
fi
if [ -n "$VMEMFS_NOTE" ]; then
	log "$VMEMFS_NOTE"
	for c in "${CONT[@]}"; do [ "${KIND[$c]}" = vmemfs ] && SKIP[$c]=1; done
fi

for c in "${CONT[@]}"; do
	if [ -n "${SKIP[$c]:-}" ] || [ "${KIND[$c]}" = file ]; then continue; fi
	if ! mount_c "$c"; then fail_c "$c" "mount"; continue; fi
	if out=$("$BIO" verify "$TARGET" "$RAW" "$VERIFY_PAGES" 2>&1); then
		log "$c: content matches the raw image"
	else
		log "$c: CONTENT MISMATCH: $out"
		echo "- $c: content differs from the raw image: $out" >>"$DIAG"
	fi
	umount_c
done

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)

# ---------------------------------------------------------------- run
ACTIVE=()
for c in "${CONT[@]}"; do [ -n "${SKIP[$c]:-}" ] || ACTIVE+=("$c"); done
n=${#ACTIVE[@]}
log "contenders: ${ACTIVE[*]}; $REPS reps, alternating"
for ((rep = 1; rep <= REPS; rep++)); do
	for ((k = 0; k < n; k++)); do
		c=${ACTIVE[$(( (k + rep - 1) % n ))]}   # rotate the order every rep
		[ -z "${SKIP[$c]:-}" ] || continue
		idle_gate "$c" "$rep"
		log "rep $rep/$REPS: $c (other CPU load $(tail -n 1 "$RES" | cut -f4)%)"
		REP=$rep
		suite "$c" "$rep"
	done
done
T1=$(date +%s)
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
echo "$PIPE_MAX_ORIG" >/proc/sys/fs/pipe-max-size

# ---------------------------------------------------------------- report
median() { # contender metric -> median over reps, or "-"
	awk -F'\t' -v c="$1" -v m="$2" '$1 == c && $2 == m { print $4 }' "$RES" | sort -g |
		awk '{ v[NR] = $1 } END { if (!NR) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
			else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
fmt() { awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else if (v >= 100) printf "%.0f", v; else printf "%.1f", v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

METRICS=(seq128k seq1m hot1m warm1m crand1 crand2 wrand1 wrand2)
HEAD="| contender | seq 128K cold MB/s | seq 1M cold MB/s | seq 1M hot-src MB/s | seq 1M warm MB/s | rand 4K cold 1T /s | rand 4K cold 2T /s | rand 4K warm 1T /s | rand 4K warm 2T /s |"
SEP="|---|---:|---:|---:|---:|---:|---:|---:|---:|"
declare -A MED=()
for c in "${ACTIVE[@]}"; do
	for m in "${METRICS[@]}"; do MED[$c,$m]=$(median "$c" "$m"); done
done

best_ceiling() { # metric -> "value name" of the fastest ceiling variant
	local c best=- name=-
	for c in "${ACTIVE[@]}"; do
		[ "${KIND[$c]}" = ceil ] || continue
		v=${MED[$c,$1]}
		[ "$v" != - ] || continue
		if [ "$best" = - ] || awk -v a="$v" -v b="$best" 'BEGIN { exit !(a > b) }'; then
			best=$v; name=$c
		fi
	done
	echo "$best $name"
}

report() {
	echo "# vmemfs read benchmark"
	echo
	echo "## Machine"
	echo
	echo "- CPU: $(nproc) x $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), RAM $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "- kernel: $(uname -r); libfuse $(pkg-config --modversion fuse3); $(fusermount3 --version 2>&1 | head -n 1)"
	echo "- data: $GEN_NOTE; raw image $((RAW_SIZE >> 20)) MiB on $RAW_FSTYPE ($(df --output=source "$RAW" | tail -n 1))"
	[ "$DUMP" = "$RAW" ] || echo "- vmemfs mounts: $(basename "$DUMP") ($(( $(stat -c %s "$DUMP") >> 20 )) MiB) via --vm bench=$(vm_spec "$(basename "$DUMP")")"
	echo "- run: $REPS reps alternating, median shown; random runs ${RAND_SECS}s each; ceilingfs $CEIL_THREADS threads, max_read 1 MiB; raised read_ahead_kb $RA_KB; $((T1 - T0)) s; loadavg before $LOAD0, after $LOAD1"
	[ -z "$VMEMFS_NOTE" ] || echo "- **$VMEMFS_NOTE**"
	[ -z "${VMEMFS_ID:-}" ] || echo "- vmemfs: $VMEMFS_ID"
	echo
	echo "## Results (median of $REPS; MB = 10^6 bytes)"
	echo
	echo "$HEAD"
	echo "$SEP"
	for c in "${ACTIVE[@]}"; do
		line="| $c"
		[ "${RA[$c]}" = - ] || line="$line (ra ${RA[$c]}K)"
		[ "${KIND[$c]}" != vmemfs ] || [ "${RA[$c]}" != - ] || line="$line (ra ${RA_SEEN[$c]:-?}K)"
		[ "$c" != ceil-pc ] || line="$line (ra ${RA_SEEN[$c]:-?}K)"
		for m in "${METRICS[@]}"; do line="$line | $(fmt "${MED[$c,$m]}")"; done
		echo "$line |"
	done
	echo
	echo "## Relative to the direct file read (x direct)"
	echo
	echo "$HEAD" | sed 's| MB/s||g; s| /s||g'
	echo "$SEP"
	for c in "${ACTIVE[@]}"; do
		[ "$c" != direct ] || continue
		line="| $c"
		for m in "${METRICS[@]}"; do line="$line | $(ratio "${MED[$c,$m]}" "${MED[direct,$m]:--}")"; done
		echo "$line |"
	done
	echo
	echo "## Ratios (ceiling = fastest ceiling variant per column)"
	echo
	echo "$HEAD" | sed 's| MB/s||g; s| /s||g; s|contender|ratio|'
	echo "$SEP"
	local line_c="| ceiling variant" line_cd="| ceiling / direct" m bc
	declare -A CEILV=()
	for m in "${METRICS[@]}"; do
		bc=$(best_ceiling "$m")
		CEILV[$m]=${bc% *}
		line_c="$line_c | ${bc#* }"
		line_cd="$line_cd | $(ratio "${CEILV[$m]}" "${MED[direct,$m]:--}")"
	done
	echo "$line_c |"
	echo "$line_cd |"
	for v in vmemfs vmemfs-ra vmemfs-ra128; do
		[ -n "${MED[$v,seq1m]:-}" ] || continue
		line="| $v / ceiling"
		for m in "${METRICS[@]}"; do line="$line | $(ratio "${MED[$v,$m]}" "${CEILV[$m]}")"; done
		echo "$line |"
		line="| $v / direct"
		for m in "${METRICS[@]}"; do line="$line | $(ratio "${MED[$v,$m]}" "${MED[direct,$m]:--}")"; done
		echo "$line |"
	done
	echo
	echo "## Notes"
	echo
	awk -F'\t' '$2 == "busy" { print $4 }' "$RES" | sort -g | awk -v spent="$IDLE_SPENT" -v lim="$IDLE_MAX" '
		{ v[NR] = $1 } END { if (NR) printf "- CPU load from other processes when each suite started (after waiting %d s in all for < %d%%): median %d%%, max %d%%%s\n",
			spent, lim, v[int((NR + 1) / 2)], v[NR], (v[NR] > lim ? " -- figures are noisy, rerun on a quiet machine" : "") }'
	for c in "${ACTIVE[@]}"; do
		[ "${RESID[$c]:-0}" -le 2 ] || echo "- $c: up to ${RESID[$c]}% of the raw image stayed in the page cache after drop_caches: its cold figures are partly warm"
		[ -z "${CAPPED_ANY[$c]:-}" ] || echo "- $c: some sequential reads stopped after $SEQ_MAX_SECS s (--seq-max-secs)"
	done
	cat "$DIAG"
	if [ -s "$WORKDIR/log/reqstats.txt" ]; then
		echo "- ceilingfs read requests during the cold + warm 1 MiB reads (last rep; avg = bytes/reads):"
		awk '{ split($0, a, "reads="); split(a[2], b, " "); r = b[1]; split(a[2], c, "bytes="); split(c[2], d, " ");
			split(a[2], e, "max="); printf "  - %s avg %.0f KiB, max %.0f KiB over %d reads\n", $1, d[1] / (r ? r : 1) / 1024, e[2] / 1024, r }' \
			"$WORKDIR/log/reqstats.txt" | awk '{ last[$2] = $0 } END { for (k in last) print last[k] }' | sort
	fi
	echo "- raw samples: results.tsv in the work dir (kept with --workdir)"
}

report | tee ${OUT:+"$OUT"}
