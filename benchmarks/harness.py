"""What every benchmark script shares: import it first (``from harness import ROOT, emit, log``).

- importing it makes the repository's ``simsearch`` importable when a script is run as
  ``python benchmarks/X.py`` (the one ``sys.path`` line of the benchmarks; ``benchmarks/`` itself is
  on the path already, as the script's folder), and notes the load average at the start;
- :func:`log`: a progress line on stderr (stdout is the result's);
- :func:`machine`: the machine block: CPU model (benchmarks/machine.py), cores, memory, load
  average at the start and now, Python, platform;
- :func:`emit`: prints the result as ONE JSON object on stdout, with the machine block under
  ``"machine"`` (keys the script put there itself, such as the FAISS version, are kept).

Every figure quoted from a benchmark names the CPU beside it: the machine block is how."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from machine import cpu_id, cpu_model, log  # noqa: E402  benchmarks/machine.py (the one definition of each)

__all__ = ["ROOT", "cpu_model", "emit", "log", "machine"]

_LOAD_AT_START = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _memory() -> dict:
    """Total and available memory in GiB (/proc/meminfo; the total from sysconf elsewhere)."""
    out = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                out["memory_gib" if key == "MemTotal" else "memory_available_gib"] = round(int(value.split()[0]) / 2**20, 1)
    except OSError:
        try:
            out["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
        except (ValueError, OSError, AttributeError):
            pass
    return out


def machine() -> dict:
    """The machine the figures were measured on (other processes skew them: see the load averages)."""
    load_now = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    ident = cpu_id()
    return {"cpu_model": cpu_model(), "cpu_family": ident.get("family"), "cpu_model_number": ident.get("model"),
            "simd": ident.get("simd", []), "cores": os.cpu_count(), **_memory(),
            "load_average_start": _LOAD_AT_START, "load_average_end": load_now,
            "python": platform.python_version(), "platform": platform.platform()}


def emit(result: dict, *, indent: int | None = 1, dumps=None) -> dict:
    """Print ``result`` as one JSON object on stdout, with the machine block; returns what was
    printed. ``dumps``: another formatter of the object (default ``json.dumps`` at ``indent``)."""
    block = machine()
    block.update(result.get("machine") or {})
    out = {**result, "machine": block}
    print(dumps(out) if dumps else json.dumps(out, indent=indent), flush=True)
    return out
