"""The Docker build context of a folder as .dockerignore lets it through, without Docker.

    python scripts/build_context.py [ROOT] [--list] [--dockerignore FILE]

Prints the number of files, their bytes and the size of the tar the Docker client would send.
The patterns follow Docker's rules (moby/patternmatcher): Go-style globs with ``**``, matched
against a path or any of its parent folders, later lines winning, ``!`` re-including; a leading
``/`` is ignored. Standard library only.
"""

from __future__ import annotations

import argparse
import io
import os
import posixpath
import re
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_ESCAPE = set(".+()|{}$^")


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool  # a "!" line: re-includes what it matches
    regex: re.Pattern

    def matches(self, path: str) -> bool:
        """``path`` (slash-separated, relative) or one of its parent folders matches."""
        if self.regex.match(path):
            return True
        parts = path.split("/")
        return any(self.regex.match("/".join(parts[: i + 1])) for i in range(len(parts) - 1))

    @property
    def prefix(self) -> str:
        """The literal folders before the first wildcard (which paths it can possibly name)."""
        m = re.search(r"[*?\[\\]", self.text)
        return self.text if m is None else self.text[: m.start()]


def _regex(pattern: str) -> re.Pattern:
    out, i = "^", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if i + 1 < len(pattern) and pattern[i + 1] == "*":
                i += 1
                if i + 1 < len(pattern) and pattern[i + 1] == "/":
                    i += 1
                out += ".*" if i + 1 >= len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif ch in _ESCAPE:
            out += "\\" + ch
        else:
            out += ch
        i += 1
    return re.compile(out + "$")


def read_patterns(dockerignore: Path) -> list[Pattern]:
    patterns = []
    if not dockerignore.exists():
        return patterns
    for line in dockerignore.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        line = posixpath.normpath(line)
        if len(line) > 1 and line.startswith("/"):
            line = line[1:]
        patterns.append(Pattern(line, exclusion, _regex(line)))
    return patterns


def excluded(path: str, patterns: list[Pattern]) -> bool:
    out = False
    for p in patterns:
        if p.matches(path):
            out = not p.exclusion
    return out


def _may_reinclude(folder: str, patterns: list[Pattern]) -> bool:
    """Could a "!" line re-include something below an excluded ``folder``? (Else it is skipped.)"""
    for p in patterns:
        if p.exclusion:
            pre = p.prefix
            if not pre or pre.startswith(folder + "/") or folder.startswith(pre):
                return True
    return False


def context_files(root: Path, patterns: list[Pattern] | None = None) -> list[str]:
    """Relative paths (files and links) the build context holds, sorted."""
    root = Path(root)
    patterns = read_patterns(root / ".dockerignore") if patterns is None else patterns
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        keep = []
        for d in sorted(dirnames):
            rel = rel_dir + d
            if os.path.islink(os.path.join(dirpath, d)):
                if not excluded(rel, patterns):
                    found.append(rel)
            elif not excluded(rel, patterns) or _may_reinclude(rel, patterns):
                keep.append(d)
        dirnames[:] = keep
        found += [rel_dir + f for f in filenames if not excluded(rel_dir + f, patterns)]
    return sorted(found)


class _Counter(io.RawIOBase):
    def __init__(self):
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.n += len(b)
        return len(b)


def tar_size(root: Path, files: list[str]) -> int:
    """Bytes of an uncompressed tar of ``files`` (what the client streams to the builder)."""
    counter = _Counter()
    with tarfile.open(fileobj=counter, mode="w|") as tar:
        for f in files:
            tar.add(Path(root) / f, arcname=f, recursive=False)
    return counter.n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", nargs="?", type=Path, default=ROOT)
    ap.add_argument("--list", action="store_true", help="print every path")
    ap.add_argument("--dockerignore", type=Path, help="these patterns instead of ROOT/.dockerignore "
                    "(e.g. this checkout's, to measure another checkout that has a .venv)")
    args = ap.parse_args(argv)
    files = context_files(args.root, read_patterns(args.dockerignore) if args.dockerignore else None)
    if args.list:
        print("\n".join(files))
    size = sum(os.lstat(args.root / f).st_size for f in files)
    print(f"build context of {args.root}: {len(files)} files, {size / 1e6:.2f} MB of file data, "
          f"tar {tar_size(args.root, files) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
