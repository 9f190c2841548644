"""The DynamoDB store's reconciler lease: acquired, renewed and released with a fencing token."""

from __future__ import annotations

import contextlib

from responder.state.dynamodb import items
from responder.state.dynamodb.chained_table import ConditionFailed
from responder.state.dynamodb.items import n, s
from responder.state.dynamodb.table import FENCED, ControlTable
from responder.state.records import Lease
from responder.state.store import LeaseLost


class DynamoDBLease(ControlTable):
    """The reconciler lease, kept on the current item."""

    def acquire_lease(self, holder: str, ttl_seconds: float) -> Lease | None:
        now = self._clock()
        expires = now + ttl_seconds
        item = self._current()
        live = items.lease(item, now)
        token = items.integer(item, "lease_token")
        if live is not None and live.holder != holder:
            return None
        values = {":holder": s(holder), ":expires": n(expires), ":token": n(token), ":now": n(now)}
        try:
            if live is not None:
                # Re-acquiring our own live lease keeps the token.
                self._update(
                    "SET #lease_expires = :expires",
                    values,
                    f"#lease_holder = :holder AND {FENCED}",
                )
                return Lease(holder, token, expires)
            # Taking over: the condition pins the token we read, so two contenders cannot
            # both get token+1, and tokens only ever grow.
            self._update(
                "SET #lease_holder = :holder, #lease_token = :next, #lease_expires = :expires",
                {**values, ":next": n(token + 1)},
                "#lease_token = :token AND (attribute_not_exists(#lease_holder)"
                " OR #lease_expires <= :now)",
            )
        except ConditionFailed:
            return None  # someone else moved first
        return Lease(holder, token + 1, expires)

    def renew_lease(self, lease: Lease, ttl_seconds: float) -> Lease:
        now = self._clock()
        try:
            self._update(
                "SET #lease_expires = :expires",
                {
                    ":expires": n(now + ttl_seconds),
                    ":holder": s(lease.holder),
                    ":token": n(lease.token),
                    ":now": n(now),
                },
                f"#lease_holder = :holder AND {FENCED}",
            )
        except ConditionFailed:
            raise LeaseLost(f"lease of {lease.holder} (token {lease.token}) is lost") from None
        return Lease(lease.holder, lease.token, now + ttl_seconds)

    def release_lease(self, lease: Lease) -> None:
        # A false condition means the lease is not ours any more: nothing to give up.
        with contextlib.suppress(ConditionFailed):
            self._update(
                "SET #lease_expires = :zero REMOVE #lease_holder",
                {":zero": n(0), ":holder": s(lease.holder), ":token": n(lease.token)},
                "#lease_holder = :holder AND #lease_token = :token",
            )

    def current_lease(self) -> Lease | None:
        """Who holds the reconciler lease now (for operators and tests); None when free."""
        return items.lease(self._current(), self._clock())
