"""The DynamoDB store's outbox: the notices waiting to be told, claimed and updated by a sender."""

from __future__ import annotations

from responder.state.dynamodb import items
from responder.state.dynamodb.chained_table import OUTBOX, ConditionFailed
from responder.state.dynamodb.items import n, s
from responder.state.dynamodb.table import ControlTable
from responder.state.outbox import Notice
from responder.state.store import LeaseLost


class DynamoDBOutbox(ControlTable):
    """The notices a write queued, one item each, claimed one at a time by a sender."""

    def notices(self, now: float, limit: int = 50) -> list[Notice]:
        pending = [items.notice(i) for i in self._query(OUTBOX) if i["pending"]["BOOL"]]
        return sorted(pending, key=lambda x: (x.at, x.id))[:limit]

    def claim_notice(self, notice_id: str, holder: str, until: float, now: float) -> Notice | None:
        try:
            answer = self._call(
                "update_item",
                TableName=self.table,
                Key={"pk": s(OUTBOX), "sk": s(notice_id)},
                UpdateExpression="SET #claimed_by = :holder, #claim_until = :until",
                ConditionExpression="#pending = :true AND #claim_until <= :now",
                ExpressionAttributeNames={
                    "#claimed_by": "claimed_by",
                    "#claim_until": "claim_until",
                    "#pending": "pending",
                },
                ExpressionAttributeValues={
                    ":holder": s(holder),
                    ":until": n(until),
                    ":now": n(now),
                    ":true": {"BOOL": True},
                },
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            return None
        notice = items.notice(answer["Attributes"])
        if not notice.due(now):  # listed as due, retried since: let it wait its own time
            self.update_notice(notice, holder)
            return None
        return notice

    def update_notice(self, notice: Notice, holder: str) -> None:
        try:
            self._call(
                "put_item",
                TableName=self.table,
                Item=items.notice_item(notice),
                ConditionExpression="#claimed_by = :holder",
                ExpressionAttributeNames={"#claimed_by": "claimed_by"},
                ExpressionAttributeValues={":holder": s(holder)},
            )
        except ConditionFailed:
            raise LeaseLost(f"notice {notice.id} is not claimed by {holder}") from None
