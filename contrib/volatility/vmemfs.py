# vmemfs.py - Volatility 3 support for vmemfs's pmem.raw (load with
# `vol -p contrib/volatility`).  Not a plugin: a layer and a stacker.
#
# vmemfs has already found, for the guest behind a pmem.raw, everything
# Volatility's LinuxIntelStacker searches the whole image for (the kernel
# banner, the kernel's page tables, the KASLR shift), and it writes them to
# the info.json beside pmem.raw.  VmemfsLinuxStacker reads that file and
# stacks the translation layer of the guest's paging mode straight away:
#
#   - Volatility 3 (2.11) has no layer for 5-level paging (LA57, every guest
#     of a recent server CPU that exposes it): Intel5Level below;
#   - for 32-bit kernels its Linux stacker always takes the 2-level Intel
#     layer, so it reads nothing of a PAE (686-pae) kernel: IntelPAE here;
#   - no banner scan over the whole image, on any guest: the banner is read
#     at the guest-physical address info.json gives, and the symbol finder
#     is told it (kernel_banner), so it does not scan either.
#
# Anything that is not a pmem.raw of vmemfs (no info.json beside it, or one
# without a recognised Linux guest: mount with --symbols or --profile) is
# left to Volatility's own stackers.
import collections
import json
import logging
import os
import urllib.parse
import urllib.request
from typing import Optional

from volatility3.framework import constants, interfaces
from volatility3.framework.automagic import linux as linux_automagic
from volatility3.framework.layers import intel

vollog = logging.getLogger(__name__)

# The longest banner read at banner_gpa; Linux's is about 200 bytes.
MAX_BANNER = 512


class Intel5Level(intel.Intel32e):
    """x86-64 with 5-level paging (CR4.LA57): a PML5 above the PML4 and
    57-bit virtual addresses, sign-extended from bit 56."""

    _maxvirtaddr = 57
    _structure = [("page map layer 5", 9, False)] + intel.Intel32e._structure
    _direct_metadata = collections.ChainMap(
        {"la57": True}, intel.Intel32e._direct_metadata
    )


# info.json's guest.paging -> the layer that walks it.
LAYERS = {
    "x86-64 5-level": Intel5Level,
    "x86-64 4-level": intel.Intel32e,
    "x86 PAE": intel.IntelPAE,
    "x86 32-bit": intel.Intel,
}


def info_json_beside(layer) -> Optional[dict]:
    """The info.json vmemfs shows beside the file this layer reads, if the
    file is a vmemfs pmem.raw (or pmem) and info.json says its guest."""
    location = layer.config.get("location") if hasattr(layer, "config") else None
    if not location:
        return None
    url = urllib.parse.urlparse(location)
    if url.scheme != "file":
        return None
    path = urllib.request.url2pathname(url.path)
    if os.path.basename(path) not in ("pmem.raw", "pmem"):
        return None
    info_path = os.path.join(os.path.dirname(path), "info.json")
    try:
        with open(info_path) as f:
            info = json.load(f)
    except (OSError, ValueError) as e:
        vollog.debug(f"vmemfs: no usable {info_path}: {e}")
        return None
    guest = info.get("guest") or {}
    if guest.get("os") != "linux":
        vollog.info(
            f"vmemfs: {info_path} names no Linux guest "
            f"({guest.get('why_no_proc', 'no profile')}): mount with --symbols"
        )
        return None
    return info


class VmemfsLinuxStacker(interfaces.automagic.StackerLayerInterface):
    """Stacks the Linux kernel's layer on a vmemfs pmem.raw from its
    info.json: paging mode, kernel page tables, KASLR shift, banner."""

    # After the file-format stackers (LiME, ELF, ... at 10-20: pmem.raw is
    # none of them), before LinuxIntelStacker (35), which then sees an
    # Intel layer and stands aside.
    stack_order = 30
    exclusion_list = ["mac", "windows"]

    @classmethod
    def stack(
        cls,
        context: interfaces.context.ContextInterface,
        layer_name: str,
        progress_callback: constants.ProgressCallback = None,
    ) -> Optional[interfaces.layers.DataLayerInterface]:
        layer = context.layers[layer_name]
        if isinstance(layer, intel.Intel):
            return None
        info = info_json_beside(layer)
        if info is None:
            return None
        guest = info["guest"]
        layer_class = LAYERS.get(guest.get("paging"))
        if layer_class is None:
            vollog.warning(f"vmemfs: paging mode {guest.get('paging')!r} has no layer here")
            return None
        try:
            dtb = int(guest["kernel_dtb"], 16)
            virtual_shift = int(guest.get("kaslr_virtual_shift", "0x0"), 16)
            banner_gpa = int(guest["banner_gpa"], 16)
        except (KeyError, TypeError, ValueError) as e:
            vollog.warning(f"vmemfs: info.json of {info.get('name')} lacks {e}")
            return None
        # The banner as Volatility's symbol cache keys it: up to and with
        # the terminating NUL.
        data = layer.read(banner_gpa, MAX_BANNER, pad=True)
        end = data.find(b"\0")
        if not data.startswith(b"Linux version ") or end < 0:
            vollog.warning(f"vmemfs: no Linux banner at 0x{banner_gpa:x} of {info.get('name')}")
            return None
        banner = data[: end + 1]

        join = interfaces.configuration.path_join
        new_layer_name = context.layers.free_layer_name("IntelLayer")
        config_path = join("IntelHelper", new_layer_name)
        context.config[join(config_path, "memory_layer")] = layer_name
        context.config[join(config_path, "page_map_offset")] = dtb
        context.config[
            join(config_path, linux_automagic.LinuxSymbolFinder.banner_config_key)
        ] = str(banner, "latin-1")
        new_layer = layer_class(
            context,
            config_path=config_path,
            name=new_layer_name,
            metadata={"os": "Linux"},
        )
        new_layer.config["kernel_virtual_offset"] = virtual_shift
        vollog.debug(
            f"vmemfs: VM {info.get('name')}: {layer_class.__name__}, dtb 0x{dtb:x}, "
            f"KASLR virtual shift 0x{virtual_shift:x}, banner at 0x{banner_gpa:x}"
        )
        return new_layer
