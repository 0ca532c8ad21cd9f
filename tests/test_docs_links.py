"""Every relative link and image in README.md and docs/*.md points at a file that exists, and every
`#anchor` into a Markdown file names one of its headings (GitHub's heading ids). Links to web
addresses are not followed (the tests run offline)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# [text](target) and ![alt](target); the target ends at the first space or ')' (an optional "title" follows)
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def links(text: str) -> list[str]:
    """The link targets of a Markdown text, outside code blocks and inline code."""
    text = INLINE_CODE.sub("", FENCE.sub("", text))
    return LINK.findall(text)


def anchors(text: str) -> set[str]:
    """GitHub's ids of a Markdown file's headings: lower case, punctuation dropped, spaces to '-',
    repeats numbered -1, -2..."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", text).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken(page: Path) -> list[str]:
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            problems.append(f"{target}: {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            problems.append(f"{target}: no heading with the id '{anchor}' in {dest.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_relative_links_and_images_resolve(page):
    problems = broken(page)
    assert not problems, f"{page.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_the_checker_finds_a_broken_link_an_image_and_an_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Keys and errors\n")
    (tmp_path / "pic.jpg").write_bytes(b"\xff\xd8")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md) [ok](other.md#keys-and-errors) ![ok](pic.jpg) [web](https://example.org/x)\n"
                    "[gone](missing.md) ![gone](images/none.jpg) [bad anchor](other.md#nope)\n"
                    "`[code](not-a-link.md)`\n```\n[fenced](not-a-link.md)\n```\n")
    problems = broken(page)
    assert len(problems) == 3, problems
    assert any("missing.md" in p for p in problems)
    assert any("none.jpg" in p for p in problems)
    assert any("'nope'" in p for p in problems)


def test_tour_pictures_are_small_enough():
    """The tour's JPEGs stay under 150 KB each, about 1280 px wide (docs/images/make_tour.py)."""
    from PIL import Image

    shots = sorted((ROOT / "docs" / "images").glob("tour-*.jpg"))
    assert shots, "docs/images/tour-*.jpg are missing: run docs/images/make_tour.py"
    for shot in shots:
        assert shot.stat().st_size < 150_000, f"{shot.name}: {shot.stat().st_size} bytes"
        with Image.open(shot) as im:
            assert 1200 <= im.width <= 1400, f"{shot.name}: {im.width} px wide"


def _error_classes(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _error_classes(sub)


def test_every_error_code_is_in_the_api_table():
    """docs/api.md's table of error codes names every ``code`` of simsearch/errors.py with its status."""
    from simsearch import errors

    table = [line for line in (ROOT / "docs" / "api.md").read_text().splitlines() if re.match(r"\| \d{3} \|", line)]
    missing = []
    for cls in [errors.SimsearchError, *_error_classes(errors.SimsearchError)]:
        rows = [line for line in table if f"`{cls.code}`" in line]
        if not any(line.startswith(f"| {cls.http_status} |") for line in rows):
            missing.append(f"{cls.__name__}: {cls.http_status} `{cls.code}`")
    assert not missing, "not in docs/api.md's table of errors: " + ", ".join(missing)
