"""The DynamoDB store's decisions: recorded, repeats counted, and the freeze a decision may set."""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import replace
from typing import Any

from responder.state import chain
from responder.state.dynamodb.chained_table import ConditionFailed, Write
from responder.state.dynamodb.items import n, s
from responder.state.dynamodb.repeats import add_repeats, count_or_claim
from responder.state.dynamodb.table import ControlTable
from responder.state.outbox import Announce, Notice, announced
from responder.state.phases import blocks_phase, clears_block
from responder.state.records import (
    Cause,
    DecisionKind,
    DecisionRecord,
    Freeze,
    TransitionKind,
    repeat_key,
)
from responder.state.repeats import Handle


class DynamoDBDecisions(ControlTable):
    """Decisions, their repeat counts, and the freeze."""

    def record_decision(
        self,
        kind: DecisionKind,
        reason: str,
        cause: Cause,
        *,
        region: str | None = None,
        to_region: str | None = None,
        transition_kind: TransitionKind | None = None,
        freeze: Freeze | None = None,
        announce: Announce | None = None,
    ) -> DecisionRecord:
        at = self._clock()
        new = DecisionRecord(
            id=f"d-{int(at * 1e6):016d}-{secrets.token_hex(3)}",
            at=at,
            kind=kind,
            reason=reason,
            cause=cause,
            region=region,
            to_region=to_region,
            transition_kind=transition_kind,
        )
        key = repeat_key(kind, reason, cause)
        if key is not None and freeze is None:
            counted = self._tally.count(key, at)
            if counted is not None:
                return counted
        # The freeze first: if the decision's own write then fails, the webhook answers 503
        # and Alertmanager's retry records it; a freeze is never lost.
        if freeze is not None:
            self._current()
            self._freeze(freeze)
        if key is not None:
            repeated = count_or_claim(self._call, self.table, key, new.id, self._clock)
            if repeated is not None:
                # A repeat blocks (or clears a block) as a new decision would.
                if blocks_phase(repeated):
                    self._current()
                    self._update(
                        "SET #last_blocked_at = :at", {":at": n(at)}, "attribute_exists(pk)"
                    )
                elif clears_block(repeated):
                    self._current()
                    self._update("REMOVE #last_blocked_at", condition="attribute_exists(pk)")
                self._tally.remember(key, repeated.id, repeated)
                return repeated
        notices = tuple(announced(announce, new))
        self._chained(lambda _: _decision_write(new, notices))
        if key is not None:
            self._tally.remember(key, new.id, new)
        return new

    def _write_repeats(
        self, key: str, decision_id: Handle, times: int, at: float
    ) -> DecisionRecord | None:
        """The tally's write: times more repeats of key's decision (None: pruned). Decision
        ids are unique, so the id alone names key's decision."""
        return add_repeats(self._call, self.table, str(decision_id), at, times)

    def _freeze(self, freeze: Freeze) -> None:
        freeze = replace(freeze, at=freeze.at or self._clock())
        write = Write(
            "SET #frozen_by = :by, #frozen_reason = :reason, #frozen_at = :at,"
            " #frozen_auto = :auto, #version = #version + :one",
            {
                ":by": s(freeze.by),
                ":reason": s(freeze.reason),
                ":at": n(freeze.at),
                ":auto": {"BOOL": freeze.automatic},
                ":one": n(1),
            },
            "attribute_exists(pk) AND attribute_not_exists(#frozen_by)",
            chain.frozen(freeze),
        )
        # A false condition means already frozen: the first freeze's who and why stay.
        with contextlib.suppress(ConditionFailed):
            self._chained(lambda _: write)


def _decision_write(record: DecisionRecord, notices: tuple[Notice, ...] = ()) -> Write:
    """A new decision as a chained write: its phase effect on the current item, its event,
    and the notices it queues."""
    update = ""
    values: dict[str, Any] = {}
    if blocks_phase(record):
        update, values = "SET #last_blocked_at = :at", {":at": n(record.at)}
    elif clears_block(record):
        update = "REMOVE #last_blocked_at"
    return Write(
        update,
        values,
        "attribute_exists(pk)",
        chain.decided(record),
        at=record.at,
        notices=notices,
    )
