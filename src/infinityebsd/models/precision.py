"""Whether bfloat16 pays on this machine's CPU: the one check that inference (``--precision auto``)
and training (the default ``--mixed-precision`` on a CPU) both read."""

from __future__ import annotations

import torch


def cpu_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX BF16).

    Not oneDNN's ``_is_mkldnn_bf16_supported``: that also says yes on plain AVX-512, where bf16 is
    emulated and the UNet runs about 2.6x slower per call than in fp32, whole jobs 2.1x (measured
    on a 2-core Xeon without AVX-512 BF16, bench/RESULTS.md). Unknown CPUs count as not native, so
    inference's ``--precision auto`` and training's default keep fp32 there."""
    cpu = getattr(torch, "cpu", None)
    try:
        caps = cpu.get_capabilities()
        return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))
    except Exception:  # older torch: the private probes, else not native
        try:
            return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
        except Exception:
            return False
