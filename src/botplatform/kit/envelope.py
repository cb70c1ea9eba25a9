"""The response envelope of SPEC §7, for successes and errors alike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from botplatform.kit.errors import AppError

T = TypeVar("T")


def utc_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Envelope(BaseModel, Generic[T]):
    success: bool = True
    data: T
    message: str = "OK"
    timestamp: str = Field(default_factory=utc_timestamp)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorEnvelope(BaseModel):
    success: bool = False
    error: ErrorBody
    timestamp: str = Field(default_factory=utc_timestamp)


def ok(data: T, message: str = "OK") -> Envelope[T]:
    return Envelope[T](data=data, message=message)


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorEnvelope(error=ErrorBody(code=code, message=message, details=details))
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


def error_from(exc: AppError, headers: dict[str, str] | None = None) -> JSONResponse:
    merged = {**(exc.headers or {}), **(headers or {})}
    return error_response(exc.status_code, exc.code, exc.message, exc.details, merged or None)


#: Shown in the OpenAPI document for every route.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in {
        400: "Bad request",
        401: "Not authenticated",
        402: "The plan's quota is spent (`quota_exceeded`)",
        403: "Not allowed",
        404: "Not found",
        413: "Body too large",
        415: "Body is not JSON",
        422: "Invalid input",
    }.items()
}
