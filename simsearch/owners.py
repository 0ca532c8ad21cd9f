"""Who runs a job: the owner names of in-process runners and CLI commands, and whether one stopped."""

from __future__ import annotations

import os
import socket
import uuid

_TOKENS: dict[int, str] = {}


def this_process(kind: str = "thread") -> str:
    """The owner name of jobs run by this process (``kind`` "thread": its in-process runner, "cli":
    a `simsearch ingest` command): host, pid and a random token (a restarted container can give
    the new process the old one's pid; the token tells them apart)."""
    pid = os.getpid()
    token = _TOKENS.setdefault(pid, uuid.uuid4().hex[:12])
    return f"{kind}:{socket.gethostname()}:{pid}:{token}"


def owner_is_gone(owner: str) -> bool:
    """Whether the in-process runner or CLI command named ``owner`` (on this host) has certainly stopped."""
    try:
        kind, host, pid_text, token = owner.split(":")
        pid = int(pid_text)
    except ValueError:
        return False
    if kind not in ("thread", "cli") or host != socket.gethostname():
        return False  # another machine's process: cannot tell
    if pid == os.getpid():
        return token != _TOKENS.get(pid)  # an earlier process that had this pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False
