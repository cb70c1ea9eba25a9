from __future__ import annotations

import hmac

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from botplatform.health.service import readiness
from botplatform.kit.client_ip import ip_allowed
from botplatform.kit.envelope import Envelope, ErrorEnvelope, error_response, ok
from botplatform.kit.errors import NotFound, Unauthorized
from botplatform.kit.middleware import request_ip
from botplatform.runtime import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/health/live")
async def live() -> Envelope[dict[str, str]]:
    """The process is up and serving."""
    return ok({"status": "alive"})


@router.get(
    "/health/ready",
    response_model=Envelope[dict[str, str]],
    responses={503: {"model": ErrorEnvelope, "description": "A dependency is down"}},
)
async def ready(runtime: RuntimeDep) -> Envelope[dict[str, str]] | JSONResponse:
    """The process can serve traffic: database, Redis and the job broker reachable. 503
    names what is down."""
    checks = await readiness(runtime)
    down = [name for name, state in checks.items() if state == "down"]
    if down:
        return error_response(
            503, "not_ready", f"Not ready: {', '.join(down)} unreachable.", {"checks": checks}
        )
    return ok(checks, "Ready")


@router.get("/metrics", response_class=Response, include_in_schema=False)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus metrics. When METRICS_ALLOW_IPS is set, only those networks may scrape
    (anyone else gets the same 404 as an unknown path); when METRICS_TOKEN is set, the scraper
    must send it as a bearer (compared in constant time)."""
    settings = runtime.settings
    if not ip_allowed(request_ip(request.scope), settings.metrics_allow_ips):
        raise NotFound()
    token = settings.metrics_token
    sent = request.headers.get("authorization", "")
    if token and not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        raise Unauthorized("This endpoint needs the metrics token.", code="not_authenticated")
    # Collecting reads queue depths from the broker: off the event loop.
    body = await anyio.to_thread.run_sync(generate_latest)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
