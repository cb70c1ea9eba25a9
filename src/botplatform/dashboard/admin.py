"""The superadmin panel: workspaces (and their plans), users, plans and their quotas, the job
queue and dead jobs (with retry). Plan changes are the API's own endpoint functions."""

from __future__ import annotations

import uuid
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response

from botplatform.admin import repository
from botplatform.audit.dependencies import Auditor
from botplatform.dashboard.usage import QUOTA_LABELS
from botplatform.dashboard.web import NOTICES, Page, PageRoute, attempt, parse_form, user_page
from botplatform.db import DbSession
from botplatform.kit.errors import AppError, Forbidden, NotFound
from botplatform.kit.scoping import enter_system
from botplatform.plans import endpoints as plans_api
from botplatform.plans import repository as plans
from botplatform.plans.defaults import QUOTA_FIELDS
from botplatform.plans.schemas import PlanUpdate, WorkspacePlanChange
from botplatform.worker import dead_letters

router = APIRouter(prefix="/admin", route_class=PageRoute, include_in_schema=False)


async def _admin_page(request: Request, db: DbSession) -> Page:
    page = await user_page(request, db)
    if not page.user.is_superadmin:
        raise Forbidden(
            "Only platform superadmins may open the admin panel.", code="not_superadmin"
        )
    await enter_system(db)  # the panel reads across tenants, by purpose
    return page


AdminPage = Annotated[Page, Depends(_admin_page)]

NOTICES.setdefault("plan_saved", "Plan saved.")
NOTICES.setdefault("plan_changed", "The workspace's plan is changed.")


@router.get("")
async def admin_home(page: AdminPage) -> Response:
    return page.redirect("/admin/workspaces")


async def _workspaces(page: AdminPage, status: int = 200, error: str | None = None) -> Response:
    return page.render(
        "admin/workspaces.html",
        status,
        rows=await repository.workspaces(page.db),
        plans=await plans.list_plans(page.db),
        error=error,
    )


@router.get("/workspaces")
async def workspaces(page: AdminPage) -> Response:
    return await _workspaces(page)


@router.post("/workspaces/{workspace_id}/plan")
async def change_plan(request: Request, page: AdminPage, workspace_id: uuid.UUID) -> Response:
    form = await page.form()
    body, _ = parse_form(WorkspacePlanChange, {"plan": str(form.get("plan") or "")})
    if body is None:
        return await _workspaces(page, 422, "Choose a plan.")
    audit = Auditor(request, page.db)
    try:
        await attempt(
            page.db,
            lambda: plans_api.change_workspace_plan(
                page.principal, workspace_id, body, page.db, audit
            ),
        )
    except AppError as exc:
        return await _workspaces(page, exc.status_code, exc.message)
    return page.redirect("/admin/workspaces", "plan_changed")


async def _plans(page: AdminPage, status: int = 200, **context: object) -> Response:
    return page.render(
        "admin/plans.html",
        status,
        plans=await plans.list_plans(page.db),
        fields=QUOTA_FIELDS,
        labels=QUOTA_LABELS,
        **context,
    )


@router.get("/plans")
async def plan_list(page: AdminPage) -> Response:
    return await _plans(page)


def _quota_fields(form: dict[str, str]) -> dict[str, str | None]:
    """Every quota of the form; an empty box means unlimited."""
    return {name: (form.get(name) or "").strip() or None for name in QUOTA_FIELDS}


@router.post("/plans/{name}")
async def save_plan(request: Request, page: AdminPage, name: str) -> Response:
    form = await page.form()
    fields = _quota_fields({k: str(v) for k, v in form.items()})
    body, errors = parse_form(PlanUpdate, fields)
    if body is None:
        return await _plans(page, 422, error="The plan is not valid.", errors=errors, editing=name)
    audit = Auditor(request, page.db)
    try:
        await attempt(
            page.db, lambda: plans_api.update_plan(page.principal, name, body, page.db, audit)
        )
    except AppError as exc:
        if exc.status_code == 404:
            raise
        return await _plans(page, exc.status_code, error=exc.message, editing=name)
    return page.redirect("/admin/plans", "plan_saved")


@router.get("/users")
async def users(page: AdminPage, q: Annotated[str, Query(max_length=100)] = "") -> Response:
    return page.render("admin/users.html", rows=await repository.users(page.db, q or None), q=q)


@router.get("/queue")
async def queue(page: AdminPage) -> Response:
    jobs = page.runtime.jobs
    depths = await anyio.to_thread.run_sync(jobs.depths) if jobs.is_redis else {}
    dead = await dead_letters.count_by_queue(page.db)
    queues = sorted(set(depths) | set(dead) | {"default"})
    return page.render(
        "admin/queue.html",
        queues=queues,
        depths=depths,
        dead=dead,
        live=jobs.is_redis,
        worker_running=jobs.worker_running,
        dead_jobs=await repository.dead_jobs(page.db),
    )


@router.post("/queue/dead/{dead_job_id}/retry")
async def retry_dead_job(request: Request, page: AdminPage, dead_job_id: uuid.UUID) -> Response:
    """Sends the dead job again (its retry count starts over), as `botplatform queue
    retry-dead --id` does."""
    await page.form()
    marked = await dead_letters.request_retry(page.db, dead_job_id)
    if not marked:
        raise NotFound("No dead job by that id is waiting for a retry.", code="dead_job_not_found")
    sent = await dead_letters.send_requested(page.runtime, page.db)
    await Auditor(request, page.db).log(
        "admin.dead_job_retry",
        target_type="dead_job",
        target_id=dead_job_id,
        changes={"job": marked[0].job, "sent": sent},
    )
    return page.redirect("/admin/queue", "retried")
