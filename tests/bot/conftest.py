"""Bot tests end right after the bot's last send, while the fake Graph API is still posting
that message's status webhooks into the app. Resetting the fake cancels those posts; one
cancelled inside the app's database transaction can leave SQLite's write lock taken. So the
bot tests let the status webhooks finish first."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from botplatform.sandbox import FakeGraph
from tests.conftest import eventually


@pytest.fixture
async def wa(wa: FakeGraph) -> AsyncIterator[FakeGraph]:
    yield wa
    await eventually(lambda: not wa._tasks, timeout=10)  # every status chain has finished
