"""Print simsearch's dependencies (pyproject.toml) as a requirements file for the Docker image,
with TensorFlow's CPU-only wheel in place of ``tensorflow`` where PyPI has one.

    python scripts/docker_requirements.py [--tensorflow auto|tensorflow-cpu|tensorflow] > requirements.txt

Why: ``tensorflow`` 2.21.0 for Linux x86-64 carries the CUDA kernels (libtensorflow_cc.so.2 is
1.10 GB; 1.87 GB installed), ``tensorflow-cpu`` 2.21.0 does not (788 MB; 1.27 GB installed, a
274 MB wheel), with the same Python dependencies. Nothing else simsearch installs depends on
``tensorflow`` by name, so the image installs these requirements and then simsearch with
``--no-deps``. ``auto`` (default): ``tensorflow-cpu`` on x86-64, where it is published, else
``tensorflow`` (on arm64 that wheel is CPU-only anyway). ``tensorflow``: the full wheel (a GPU
image). Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# "tensorflow" followed by a version specifier, a marker, extras or nothing (not tensorflow-io...)
TENSORFLOW = re.compile(r"^tensorflow(?=\s*(?:[<>=!~;\[]|$))", re.IGNORECASE)


def tensorflow_package(choice: str, machine: str | None = None) -> str:
    if choice != "auto":
        return choice
    machine = (machine or platform.machine()).lower()
    return "tensorflow-cpu" if machine in ("x86_64", "amd64") else "tensorflow"


def requirements(pyproject: Path, tensorflow: str) -> list[str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [TENSORFLOW.sub(tensorflow, d.strip()) for d in deps]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tensorflow", default="auto", choices=["auto", "tensorflow-cpu", "tensorflow"])
    ap.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    args = ap.parse_args(argv)
    print("\n".join(requirements(args.pyproject, tensorflow_package(args.tensorflow))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
