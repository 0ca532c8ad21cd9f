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


def machine_facts() -> dict:
    """CPU model, cores, SIMD flags, FAISS version, memory and load average (scale.py, http_similar.py)."""
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    import faiss

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "simd": [f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if f in flags],
            "faiss": faiss.__version__, "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1),
            "load_average_before": [round(v, 2) for v in os.getloadavg()], "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
