"""One place turns every failure into the envelope; nothing escapes as a bare 500 page."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from botplatform.kit.envelope import error_from, error_response
from botplatform.kit.errors import AppError
from botplatform.kit.logging import get_logger

log = get_logger("botplatform.errors")

_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _database_unavailable)  # type: ignore[arg-type]
    # asyncpg's "connection is closed" (the server restarted under a pooled connection).
    app.add_exception_handler(InterfaceError, _database_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(DBAPIError, _database_error)  # type: ignore[arg-type]
    app.add_exception_handler(RedisConnectionError, _redis_unavailable)
    app.add_exception_handler(RedisTimeoutError, _redis_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)


async def _app_error(request: Request, exc: AppError) -> JSONResponse:
    if exc.status_code >= 500:
        log.error("request_failed", code=exc.code, error=exc.message)
    return error_from(exc)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    broken = next((error for error in errors if error.get("type") == "json_invalid"), None)
    if broken is not None:
        message, position = _json_position(broken, exc.body)
        detail = {"field": "body", "message": message, "type": "json_invalid", **position}
        return error_response(400, "malformed_json", message, [detail])
    details = _describe(errors)
    return error_response(422, "validation_error", _summary(details), details)


def _json_position(error: Any, document: Any) -> tuple[str, dict[str, int]]:
    """ "Malformed JSON at line 3, column 5: Expecting ',' delimiter", from the character
    offset FastAPI reports (its `loc` is ("body", offset)) in the text it tried to read."""
    reason = str((error.get("ctx") or {}).get("error") or "not valid JSON")
    loc = error.get("loc") or ()
    offset = loc[-1] if loc and isinstance(loc[-1], int) else None
    if offset is None or not isinstance(document, str | bytes):
        return f"Malformed JSON: {reason}.", {}
    text = document.decode("utf-8", "replace") if isinstance(document, bytes) else document
    line = text.count("\n", 0, offset) + 1
    column = offset - text.rfind("\n", 0, offset)
    where = {"line": line, "column": column}
    return f"Malformed JSON at line {line}, column {column}: {reason}.", where


#: A tagged union's tag in an error's location (tags start with it, e.g. channel.schemas): not
#: a field.
UNION_TAG_PREFIX = "~"


def _field(loc: Any) -> str:
    parts = (str(part) for part in loc)
    return ".".join(part for part in parts if not part.startswith(UNION_TAG_PREFIX))


def plain_message(error: Any) -> str:
    """Pydantic's message in plain words: a validator's own sentence without "Value error, ",
    no regular expression shown to a person."""
    kind, message = error.get("type", ""), str(error.get("msg", ""))
    if kind == "value_error" and message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    if kind == "assertion_error" and message.startswith("Assertion failed, "):
        return message.removeprefix("Assertion failed, ")
    if kind == "missing":
        return "Required: this field is missing."
    if kind == "string_pattern_mismatch":
        return "Has the wrong format (see the API docs for this field)."
    ctx = error.get("ctx") or {}
    if kind == "union_tag_invalid":
        return (
            f"Unknown {ctx.get('discriminator', 'type')} {ctx.get('tag')!r}; "
            f"expected one of: {ctx.get('expected_tags')}."
        ).replace("'type'", "`type`")
    return message


def _describe(errors: Any) -> list[dict[str, Any]]:
    # Only plain fields: pydantic's ctx may hold exception objects that are not JSON.
    return [
        {
            "field": _field(error.get("loc", ())),
            "message": plain_message(error),
            "type": error.get("type", ""),
        }
        for error in errors
    ]


_PLACES = {"query": "query parameter", "path": "path parameter", "header": "header"}


def _where(field: str) -> str:
    """`body.to` → "to", `query.event` → "query parameter event", `body` → "the request body"."""
    place, _, name = field.partition(".")
    if place == "body":
        return name or "the request body"
    return f"{_PLACES[place]} {name}" if place in _PLACES and name else field


def _summary(details: list[dict[str, Any]]) -> str:
    """The envelope's message: the first problem with the field it is about."""
    if not details:
        return "The request is not valid."
    first = details[0]
    where = _where(first["field"])
    more = len(details) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''}: see details)" if more else ""
    return f"Invalid {where}: {first['message']}{tail}"


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    code = _CODES_BY_STATUS.get(status, "error")
    if status == 404 and exc.detail == "Not Found":
        message = f"No route {request.method} {request.url.path}."
    elif status == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}."
    else:
        message = str(exc.detail) if exc.detail else HTTPStatus(status).phrase
    return error_response(status, code, message, headers=getattr(exc, "headers", None))


async def _database_unavailable(request: Request, exc: DBAPIError) -> JSONResponse:
    # Lost connections, failovers, SQLite's write lock held past the busy timeout: the
    # request did nothing (its transaction rolled back) and can simply be tried again.
    log.warning("database_unavailable", path=request.url.path, error=str(exc.orig)[:200])
    return error_response(
        503,
        "database_unavailable",
        "The database is busy or unreachable; try again.",
        headers={"Retry-After": "1"},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path)
    return error_response(500, "internal_error", "An unexpected error occurred.")


async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
    """Any other driver error: 503 when the connection was lost (a retry will do), else the
    bug it is."""
    if _connection_lost(exc):
        return await _database_unavailable(request, exc)
    return await _unexpected_error(request, exc)


async def _redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Redis restarting or failing over: nothing was done that a retry would repeat.
    log.warning("redis_unavailable", path=request.url.path, error=str(exc)[:200])
    return error_response(
        503,
        "service_unavailable",
        "A backing service is unreachable; try again.",
        headers={"Retry-After": "1"},
    )


# SQLSTATE classes of a lost or refused connection: 08 (connection exception), 57P (the server
# shutting down or starting: admin_shutdown, crash_shutdown, cannot_connect_now).
_CONNECTION_STATES = ("08", "57P")


def _connection_lost(exc: DBAPIError) -> bool:
    """A statement failed because the connection went away (a restart, PgBouncer's
    server_login_retry), not because of what it asked."""
    if exc.connection_invalidated:
        return True
    error: BaseException | None = exc.orig
    while error is not None:
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str) and state.startswith(_CONNECTION_STATES):
            return True
        error = error.__cause__
    return False
