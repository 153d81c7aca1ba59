"""The rules of trigger subscriptions.

At most one *active* subscription per (tenant, subject, event name): a partial unique index
enforces it, so two concurrent creates cannot both win (the loser gets 409
``SUBSCRIPTION_EXISTS``). Subscriptions are deactivated, never deleted; deactivating one cancels
its pending debounced runs.
"""

from __future__ import annotations

import datetime
import re
import uuid

from app.db.triggers import TriggerSubscription
from app.domain.event_types.services import ensure_event_name
from app.domain.incoming_events.flow_control import (
    cancel_for_subscription,
    validate_flow_control,
)
from app.domain.scripts.services import ensure_script
from app.domain.subscriptions.repositories import ACTIVE_SUBSCRIPTIONS_PER_TENANT, SubscriptionRepository
from app.domain.subscriptions.schemas import SUBJECT_PATTERN, SubscriptionCreate
from app.lib.errors import Conflict, NotFound, ValidationFailed
from app.lib.pagination import PageParams
from app.lib.principals import Principal
from app.lib.service import Service
from app.lib.uow import driver_connection

__all__ = ["SubscriptionService", "validate_subject"]

_SUBJECT = re.compile(SUBJECT_PATTERN)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def validate_subject(subject: str) -> str:
    if not _SUBJECT.match(subject):
        raise ValidationFailed(
            "A subject is 1-128 letters, digits, '_', '.', ':' or '-', or '*'.",
            details=[{"field": "subject", "message": f"must match {SUBJECT_PATTERN}", "source": "path"}],
        )
    return subject


class SubscriptionService(Service[TriggerSubscription, SubscriptionRepository]):
    """One service for the external (admin) and internal (service) subscription routes."""

    repository_type = SubscriptionRepository

    async def list_subscriptions(
        self, tenant_id: str, subject: str, page: PageParams, *, active: bool | None = None
    ) -> list[TriggerSubscription]:
        validate_subject(subject)
        return await self.repository.newest_first(tenant_id, page, subject=subject, active=active)

    async def subscribe(
        self,
        tenant_id: str,
        actor: Principal,
        subject: str,
        data: SubscriptionCreate,
    ) -> TriggerSubscription:
        validate_subject(subject)
        validate_flow_control(data.flow_control, data.event_name)
        await ensure_event_name(self.session, tenant_id, data.event_name)
        await ensure_script(self.session, tenant_id, data.script_id)
        await ACTIVE_SUBSCRIPTIONS_PER_TENANT.ensure_room(
            self.session, tenant_id, self.settings.max_subscriptions_per_tenant
        )
        flow = data.flow_control
        throttle = flow.throttle if flow is not None else None
        # The partial unique index decides between concurrent creates: the second one waits for
        # the first to commit, then inserts nothing.
        row = await self.repository.insert_unless_active(
            _now(),
            tenant_id=tenant_id,
            subject=subject,
            event_name=data.event_name,
            script_id=data.script_id,
            created_by_id=actor.id,
            debounce_seconds=flow.debounce_seconds if flow is not None else None,
            max_delay_seconds=flow.max_delay_seconds if flow is not None else None,
            throttle_runs=throttle.runs if throttle is not None else None,
            throttle_per_seconds=throttle.per_seconds if throttle is not None else None,
        )
        if row is None:
            raise Conflict(
                f"An active subscription to {data.event_name!r} on subject {subject!r} exists already; "
                "delete it first.",
                code="SUBSCRIPTION_EXISTS",
            )
        await self.uow.commit()
        return row

    async def unsubscribe(self, tenant_id: str, subject: str, subscription_id: uuid.UUID) -> None:
        """Deactivate; deactivating an inactive subscription changes nothing."""
        validate_subject(subject)
        now = _now()
        if not await self.repository.deactivate(subscription_id, tenant_id, subject, now):
            if not await self.repository.exists_on_subject(subscription_id, tenant_id, subject):
                raise NotFound("No subscription with this id on this subject.")
        else:
            # Its pending debounced runs go with it, in the same transaction.
            await cancel_for_subscription(
                await driver_connection(self.session), tenant_id, subscription_id, now
            )
        await self.uow.commit()
