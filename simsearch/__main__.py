"""``python -m simsearch``: the ``simsearch`` command."""

from simsearch.cli import main

main()
