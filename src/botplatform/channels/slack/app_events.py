"""One request URL for the platform's own Slack app ("Add to Slack", SLACK_CLIENT_ID…).

A Slack app has one Events API URL and one interactivity URL, whatever the number of Slack
workspaces that install it; each installation is a channel of its own. So the app's requests
arrive at `POST /webhooks/slack-app`, are verified with SLACK_SIGNING_SECRET, and go on to the
channel of their Slack workspace (`team_id`), through the same intake as every webhook: stored,
deduplicated, acknowledged, processed by the worker. A channel connected with its own app and
secret keeps its own URL, `/webhooks/slack/{channel_id}`."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import select

from botplatform.channel import repository
from botplatform.channels.inbound import ACKNOWLEDGEMENTS
from botplatform.channels.slack.adapter import verify_signature
from botplatform.channels.slack.parse import challenge, team_of
from botplatform.db import Database
from botplatform.kit.envelope import Envelope
from botplatform.models import Channel
from botplatform.runtime import RuntimeDep

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


async def channel_of_team(db: Database, team_id: str) -> uuid.UUID | None:
    """The Slack channel installed through the platform's app in this Slack workspace. Read
    across tenants (the team is the only key a request carries), as a webhook's channel is."""
    async with db.unit_of_work(write=False, system=True) as session:
        channels = (
            await session.execute(select(Channel).where(Channel.provider == "slack"))
        ).scalars()
        found = [c.id for c in channels if c.config.get("team_id") == team_id and not c.app_secret]
    return found[0] if found else None


@router.post("/slack-app", response_model=Envelope[dict[str, bool]])
async def receive_app_request(request: Request, runtime: RuntimeDep) -> Response:
    """The platform Slack app's Events API and interactivity requests (see the module)."""
    body = await request.body()
    verify_signature(request.headers, body, runtime.settings.slack_signing_secret, time.time())
    answer = challenge(body)
    if answer is not None:
        return PlainTextResponse(answer)
    team = team_of(body)
    channel_id = await channel_of_team(runtime.db, team) if team else None
    if channel_id is None:
        raise repository.channel_not_found()
    channel = await runtime.intake.channel("slack", channel_id)
    decision = await runtime.ratelimiter.hit("webhooks", str(channel.workspace_id))
    decision.raise_if_denied()
    new = await runtime.intake.store(channel, body)
    return Response(ACKNOWLEDGEMENTS.body(new), media_type="application/json")
