"""What this machine's CPU offers (read from /proc/cpuinfo; no runtime is imported)."""

from __future__ import annotations

import platform
from functools import lru_cache

BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@lru_cache(maxsize=1)
def cpu_info() -> dict:
    """``{"model": "...", "flags": {...}}`` of the first CPU (empty flags where unknown)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {"model": model, "flags": flags}


def cpu_has_bf16() -> bool:
    """True where the CPU computes bf16 natively (AMX or AVX512-BF16): there bf16 is ~2x fp32."""
    return any(f in cpu_info()["flags"] for f in BF16_FLAGS)


def cpu_summary() -> dict:
    """For benchmark output: the CPU model and the flags that decide the runtime and precision."""
    flags = cpu_info()["flags"]
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni")
    return {"cpu_model": cpu_info()["model"], "cpu_flags": [f for f in wanted if f in flags],
            "cpu_bf16": cpu_has_bf16()}
