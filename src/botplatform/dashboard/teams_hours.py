"""Teams (the agents an automation rule can assign to, round-robin) and the workspace's
business hours (what the automation `business_hours` condition reads). Reading and changing
follow the API (`members:read`/`members:manage`; `workspace:read`/`workspace:update`);
every change is the API's own endpoint function."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import FormData

from botplatform.audit.dependencies import Auditor
from botplatform.authz.permissions import Permission
from botplatform.business_hours import endpoints as hours_api
from botplatform.business_hours.schemas import DAYS, BusinessHours
from botplatform.dashboard.web import NOTICES, Page, PageRoute, attempt, parse_form, ws_page
from botplatform.kit.errors import AppError
from botplatform.kit.pagination import PageParams
from botplatform.member import endpoints as member_api
from botplatform.team import endpoints as team_api
from botplatform.team.schemas import TeamCreate, TeamUpdate

router = APIRouter(prefix="/app/w/{ws}", route_class=PageRoute, include_in_schema=False)

TeamsPage = Annotated[Page, ws_page(Permission.MEMBERS_READ)]
TeamsManagePage = Annotated[Page, ws_page(Permission.MEMBERS_MANAGE)]
HoursPage = Annotated[Page, ws_page(Permission.WORKSPACE_READ)]
HoursManagePage = Annotated[Page, ws_page(Permission.WORKSPACE_UPDATE)]
ALL = PageParams(200, None)
DAY_NAMES = dict(
    zip(
        DAYS,
        ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        strict=True,
    )
)
_RANGE = re.compile(r"^\s*([^\s\-\u2013]+)\s*[\-\u2013]\s*([^\s\-\u2013]+)\s*$")

NOTICES.setdefault("team_created", "Team created.")
NOTICES.setdefault("team_deleted", "Team deleted; its conversations keep their assignee.")


async def _teams_context(page: Page) -> dict[str, Any]:
    teams = (await team_api.list_teams(page.granted, page.db, ALL)).data.items
    members = (await member_api.list_members(page.granted, page.db, ALL)).data.items
    return {
        "teams": teams,
        "members": members,
        "member_names": {m.user_id: m.name or m.email for m in members},
        "may_manage": page.can(Permission.MEMBERS_MANAGE),
    }


def _team_fields(form: FormData) -> dict[str, Any]:
    return {
        "name": str(form.get("name") or ""),
        "description": str(form.get("description") or ""),
        "member_ids": [str(v) for v in form.getlist("member_ids")],
    }


@router.get("/teams")
async def teams(page: TeamsPage) -> Response:
    return page.render("app/teams.html", **await _teams_context(page))


async def _teams_refusal(page: Page, status: int, message: str, **extra: Any) -> Response:
    context = await _teams_context(page)
    return page.render("app/teams.html", status, error=message, **extra, **context)


@router.post("/teams")
async def create_team(request: Request, page: TeamsManagePage) -> Response:
    form = await page.form()
    body, errors = parse_form(TeamCreate, _team_fields(form))
    if body is None:
        return await _teams_refusal(page, 422, "The team is not valid.", errors=errors)
    try:
        await attempt(
            page.db,
            lambda: team_api.create_team(page.granted, body, page.db, Auditor(request, page.db)),
        )
    except AppError as exc:
        return await _teams_refusal(page, exc.status_code, exc.message)
    return page.redirect(page.url("teams"), "team_created")


@router.post("/teams/{team_id}")
async def edit_team(request: Request, page: TeamsManagePage, team_id: uuid.UUID) -> Response:
    form = await page.form()
    body, errors = parse_form(TeamUpdate, _team_fields(form))
    if body is None:
        message = "The team is not valid: " + "; ".join(f"{k}: {v}" for k, v in errors.items())
        return await _teams_refusal(page, 422, message)
    try:
        await attempt(
            page.db,
            lambda: team_api.update_team(
                page.granted, team_id, body, page.db, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _teams_refusal(page, exc.status_code, exc.message)
    return page.redirect(page.url("teams"), "saved")


@router.post("/teams/{team_id}/delete")
async def delete_team(request: Request, page: TeamsManagePage, team_id: uuid.UUID) -> Response:
    await page.form()
    await team_api.delete_team(page.granted, team_id, page.db, Auditor(request, page.db))
    return page.redirect(page.url("teams"), "team_deleted")


# --- business hours ------------------------------------------------------------------------


def _ranges_text(hours: Any) -> dict[str, str]:
    return {day: ", ".join(f"{r.start}-{r.end}" for r in hours.days.get(day, [])) for day in DAYS}


def _parse_hours(form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    days: dict[str, list[dict[str, str]]] = {}
    for day in DAYS:
        text = str(form.get(day) or "").strip()[:500]
        ranges = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            found = _RANGE.match(part)
            if not found:
                errors[day] = f"{part!r} is not a range like 09:00-17:00"
                break
            ranges.append({"start": found.group(1), "end": found.group(2)})
        if ranges:
            days[day] = ranges
    return {"timezone": str(form.get("timezone") or "").strip(), "days": days}, errors


async def _hours_page(page: Page, status: int = 200, **extra: Any) -> Response:
    hours = (await hours_api.get_business_hours(page.granted)).data
    values = extra.pop("values", None) or {"timezone": hours.timezone, **_ranges_text(hours)}
    return page.render(
        "app/business_hours.html",
        status,
        hours=hours,
        values=values,
        days=DAY_NAMES,
        may_manage=page.can(Permission.WORKSPACE_UPDATE),
        **extra,
    )


@router.get("/business-hours")
async def business_hours(page: HoursPage) -> Response:
    return await _hours_page(page)


@router.post("/business-hours")
async def set_business_hours(request: Request, page: HoursManagePage) -> Response:
    form = await page.form()
    fields, errors = _parse_hours(form)
    typed = {"timezone": fields["timezone"], **{d: str(form.get(d) or "")[:500] for d in DAYS}}
    if errors:
        return await _hours_page(page, 422, errors=errors, values=typed)
    body, model_errors = parse_form(BusinessHours, fields)
    if body is None:
        message = "; ".join(model_errors.values())
        return await _hours_page(page, 422, errors=model_errors, error=message, values=typed)
    await hours_api.set_business_hours(page.granted, body, page.db, Auditor(request, page.db))
    return page.redirect(page.url("business-hours"), "saved")
