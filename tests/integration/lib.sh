# lib.sh - shared by the integration tests: where things are, skipping
# cleanly when FUSE cannot run here, and mounting/unmounting vmemfs.
set -euo pipefail

SRC=${VMEMFS_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${VMEMFS_BUILD:-$SRC/build}
VMEMFS=$BUILD/vmemfs

skip() { echo "SKIP: $*"; exit 77; }

need_fuse() {
    [ -c /dev/fuse ] || skip "no /dev/fuse on this machine"
    command -v fusermount3 >/dev/null || skip "fusermount3 missing (apt-get install fuse3)"
    [ -x "$VMEMFS" ] || { echo "FAIL: $VMEMFS not built"; exit 1; }
}

# need_volatility NAME: ../shared/volatility3 and a Python that can run it
# (Debian's python3-pefile: contrib/install-deps.sh), or skip.  Exports
# VOL_PY, VOL_PYTHON and VOL_CACHE, the caller's own Volatility cache, kept
# between runs: Volatility's cache is not safe for runs at the same time
# with different symbol directories (each run drops the ISFs the other's
# directories hold), so each test has its own.  A new one is seeded from
# another (the first build takes a minute or more).
need_volatility() {
    VOL_PY=${VMEMFS_VOLATILITY:-$SRC/../shared/volatility3}/vol.py
    [ -f "$VOL_PY" ] || skip "no Volatility 3 at $VOL_PY (../shared/volatility3 absent)"
    VOL_PYTHON=
    for py in /usr/bin/python3 python3; do
        if "$py" -c 'import pefile' 2>/dev/null; then VOL_PYTHON=$(command -v "$py"); break; fi
    done
    [ -n "$VOL_PYTHON" ] || skip "no python3 with pefile for Volatility (apt-get install python3-pefile)"
    local base=${VMEMFS_VOLATILITY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmemfs-volatility3} seed
    VOL_CACHE=$base/${1:?need_volatility NAME}
    mkdir -p "$VOL_CACHE"
    if [ ! -s "$VOL_CACHE/identifier.cache" ]; then
        for seed in "$base"/*/ "${XDG_CACHE_HOME:-$HOME/.cache}/volatility3/"; do
            if [ -s "$seed/identifier.cache" ] && [ "$seed" != "$VOL_CACHE/" ]; then
                cp "$seed"/*cache "$VOL_CACHE/" 2>/dev/null || true
                break
            fi
        done
    fi
    export VOL_PY VOL_PYTHON VOL_CACHE
}
