"""What every benchmark script shares: progress lines on stderr and the machine's CPU model
(benchmarks print one JSON object on stdout and state the CPU beside every figure)."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


SIMD = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")  # what decides the runtimes' speed


def cpu_id() -> dict:
    """The CPU's family and model numbers and its SIMD flags of :data:`SIMD` (/proc/cpuinfo): a
    model name such as "AMD EPYC" is the same for Zen 1 (family 23) and Zen 5 (family 26), whose
    speeds differ 2x and more (bf16 only from Zen 4)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if not key and fields:
                break  # the first processor's block is enough
            fields.setdefault(key, value.strip())
    except OSError:
        return {}
    flags = fields.get("flags", "").split()
    return {"family": fields.get("cpu family"), "model": fields.get("model"), "simd": [f for f in SIMD if f in flags]}


def machine_facts() -> dict:
    """CPU model, cores, SIMD flags, FAISS version, memory and load average (scale.py, http_similar.py)."""
    ident = cpu_id()
    import faiss

    return {"cpu": cpu_model(), "cpu_family": ident.get("family"), "cpu_model_number": ident.get("model"),
            "cores": os.cpu_count(), "simd": ident.get("simd", []),
            "faiss": faiss.__version__, "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1),
            "load_average_before": [round(v, 2) for v in os.getloadavg()], "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
