"""Name -> :class:`~simsearch.index.kinds.base.IndexKind` registry, and what is asked of all kinds
together: which kind a loaded index is, which kinds the automatic policy prefers, the first kind
of an order that fits a collection."""

from __future__ import annotations

from simsearch.index.kinds.base import ForeignKind, IndexKind

_REGISTRY: dict[str, IndexKind] = {}


def register(cls: type[IndexKind]) -> type[IndexKind]:
    """Register a kind (a class decorator: one instance of it). A name is registered once; one
    kind only may be exact."""
    kind = cls()
    if not kind.name or kind.name != kind.name.strip().lower() or kind.name == "auto":
        raise ValueError(f"an index kind needs a lower-case name other than 'auto', not {kind.name!r}")
    if kind.name in _REGISTRY:
        raise ValueError(f"index kind {kind.name!r} is registered already")
    for role in ("exact", "untuned"):
        if getattr(kind, role) and any(getattr(k, role) for k in _REGISTRY.values()):
            raise ValueError(f"index kind {kind.name!r}: only one kind can be the {role} one")
    _REGISTRY[kind.name] = kind
    return cls


def unregister(name: str) -> None:
    """Forget a kind (tests register kinds of their own)."""
    _REGISTRY.pop(name, None)


def names() -> list[str]:
    """Every registered kind: the exact one first, then the preference, then kinds only forced."""
    return [k.name for k in sorted(_REGISTRY.values(), key=_rank)]


def _rank(kind: IndexKind) -> tuple:
    return (not kind.exact, kind.preference is None, kind.preference or 0, kind.name)


def get(name: str) -> IndexKind:
    """The kind called ``name``; ValueError naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown index kind {name!r} (known: {', '.join(names())})") from None


def behaviour(name: str) -> IndexKind:
    """The kind called ``name``, or for an index of no registered kind (a file of an earlier
    version) a :class:`ForeignKind`: searched as it is, never built."""
    return _REGISTRY.get(name) or ForeignKind(name)


def exact() -> IndexKind:
    """The exact kind (always fits: the policy's last resort)."""
    return next(k for k in _REGISTRY.values() if k.exact)


def untuned() -> IndexKind:
    """The approximate kind built without tuning (``faiss_index.build_index``)."""
    return next(k for k in _REGISTRY.values() if k.untuned)


def is_approximate(name: str | None) -> bool:
    """A registered kind other than the exact one."""
    kind = _REGISTRY.get(name) if name is not None else None
    return kind is not None and not kind.exact


def preference() -> tuple[str, ...]:
    """The approximate kinds the automatic policy tries, best first (by their ``preference``)."""
    return tuple(k.name for k in sorted(_REGISTRY.values(), key=_rank) if not k.exact and k.preference is not None)


def fitting(order, n: int, dim: int) -> tuple[str, dict]:
    """The first kind of ``order`` that fits ``n`` vectors of ``dim`` dimensions (the exact kind
    when none does), and why each one before it does not: (kind, {kind: reason})."""
    rejected = {}
    for name in order:
        problem = get(name).unfit(n, dim)
        if problem is None:
            return name, rejected
        rejected[name] = problem
    return exact().name, rejected


def kind_of(index) -> str:
    """The kind of a loaded index (files written before the policy hold flat or HNSW-flat
    indexes: the latter counts as ``hnsw_flat``, which the policy replaces)."""
    import faiss

    inner = faiss.downcast_index(index.index)
    found = [name for name in names() if _REGISTRY[name].matches(inner)]
    if len(found) > 1:  # IndexKind.matches must tell the kinds apart
        raise ValueError(f"a {type(inner).__name__} matches the index kinds {found}")
    if found:
        return found[0]
    return "hnsw_flat" if isinstance(inner, faiss.IndexHNSW) else type(inner).__name__
