"""gunicorn's gthread worker, reading each request head in its poller before a thread sees it.

gthread hands a connection to a thread as soon as its first bytes arrive, and the thread
then blocks until the whole head has come: a client that sends half a header block holds
that thread with no time limit, and a few dozen such clients hold them all. Here the
worker's main loop reads the head without blocking (TLS handshake first, if any), for at
most `HEAD_DEADLINE_SECONDS` from accept or from a kept-alive connection's next byte, and
refuses one over `MAX_HEAD_BYTES` with 431. Only a complete head reaches the thread pool,
so half-sent headers cost a file descriptor and a buffer, never a thread. Measured in
`python -m bench hostile_clients`; why this over a proxy: docs/security.md.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn.http2 import negotiation
from gunicorn.sock import ssl_context
from gunicorn.workers.gthread import TConn, ThreadWorker

HEAD_DEADLINE_SECONDS = 10.0
MAX_HEAD_BYTES = 64 * 1024
READ_BYTES = 16 * 1024
# After a 408 or 431, what the client still sends is read and dropped for this long (at most
# MAX_HEAD_BYTES): closing with unread bytes would reset the connection and lose the answer.
LINGER_SECONDS = 2.0
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 30\r\n\r\nrequest head over 65536 bytes\n"
)
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 33\r\n\r\nrequest head not complete in 10 s\n"
)


def head_complete(data: bytes | bytearray) -> bool:
    """Whether `data` holds a whole request head, or enough for the parser to refuse it.

    The parser skips one empty line before the request line (RFC 9112 section 2.2), and
    refuses a bare LF at once: neither leaves a thread waiting for more.
    """
    rest = data[2:] if data.startswith(b"\r\n") else data
    return b"\r\n\r\n" in rest or data.count(b"\n") != data.count(b"\r\n")


@dataclass(eq=False)
class _Head:
    """A connection whose head is being read: its deadline and the bytes so far."""

    deadline: float
    data: bytearray = field(default_factory=bytearray)
    handshaking: bool = False
    lingering: bool = False
    drained: int = 0


class HeadFirstWorker(ThreadWorker):
    """gthread, with the request head read in the poller (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Insertion order is deadline order: every deadline is "now + the same constant".
        self.heads: dict[Any, _Head] = {}

    def _reads_heads(self, client: Any) -> bool:
        """False where gthread's own path must stay: PROXY protocol, HTTP/2 sniffing or ALPN."""
        if self.cfg.proxy_protocol != "off" or negotiation.prior_knowledge_allowed(
            self.cfg, client
        ):
            return False
        return not (self.cfg.is_ssl and "h2" in (self.cfg.http_protocols or ()))

    def accept(self, listener: Any) -> None:
        try:
            sock, client = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, sock, client, listener.getsockname())
        if not self._reads_heads(client):
            conn.sock.setblocking(True)
            self.enqueue_req(conn)
            return
        head = _Head(time.monotonic() + HEAD_DEADLINE_SECONDS)
        if self.cfg.is_ssl:
            conn.sock = ssl_context(self.cfg).wrap_socket(
                sock,
                server_side=True,
                suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                do_handshake_on_connect=False,
            )
            head.handshaking = True
        self._await(conn, head)

    def _await(self, conn: Any, head: _Head, events: int = selectors.EVENT_READ) -> None:
        self.heads[conn] = head
        conn.sock.setblocking(False)
        self.poller.register(conn.sock, events, partial(self._on_readable, conn))

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection's next request: its head is read here too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await(conn, _Head(time.monotonic() + HEAD_DEADLINE_SECONDS))
        self._on_readable(conn, client)

    def finish_request(self, conn: Any, fs: Any) -> None:
        """A response read ahead into part of the next head: finish that head here."""
        if self.alive and not fs.cancelled() and fs.exception() is None and fs.result() is True:
            ahead = conn.parser.unreader.take_buffered()
            if ahead and not head_complete(ahead):
                self._await(conn, _Head(time.monotonic() + HEAD_DEADLINE_SECONDS, bytearray(ahead)))
                return
            conn.parser.unreader.unread(ahead)
        super().finish_request(conn, fs)

    def _on_readable(self, conn: Any, _fileobj: Any) -> None:
        head = self.heads.get(conn)
        if head is None:
            return
        if head.lingering:
            self._linger(conn, head)
            return
        if head.handshaking and not self._handshake(conn, head):
            return
        while True:
            try:
                chunk = conn.sock.recv(READ_BYTES)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                return
            except (OSError, ssl.SSLError):
                chunk = b""
            if not chunk:
                self._close(conn)
                return
            head.data += chunk
            if head_complete(head.data):
                self._hand_over(conn, bytes(head.data))
                return
            if len(head.data) > MAX_HEAD_BYTES:
                self._refuse(conn, head, TOO_LARGE)
                return

    def _handshake(self, conn: Any, head: _Head) -> bool:
        """One step of the TLS handshake; True once it is done."""
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.poller.modify(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
            return False
        except ssl.SSLWantWriteError:
            self.poller.modify(conn.sock, selectors.EVENT_WRITE, partial(self._on_readable, conn))
            return False
        except (OSError, ssl.SSLError):
            self._close(conn)
            return False
        head.handshaking = False
        self.poller.modify(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
        return True

    def _hand_over(self, conn: Any, data: bytes) -> None:
        """The head is whole: the thread pool parses it and runs the app."""
        self._forget(conn)
        if conn.parser is None:
            conn.initialized = True
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.sock.setblocking(True)
        conn.parser.unreader.unread(data)
        self.enqueue_req(conn)

    def _forget(self, conn: Any) -> None:
        del self.heads[conn]
        self.poller.unregister(conn.sock)

    def _close(self, conn: Any) -> None:
        self._forget(conn)
        self.nr_conns -= 1
        conn.close()

    def _refuse(self, conn: Any, head: _Head, answer: bytes) -> None:
        """Answer without blocking (best effort: the connection ends either way), end the
        writing side, and read what the client still sends until it closes or LINGER_SECONDS
        pass (RFC 9112 section 9.6)."""
        with contextlib.suppress(OSError):
            conn.sock.send(answer)
            conn.sock.shutdown(socket.SHUT_WR)
        head.lingering = True
        head.deadline = time.monotonic() + LINGER_SECONDS
        self._linger(conn, head)

    def _linger(self, conn: Any, head: _Head) -> None:
        while head.drained <= MAX_HEAD_BYTES:
            try:
                chunk = conn.sock.recv(READ_BYTES)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                return
            except OSError:
                break
            if not chunk:
                break
            head.drained += len(chunk)
        self._close(conn)

    def murder_pending(self) -> None:
        """gthread's expired pending connections, and heads past their deadline; a stopping
        worker closes at once the connections that have sent nothing yet."""
        super().murder_pending()
        now = time.monotonic()
        for conn, head in list(self.heads.items()):
            if head.deadline > now and (self.alive or (head.data and not head.lingering)):
                continue
            if head.deadline > now or head.handshaking or head.lingering:
                self._close(conn)
            else:
                self._refuse(conn, head, TIMED_OUT)
