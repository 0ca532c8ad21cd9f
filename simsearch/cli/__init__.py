"""The ``simsearch`` command. Sub-commands live in sibling modules, on the group of
:mod:`simsearch.cli.app`; heavy libraries (TensorFlow, FAISS) are imported inside the commands
that need them, so ``simsearch --help`` stays fast."""

from __future__ import annotations

import sys

from simsearch.cli.app import SimsearchGroup, cli, context_from, main, settings_from

__all__ = ["SimsearchGroup", "cli", "context_from", "main", "settings_from"]


from simsearch.cli import core, db, duplicates, exports, jobs, manage, reembed, vectors  # noqa: E402,F401  (they register their commands)


def _register() -> None:
    for optional in ("analysis", "tune", "web"):
        try:
            __import__(f"simsearch.cli.{optional}")
        except ModuleNotFoundError as exc:
            if exc.name != f"simsearch.cli.{optional}":
                raise


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
