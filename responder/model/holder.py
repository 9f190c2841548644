"""Who is acting: a lease or claim holder id unique to this start of the process."""

from __future__ import annotations

import os
import secrets
import socket


def default_holder() -> str:
    """A lease holder id unique to this start: host, pid and a random part.

    Two containers can share a host name and a pid; the random part keeps their ids apart.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
