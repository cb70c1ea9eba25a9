from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from botplatform.health.service import readiness
from botplatform.kit.envelope import Envelope, ErrorEnvelope, error_response, ok
from botplatform.runtime import RuntimeDep

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> Envelope[dict[str, str]]:
    """The process is up and serving."""
    return ok({"status": "alive"})


@router.get(
    "/ready",
    response_model=Envelope[dict[str, str]],
    responses={503: {"model": ErrorEnvelope, "description": "A dependency is down"}},
)
async def ready(runtime: RuntimeDep) -> Envelope[dict[str, str]] | JSONResponse:
    """The process can serve traffic: database and Redis reachable. 503 names what is down."""
    checks = await readiness(runtime)
    down = [name for name, state in checks.items() if state == "down"]
    if down:
        return error_response(
            503, "not_ready", f"Not ready: {', '.join(down)} unreachable.", {"checks": checks}
        )
    return ok(checks, "Ready")
