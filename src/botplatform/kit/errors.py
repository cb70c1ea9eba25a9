"""Errors are types: each carries its HTTP status and a stable code; one handler renders them."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status_code = 400
    code = "bad_request"
    message = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.details = details
        self.headers = headers
        super().__init__(self.message)


class BadRequest(AppError):
    pass


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"
    message = "Authentication is required."


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    message = "You do not have permission to do this."


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    message = "Not found."


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    message = "The request conflicts with the current state."


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"
    message = "Too many requests; slow down."


class Gone(AppError):
    status_code = 410
    code = "gone"
    message = "This is no longer available."


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"
    message = "The request body is too large."


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"
    message = "The request body must be JSON (Content-Type: application/json), or a file upload."


class Unprocessable(AppError):
    status_code = 422
    code = "validation_error"
    message = "The request is not valid."


class BadGateway(AppError):
    """A provider we called refused or failed; the caller may try again later."""

    status_code = 502
    code = "provider_error"
    message = "The provider refused the request."


class NotAvailable(AppError):
    """A feature that exists in the API's shape but is not implemented yet: said plainly."""

    status_code = 501
    code = "not_available"
    message = "This feature is not available yet."


class QuotaExceeded(AppError):
    """The workspace's plan allows no more of this (docs/decisions.md: why 402)."""

    status_code = 402
    code = "quota_exceeded"
    message = "This workspace's plan allows no more of this; upgrade the plan."
