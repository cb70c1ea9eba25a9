"""Server-side sessions in the key-value store (Redis, or in-process when embedded).

The client holds a random session id (inside a signed JWT); the store keeps only its hash,
so a leaked store dump does not yield usable tokens. Sessions slide: each use pushes the idle
expiry forward, never past the absolute lifetime.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from botplatform.config import Settings
from botplatform.kit.clock import utcnow
from botplatform.kit.kv import KeyValueStore
from botplatform.kit.tokens import random_token, sha256_hex


@dataclass(frozen=True)
class SessionData:
    session_hash: str
    user_id: uuid.UUID
    created_at: datetime
    expires_at: datetime  # absolute end of life


class SessionStore:
    def __init__(self, kv: KeyValueStore, settings: Settings) -> None:
        self._kv = kv
        self._idle = settings.session_idle_seconds
        self._lifetime = settings.session_max_seconds

    @staticmethod
    def _key(session_hash: str) -> str:
        return f"session:{session_hash}"

    @staticmethod
    def _user_key(user_id: uuid.UUID) -> str:
        return f"user_sessions:{user_id}"

    async def create(self, user_id: uuid.UUID) -> tuple[str, SessionData]:
        session_id = random_token()
        now = utcnow()
        data = SessionData(
            sha256_hex(session_id), user_id, now, now + timedelta(seconds=self._lifetime)
        )
        record = {
            "user_id": str(user_id),
            "created_at": now.isoformat(),
            "expires_at": data.expires_at.isoformat(),
        }
        await self._kv.put(self._key(data.session_hash), json.dumps(record), self._idle)
        await self._kv.set_add(self._user_key(user_id), data.session_hash)
        return session_id, data

    async def get(self, session_id: str) -> SessionData | None:
        """The live session for this id, its idle expiry pushed forward; None if gone."""
        session_hash = sha256_hex(session_id)
        raw = await self._kv.get(self._key(session_hash))
        if raw is None:
            return None
        record = json.loads(raw)
        data = SessionData(
            session_hash,
            uuid.UUID(record["user_id"]),
            datetime.fromisoformat(record["created_at"]),
            datetime.fromisoformat(record["expires_at"]),
        )
        remaining = (data.expires_at - utcnow()).total_seconds()
        if remaining <= 0:
            await self.revoke_hash(data.user_id, session_hash)
            return None
        await self._kv.expire(self._key(session_hash), min(self._idle, math.ceil(remaining)))
        return data

    async def revoke_hash(self, user_id: uuid.UUID, session_hash: str) -> None:
        await self._kv.delete(self._key(session_hash))
        await self._kv.set_remove(self._user_key(user_id), session_hash)

    async def revoke_all(self, user_id: uuid.UUID) -> int:
        """Ends every session of the user ("log out everywhere"); returns how many were live."""
        hashes = await self._kv.set_members(self._user_key(user_id))
        removed = await self._kv.delete(*(self._key(h) for h in hashes)) if hashes else 0
        await self._kv.delete(self._user_key(user_id))
        return removed
