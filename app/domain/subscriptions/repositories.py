"""All SQL of trigger subscriptions: a subject's subscriptions by page, the count the tenant's
quota is checked against, the insert that the partial unique index of active subscriptions
decides between concurrent creates, and deactivation. (Matching an event to its subscriptions is
the incoming events' SQL: ``app.domain.incoming_events.repositories``.)"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import Select, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from uuid_utils.compat import uuid7

from app.db.triggers import TriggerSubscription
from app.lib.pagination import Keyset, PageParams

__all__ = ["SubscriptionRepository"]


class SubscriptionRepository(SQLAlchemyAsyncRepository[TriggerSubscription]):
    model_type = TriggerSubscription

    async def page_of(
        self, tenant_id: str, subject: str, page: PageParams, *, active: bool | None = None
    ) -> list[TriggerSubscription]:
        """A page of the subject's subscriptions, newest first; only active or inactive ones when
        ``active`` says so."""
        conditions: list[Any] = [
            TriggerSubscription.tenant_id == tenant_id,
            TriggerSubscription.subject == subject,
        ]
        if active is not None:
            conditions.append(TriggerSubscription.active == active)
        return list(await self.get_many(Keyset(("created_at", "id"), page), *conditions))

    @staticmethod
    def active_count_statement(tenant_id: str) -> Select[tuple[int]]:
        """The count of the tenant's active subscriptions (for ``app.lib.quotas.ensure_quota``)."""
        return (
            select(func.count())
            .select_from(TriggerSubscription)
            .where(TriggerSubscription.tenant_id == tenant_id, TriggerSubscription.active)
        )

    async def insert_unless_active(self, **values: Any) -> TriggerSubscription | None:
        """The new active subscription; None when the (tenant, subject, event name) has an active
        one already. A concurrent create waits for the first to commit, then inserts nothing."""
        return (
            await self.session.scalars(
                pg_insert(TriggerSubscription)
                .values(id=uuid7(), active=True, **values)
                .on_conflict_do_nothing(
                    index_elements=["tenant_id", "subject", "event_name"],
                    index_where=TriggerSubscription.active,
                )
                .returning(TriggerSubscription)
            )
        ).one_or_none()

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
