"""requirements.lock (what the Docker image installs with `pip install --require-hashes`) matches
pyproject.toml: every dependency pinned at a version its range allows, every pin with hashes.
docs/deployment.md gives the command that refreshes the lock."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def parse_lock(text: str) -> dict[str, tuple[Version, list[str]]]:
    """{canonical name: (pinned version, hashes)} of a pip requirements file written with hashes;
    an entry that is not `name==version` with at least one sha256 raises ValueError naming it."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    logical = re.sub(r"\\\s*\n", " ", text)
    for line in logical.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--"):
            if not line.startswith(("--index-url ", "--extra-index-url ")):
                raise ValueError(f"unexpected option in the lock: {line!r}")
            continue
        spec, *options = line.split()
        req = Requirement(spec)
        pins = list(req.specifier)
        if len(pins) != 1 or pins[0].operator != "==" or "*" in pins[0].version:
            raise ValueError(f"{req.name}: not pinned with == ({spec!r})")
        hashes = [o for o in options if o.startswith("--hash=")]
        if not hashes or not all(HASH.fullmatch(h) for h in hashes):
            raise ValueError(f"{req.name}: no sha256 hashes ({line[:120]!r})")
        name = canonicalize_name(req.name)
        if name in entries:
            raise ValueError(f"{req.name}: pinned twice")
        entries[name] = (Version(pins[0].version), hashes)
    return entries


def image_requirements() -> list[Requirement]:
    """pyproject.toml's [project.dependencies] as the image installs them (TensorFlow's CPU-only
    wheel in place of ``tensorflow``: scripts/docker_requirements.py, the lock's input)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docker_requirements", ROOT / "scripts" / "docker_requirements.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("docker_requirements", module)
    spec.loader.exec_module(module)
    return [Requirement(d) for d in module.requirements(ROOT / "pyproject.toml", "tensorflow-cpu")]


def test_lock_pins_every_dependency_of_pyproject_in_its_range():
    lock = parse_lock(LOCK.read_text())
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = image_requirements()
    assert len(reqs) == len(declared)
    for req in reqs:
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} ({req}) is not in requirements.lock: refresh it (docs/deployment.md)"
        version, hashes = lock[name]
        assert req.specifier.contains(version, prereleases=True), \
            f"requirements.lock pins {req.name}=={version}, outside pyproject.toml's {req.specifier}"
        assert hashes
    # the CPU-only TensorFlow, and not the full one as well
    assert "tensorflow-cpu" in lock and "tensorflow" not in lock
    # extras come with their packages (psycopg[binary] -> psycopg-binary)
    assert "psycopg-binary" in lock and lock["psycopg-binary"][0] == lock["psycopg"][0]
    # what `pip install --no-deps --no-build-isolation .` builds simsearch with, pinned too
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for req in map(Requirement, build):
        assert canonicalize_name(req.name) in lock, req
        assert req.specifier.contains(lock[canonicalize_name(req.name)][0], prereleases=True), req


def test_lock_is_for_pypi_cpu_only():
    text = LOCK.read_text()
    assert "--index-url https://pypi.org/simple" in text
    assert "file:" not in text and "/opt/" not in text  # no index only this machine has
    lock = parse_lock(text)
    assert not [n for n in lock if n.startswith(("nvidia-", "jax-cuda", "torch"))], "a CUDA package in the lock"


@pytest.mark.parametrize("text, message", [
    ("numpy>=1.26 --hash=sha256:" + "a" * 64 + "\n", "numpy: not pinned with =="),
    ("numpy==2.0.0\n", "numpy: no sha256 hashes"),
    ("numpy==2.0.0 \\\n    --hash=sha256:abc\n", "numpy: no sha256 hashes"),
    ("numpy==2.0.0 --hash=sha256:" + "a" * 64 + "\nNumPy==2.0.0 --hash=sha256:" + "b" * 64 + "\n",
     "NumPy: pinned twice"),
    ("--trusted-host example.com\n", "unexpected option"),
])
def test_parse_lock_refuses_what_pip_would_not_check(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_lock(text)


def test_parse_lock_reads_continuations_and_comments():
    text = ("--index-url https://pypi.org/simple\n\n# a comment\nnumpy==2.4.6 \\\n    --hash=sha256:" + "a" * 64 +
            " \\\n    --hash=sha256:" + "b" * 64 + "\n    # via -r -\nPyYAML==6.0.2 \\\n    --hash=sha256:" + "c" * 64 + "\n")
    lock = parse_lock(text)
    assert lock == {"numpy": (Version("2.4.6"), [f"--hash=sha256:{'a' * 64}", f"--hash=sha256:{'b' * 64}"]),
                    "pyyaml": (Version("6.0.2"), [f"--hash=sha256:{'c' * 64}"])}
