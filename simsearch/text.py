"""Wording shared by every message: counts with the right plural (``1 image``, ``2 images``)."""

from __future__ import annotations

_IRREGULAR = {"was": "were", "is": "are", "has": "have"}


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "new image")`` -> ``1 new image``; ``plural(3, "image")`` -> ``3 images``;
    ``many`` gives an irregular plural (``plural(2, "index", "indexes")``)."""
    return f"{n} {word if n == 1 else (many or _plural_of(word))}"


def verb(n: int, singular: str) -> str:
    """``verb(1, "was")`` -> ``was``, ``verb(2, "was")`` -> ``were``."""
    return singular if n == 1 else _IRREGULAR.get(singular, singular)


def _plural_of(word: str) -> str:
    head, _, last = word.rpartition(" ")
    if last.endswith(("s", "x", "sh", "ch")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in tuple("aeiou"):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last
