"""A workspace's usage against its plan (`billing:read`, as the API): each quota with what is
used this month and a meter. The numbers are the API's own answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from botplatform.authz.permissions import Permission
from botplatform.dashboard.web import Page, PageRoute, ws_page
from botplatform.usage import endpoints as usage_api

router = APIRouter(prefix="/app/w/{ws}", route_class=PageRoute, include_in_schema=False)

UsagePage = Annotated[Page, ws_page(Permission.BILLING_READ)]

#: How each quota reads to a person, in the order the API lists them.
QUOTA_LABELS = {
    "messages_per_month": "Messages this month (inbound + outbound)",
    "channels": "Channels",
    "members": "Members",
    "bots": "Bots",
    "broadcasts_per_month": "Broadcasts this month",
    "recipients_per_broadcast": "Recipients per broadcast",
    "recipients_per_month": "Broadcast recipients this month",
    "ai_tokens_per_month": "AI tokens this month",
    "api_requests_per_minute": "API requests per minute (API keys)",
    "retention_days": "Message retention ceiling (days)",
}


@router.get("/usage")
async def usage(page: UsagePage) -> Response:
    answer = (await usage_api.get_usage(page.granted, page.db)).data
    return page.render("app/usage.html", usage=answer, labels=QUOTA_LABELS)
