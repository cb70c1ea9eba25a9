"""`audit: Audit` in an endpoint's signature gives it the one way to write its entry, with
who, from where and which request filled in."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request

from botplatform.audit import service
from botplatform.audit.service import Actor
from botplatform.db import DbSession
from botplatform.kit.middleware import request_ip
from botplatform.models import AuditLog, User


class Auditor:
    def __init__(self, request: Request, db: DbSession) -> None:
        self.request = request
        self.db = db

    def actor(self, user: User | None = None) -> Actor:
        principal = getattr(self.request.state, "principal", None)
        scope = self.request.scope
        common = {
            "ip": request_ip(scope),
            "user_agent": self.request.headers.get("user-agent"),
            "request_id": scope.get("state", {}).get("request_id"),
        }
        if principal is not None:
            return Actor(principal.actor_type, principal.actor_id, principal.actor_label, **common)
        if user is not None:  # logging in or registering: the user is the actor
            return Actor("user", str(user.id), user.email, **common)
        return Actor("anonymous", None, None, **common)

    async def log(
        self,
        action: str,
        *,
        workspace_id: uuid.UUID | None = None,
        target_type: str | None = None,
        target_id: uuid.UUID | str | None = None,
        changes: Mapping[str, Any] | None = None,
        user: User | None = None,
    ) -> AuditLog:
        return await service.record(
            self.db,
            self.actor(user),
            action,
            workspace_id=workspace_id,
            target_type=target_type,
            target_id=target_id,
            changes=changes,
        )


Audit = Annotated[Auditor, Depends()]
