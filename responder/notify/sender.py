"""The outbox's sender: claims a queued notice, tries each due receiver once, writes back.

Every gunicorn worker (and replica) runs one; a claim in the store makes one of them
deliver a given notice, and a crashed holder's claim expires. A notice is marked
delivered only after its receiver answered 2xx, so a crash can repeat a delivery but
never lose one; receivers that dedupe get the notice's id as Idempotency-Key.
Temporary failures (429, 5xx, timeouts, and anything unforeseen such as a garbled
answer) are retried with capped backoff until give_up_after_seconds; permanent ones
fail at once. Nothing here touches a transition.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping

from ddb_failover.config import Notify, Retry
from ddb_failover.logs import kv
from responder.model.backoff import backoff
from responder.model.errors import PermanentError, TemporaryError
from responder.model.holder import default_holder
from responder.model.loop import Loop
from responder.notify.receivers import SENDERS, Sender
from responder.state.outbox import Delivery, Notice
from responder.state.store import StateStore, StoreUnavailable

log = logging.getLogger(__name__)
BACKOFF = Retry(initial_backoff_seconds=1.0, max_backoff_seconds=60.0)
# A claim lasts as long as its deliveries may take, plus this for the store's writes: a
# sender killed mid-delivery holds its notices that long (a minute was too long to page late).
CLAIM_MARGIN_SECONDS = 10.0
POLL_SECONDS = 2.0


class Notifier(Loop):
    """Delivers the outbox; receivers' secrets, the clock and the senders are injected."""

    name = "notifier"

    def __init__(
        self,
        store: StateStore,
        notify: Notify,
        secrets: Mapping[str, str],
        *,
        count: Callable[[str, str, str], None] = lambda receiver, event, result: None,
        redact: Callable[[str], str] = str,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        senders: Mapping[str, Sender] = SENDERS,
        holder: str | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.receivers = {r.name: r for r in notify.receivers}
        self.notify = notify
        self._secrets = dict(secrets)
        self._count = count
        self._redact = redact
        self._clock = clock
        self._rand = rand
        self._senders = senders
        self.holder = holder or default_holder()

    def run_once(self) -> int:
        """Deliver what is due now, in order per transition and receiver; deliveries tried."""
        tried = 0
        # (subject, receiver) pairs with an older notice still pending: a chat room must not
        # read "completed" before "started" because one of them was throttled.
        waiting: set[tuple[str, str]] = set()
        for queued in self.store.notices(self._clock()):
            now = self._clock()
            ready = [r for r in queued.due(now) if (queued.subject, r) not in waiting]
            if ready and queued.claim_until <= now:
                # Long enough for every receiver's connect and read to time out in turn.
                until = now + CLAIM_MARGIN_SECONDS + 2 * self.notify.timeout_seconds * len(ready)
                notice = self.store.claim_notice(queued.id, self.holder, until, now)
                if notice is not None:
                    # As claimed, not as listed: another sender may have delivered some since.
                    fresh = [r for r in notice.due(now) if (notice.subject, r) not in waiting]
                    for name in fresh:
                        notice = notice.with_delivery(name, self._deliver(notice, name))
                        tried += 1
                    self.store.update_notice(notice, self.holder)
                    queued = notice
            pending = [n for n, d in queued.deliveries.items() if d.state == "pending"]
            waiting.update((queued.subject, name) for name in pending)
        return tried

    def _deliver(self, notice: Notice, name: str) -> Delivery:
        """One attempt at one receiver, and what it leaves for the next."""
        receiver = self.receivers.get(name)
        before = notice.deliveries[name]
        attempts = before.attempts + 1
        now = self._clock()
        if receiver is None:  # the configuration dropped it since the notice was queued
            return Delivery("failed", attempts, 0.0, f"no receiver {name} configured", now)
        try:
            self._senders[receiver.type](
                notice, receiver, self._secrets[name], self.notify.timeout_seconds
            )
        except PermanentError as exc:
            return self._ended(notice, name, "failed", attempts, self._redact(str(exc)))
        except Exception as exc:  # temporary, or unforeseen (a garbled answer): retried
            temporary = isinstance(exc, TemporaryError)
            error = self._redact(str(exc) if temporary else f"{name}: {type(exc).__name__}")
            if now - notice.at > self.notify.give_up_after_seconds:
                return self._ended(notice, name, "failed", attempts, error)
            self._count(name, notice.event, "retried")
            retry_after = exc.retry_after if isinstance(exc, TemporaryError) else None
            wait = backoff(attempts, BACKOFF, self._rand(), retry_after)
            log.warning(kv(event="notice_retry", notice=notice.id, receiver=name, error=error))
            return Delivery("pending", attempts, now + wait, error)
        return self._ended(notice, name, "delivered", attempts, None)

    def _ended(
        self, notice: Notice, name: str, result: str, attempts: int, error: str | None
    ) -> Delivery:
        self._count(name, notice.event, result)
        level = logging.INFO if result == "delivered" else logging.WARNING
        log.log(
            level,
            kv(event="notice", notice=notice.id, receiver=name, result=result, error=error),
        )
        return Delivery(
            "delivered" if result == "delivered" else "failed", attempts, 0.0, error, self._clock()
        )

    def round(self) -> float:
        """Deliver what is due; rest POLL_SECONDS (a queued notice wakes the thread sooner)."""
        try:
            self.run_once()
        except StoreUnavailable as exc:
            log.warning(kv(event="notifier_store_unavailable", error=str(exc)))
        except Exception:  # a bug: keep the traceback and the thread
            log.exception(kv(event="notifier_round_failed"))
        return POLL_SECONDS

    def start(self) -> None:
        """Deliver in a daemon thread until stop(); a no-op without receivers."""
        if self.receivers:
            super().start()
