"""What one process holds for its whole life: settings, database, key-value store, and the
services built on them. Created in the app's lifespan (or by the CLI), closed at shutdown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from botplatform.auth.passwords import PasswordService
from botplatform.auth.sessions import SessionStore
from botplatform.config import Settings
from botplatform.db import Database
from botplatform.kit.kv import KeyValueStore, create_store
from botplatform.kit.tokens import SessionTokenCodec


@dataclass
class Runtime:
    settings: Settings
    db: Database
    kv: KeyValueStore
    sessions: SessionStore
    passwords: PasswordService
    session_tokens: SessionTokenCodec

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        kv = create_store(settings.redis_url)
        return cls(
            settings=settings,
            db=Database(settings),
            kv=kv,
            sessions=SessionStore(kv, settings),
            passwords=PasswordService(settings),
            session_tokens=SessionTokenCodec(settings.signing_key),
        )

    async def close(self) -> None:
        await self.kv.close()
        await self.db.dispose()


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
