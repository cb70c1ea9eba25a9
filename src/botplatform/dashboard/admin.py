"""The superadmin panel: workspaces, users, the job queue and dead jobs (with retry)."""

from __future__ import annotations

import uuid
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response

from botplatform.admin import repository
from botplatform.audit.dependencies import Auditor
from botplatform.dashboard.web import Page, PageRoute, user_page
from botplatform.db import DbSession
from botplatform.kit.errors import Forbidden, NotFound
from botplatform.kit.scoping import enter_system
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


@router.get("")
async def admin_home(page: AdminPage) -> Response:
    return page.redirect("/admin/workspaces")


@router.get("/workspaces")
async def workspaces(page: AdminPage) -> Response:
    return page.render("admin/workspaces.html", rows=await repository.workspaces(page.db))


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
