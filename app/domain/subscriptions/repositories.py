"""All SQL of trigger subscriptions: the quota of active subscriptions per tenant, the insert
that the partial unique index of active subscriptions decides between concurrent creates, and
deactivation. (A subject's subscriptions by page are the base repository's ``newest_first``;
matching an event to its subscriptions is the incoming events' SQL:
``app.domain.incoming_events.repositories``.)"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import exists, select, update

from app.db.triggers import TriggerSubscription
from app.lib.repository import Quota, Repository

__all__ = ["ACTIVE_SUBSCRIPTIONS_PER_TENANT", "SubscriptionRepository"]


# Inactive subscriptions do not count.
ACTIVE_SUBSCRIPTIONS_PER_TENANT = Quota(
    "subscriptions",
    "active trigger subscriptions per tenant",
    TriggerSubscription,
    lambda tenant_id: (TriggerSubscription.tenant_id == tenant_id, TriggerSubscription.active),
)


class SubscriptionRepository(Repository[TriggerSubscription]):
    model_type = TriggerSubscription

    async def insert_unless_active(self, now: datetime.datetime, **values: Any) -> TriggerSubscription | None:
        """The new active subscription; None when the (tenant, subject, event name) has an active
        one already. A concurrent create waits for the first to commit, then inserts nothing."""
        return await self.insert_returning(
            now,
            on_conflict={
                "index_elements": ["tenant_id", "subject", "event_name"],
                "index_where": TriggerSubscription.active,
            },
            active=True,
            **values,
        )

    async def deactivate(
        self, subscription_id: uuid.UUID, tenant_id: str, subject: str, now: datetime.datetime
    ) -> bool:
        """Deactivate the subject's subscription; False when there is no such active one."""
        changed = await self.session.scalar(
            update(TriggerSubscription)
            .where(*_mine(subscription_id, tenant_id, subject), TriggerSubscription.active)
            .values(active=False, deactivated_at=now, updated_at=now)
            .returning(TriggerSubscription.id)
        )
        return changed is not None

    async def exists_on_subject(self, subscription_id: uuid.UUID, tenant_id: str, subject: str) -> bool:
        """Whether the subject has this subscription, active or not."""
        return bool(
            await self.session.scalar(select(exists().where(*_mine(subscription_id, tenant_id, subject))))
        )


def _mine(subscription_id: uuid.UUID, tenant_id: str, subject: str) -> tuple[Any, ...]:
    return (
        TriggerSubscription.id == subscription_id,
        TriggerSubscription.tenant_id == tenant_id,
        TriggerSubscription.subject == subject,
    )
