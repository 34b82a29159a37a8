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

# need_volatility: ../shared/volatility3 and a Python that can run it
# (Debian's python3-pefile: contrib/install-deps.sh), or skip.  Exports
# VOL_PY, VOL_PYTHON and VOL_CACHE, Volatility's cache for vmemfs's tests
# (kept between runs: the first run builds it, about a minute).
need_volatility() {
    VOL_PY=${VMEMFS_VOLATILITY:-$SRC/../shared/volatility3}/vol.py
    [ -f "$VOL_PY" ] || skip "no Volatility 3 at $VOL_PY (../shared/volatility3 absent)"
    VOL_PYTHON=
    for py in /usr/bin/python3 python3; do
        if "$py" -c 'import pefile' 2>/dev/null; then VOL_PYTHON=$(command -v "$py"); break; fi
    done
    [ -n "$VOL_PYTHON" ] || skip "no python3 with pefile for Volatility (apt-get install python3-pefile)"
    VOL_CACHE=${VMEMFS_VOLATILITY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmemfs-volatility3}
    mkdir -p "$VOL_CACHE"
    export VOL_PY VOL_PYTHON VOL_CACHE
}
