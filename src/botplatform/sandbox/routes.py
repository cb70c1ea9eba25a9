"""The HTTP face of the fake Graph API: Meta's endpoints, plus ``/_sandbox/`` controls."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from botplatform.sandbox import meta, payloads
from botplatform.sandbox.validation import MEDIA_LIMITS, InvalidParameter, validate

if TYPE_CHECKING:
    from botplatform.sandbox.whatsapp import FakeGraph, Number

VERSION = re.compile(r"v\d+\.\d+")
NUMERIC_ID = re.compile(r"\d{3,30}")
WA_ID = re.compile(r"\d{5,20}")
UNKNOWN_OBJECT = (
    "Unsupported {method} request. Object with ID '{id}' does not exist, cannot be loaded due "
    "to missing permissions, or does not support this operation. Please read the Graph API "
    "documentation at https://developers.facebook.com/docs/graph-api"
)


def _graph(request: Request) -> FakeGraph:
    return cast("FakeGraph", request.app.state.graph)


def _error(
    status: int, code: int, message: str, *, details: str | None = None, subcode: int | None = None
) -> JSONResponse:
    body = payloads.graph_error(code, message, details=details, subcode=subcode)
    headers = {"x-fb-trace-id": body["error"]["fbtrace_id"]}
    if status == 401:
        headers["www-authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{message}"'
    return JSONResponse(body, status_code=status, headers=headers)


def _invalid(details: str, code: int = 100) -> JSONResponse:
    title = payloads.ERROR_TITLES.get(code, "Invalid parameter")
    return _error(400, code, f"(#{code}) {title}", details=details)


def _unknown_object(method: str, object_id: str, status: int = 400) -> JSONResponse:
    message = UNKNOWN_OBJECT.format(method=method, id=object_id)
    return _error(status, 100, message, subcode=33)


def _bearer_error(request: Request, graph: FakeGraph) -> JSONResponse | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(401, 190, "An access token is required to request this resource.")
    if token.strip() not in graph.access_tokens:
        return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
    return None


async def _api_call(
    request: Request, *, json_body: Any = None, form: dict[str, Any] | None = None
) -> JSONResponse | None:
    """Record the call, wait the injected latency, then check the path version and the
    bearer token. Returns the error to answer with, if any."""
    graph = _graph(request)
    graph.received.append(
        {
            "method": request.method,
            "path": request.url.path,
            "headers": {key.lower(): value for key, value in request.headers.items()},
            "json": json_body,
            "form": form,
            "time": time.time(),
        }
    )
    if graph.latency > 0:
        await asyncio.sleep(graph.latency)
    version = request.path_params.get("version")
    if version is not None and not VERSION.fullmatch(version):
        return _error(400, 2500, f"Unknown path components: {request.url.path}")
    return _bearer_error(request, graph)


# -- messages --------------------------------------------------------------------------------


async def send_message(request: Request) -> Response:
    graph = _graph(request)
    try:
        body: Any = json.loads(await request.body())
    except ValueError:
        body = None  # recorded as such; validation then answers like Meta does
    if (error := await _api_call(request, json_body=body)) is not None:
        return error
    number = graph.number(request.path_params["phone_number_id"])
    if number is None:
        return _unknown_object("post", request.path_params["phone_number_id"])
    try:
        action, kind = validate(body)
    except InvalidParameter as exc:
        return _invalid(exc.details)
    if action == "read":
        graph.marked_read.append(body["message_id"])
        return JSONResponse({"success": True})
    # An injected failure stands in for acceptance: a broken body is still a 400 first.
    if (failure := graph.take_failure()) is not None:
        message = f"(#{failure.code}) {failure.title}"
        return _error(failure.status, failure.code, message, details=failure.title)
    wa_id, wamid = graph.accept(body, kind, number)
    return JSONResponse(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": wa_id}],
            "messages": [{"id": wamid}],
        }
    )


# -- Messenger and Instagram: the Send API ---------------------------------------------------


async def send_page_message(request: Request) -> Response:
    graph = _graph(request)
    try:
        body: Any = json.loads(await request.body())
    except ValueError:
        body = None
    if (error := await _api_call(request, json_body=body)) is not None:
        return error
    try:
        psid, action = meta.check_send(body)
    except meta.Invalid as exc:
        return _invalid(str(exc))
    page = graph.page_of(psid)
    if page is None:  # a Page-scoped id no customer of ours has
        return _error(400, 100, "(#100) No matching user found", subcode=2018001)
    if action != "message":
        graph.page_actions.append({"to": psid, "action": action, "body": body})
        return JSONResponse({"recipient_id": psid})
    if (failure := graph.take_failure()) is not None:
        return _error(failure.status, failure.code, f"(#{failure.code}) {failure.title}")
    mid = graph.accept_page_send(page, psid, body)
    return JSONResponse({"recipient_id": psid, "message_id": mid})


async def upload_page_attachment(request: Request) -> Response:
    """The Attachment Upload API: `message` (JSON) and `filedata` → a reusable id."""
    graph = _graph(request)
    try:
        async with request.form() as form:
            if (error := await _api_call(request, form=_form_summary(form))) is not None:
                return error
            upload = form.get("filedata")
            if not isinstance(upload, UploadFile):
                return _invalid("Param filedata is required and must be a file.")
            data = await upload.read()
            mime = upload.content_type or "application/octet-stream"
    except HTTPException as exc:
        return _invalid(f"Could not parse the upload: {exc.detail}")
    return JSONResponse({"attachment_id": graph.add_media(data, mime)})


def _profile(graph: FakeGraph, psid: str, fields: str) -> dict[str, Any] | None:
    page = graph.page_of(psid)
    if page is None:
        return None
    graph.profile_reads.append(psid)
    name = page.customers[psid]
    first, _, last = name.partition(" ")
    known = {
        "id": psid,
        "name": name,
        "first_name": first,
        "last_name": last,
        "profile_pic": f"https://sandbox.invalid/profile/{psid}.jpg",
    }
    wanted = [f for f in fields.split(",") if f] or ["first_name", "last_name"]
    return {"id": psid, **{f: known[f] for f in wanted if f in known}}


# -- media -----------------------------------------------------------------------------------


def _form_summary(form: FormData) -> dict[str, Any]:
    """The form as recorded in ``received``: fields as-is, files described, not copied."""
    summary: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            summary[key] = {
                "filename": value.filename,
                "content_type": value.content_type,
                "size": value.size,
            }
        else:
            summary[key] = value
    return summary


def _upload_problem(form: FormData) -> JSONResponse | None:
    if form.get("messaging_product") != "whatsapp":
        return _invalid("Param messaging_product is required and must be 'whatsapp'.")
    if not isinstance(form.get("file"), UploadFile):
        return _invalid("Param file is required and must be a file.")
    mime = form.get("type")
    if not isinstance(mime, str) or mime not in MEDIA_LIMITS:
        types = ", ".join(MEDIA_LIMITS)
        return _invalid(f"Param file must be a file with one of the following types: {types}.")
    return None


async def upload_media(request: Request) -> Response:
    graph = _graph(request)
    try:
        async with request.form() as form:
            if (error := await _api_call(request, form=_form_summary(form))) is not None:
                return error
            if graph.number(request.path_params["phone_number_id"]) is None:
                return _unknown_object("post", request.path_params["phone_number_id"])
            if (problem := _upload_problem(form)) is not None:
                return problem
            mime = str(form["type"])
            data = await cast(UploadFile, form["file"]).read()
    except HTTPException as exc:  # a malformed multipart body
        return _invalid(f"Could not parse the upload: {exc.detail}")
    if len(data) > MEDIA_LIMITS[mime]:
        return _invalid(f"File too big for {mime}: max {MEDIA_LIMITS[mime]} bytes.", 131053)
    return JSONResponse({"id": graph.add_media(data, mime)})


async def media_object(request: Request) -> Response:
    """``GET`` a media id's metadata (the download URL), or ``DELETE`` the media."""
    graph = _graph(request)
    if (error := await _api_call(request)) is not None:
        return error
    media_id = request.path_params["media_id"]
    media = graph.media.get(media_id)
    if media is None and request.method == "GET":
        profile = _profile(graph, media_id, request.query_params.get("fields", ""))
        if profile is not None:  # a customer's Page- or Instagram-scoped id
            return JSONResponse(profile)
    if media is None:
        return _unknown_object(request.method.lower(), media_id, status=404)
    if request.method == "DELETE":
        del graph.media[media_id]
        return JSONResponse({"success": True})
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "messaging_product": "whatsapp",
            "url": f"{base}/media-download/{media_id}",
            "mime_type": media.mime_type,
            "sha256": media.sha256,
            "file_size": len(media.data),
            "id": media_id,
        }
    )


async def download_media(request: Request) -> Response:
    """Stands in for Meta's lookaside URL, which also wants the bearer token."""
    if (error := await _api_call(request)) is not None:
        return error
    media_id = request.path_params["media_id"]
    media = _graph(request).media.get(media_id)
    if media is None:
        return _unknown_object("get", media_id, status=404)
    return Response(media.data, media_type=media.mime_type)


async def cdn_media(request: Request) -> Response:
    """Stands in for Meta's CDN links in Messenger/Instagram attachments: signed URLs that
    need no token."""
    media = _graph(request).media.get(request.path_params["media_id"])
    if media is None:
        return Response(status_code=404)
    return Response(media.data, media_type=media.mime_type)


# -- /_sandbox/ controls ---------------------------------------------------------------------


def _control_error(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def _control_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def sandbox_sent(request: Request) -> Response:
    return JSONResponse({"sent": _graph(request).sent})


async def sandbox_fail(request: Request) -> Response:
    body = await _control_body(request)
    status, code, times = body.get("status"), body.get("code"), body.get("times", 1)
    if not all(isinstance(value, int) for value in (status, code, times)):
        return _control_error("status, code and times must be integers")
    try:
        _graph(request).fail_next(
            cast(int, status), cast(int, code), title=str(body.get("title", "")), times=times
        )
    except ValueError as exc:
        return _control_error(str(exc))
    return JSONResponse({"ok": True})


async def sandbox_reset(request: Request) -> Response:
    _graph(request).reset()
    return JSONResponse({"ok": True})


async def sandbox_inbound(request: Request) -> Response:
    """Be a customer: ``{"from": "15551234567", "text": "hello", "name"?, "phone_number_id"?}``
    writes to the given business number (the latest connected one by default)."""
    graph = _graph(request)
    body = await _control_body(request)
    raw_from, text, name = body.get("from"), body.get("text"), body.get("name")
    phone_number_id = body.get("phone_number_id")
    # Like Meta's wa_id: the number's digits, whatever "+", spaces or dashes it was typed with.
    wa_id = "".join(c for c in raw_from if c.isdigit()) if isinstance(raw_from, str) else ""
    if not WA_ID.fullmatch(wa_id) or not isinstance(text, str):
        return _control_error('"from" (the customer\'s number, digits) and "text" are required')
    if name is not None and not isinstance(name, str):
        return _control_error('"name" must be a string')
    if phone_number_id is not None and not isinstance(phone_number_id, str):
        return _control_error('"phone_number_id" must be a string')
    number = graph.number(phone_number_id)
    if number is None:
        known = ", ".join([graph.phone_number_id, *graph.numbers]) or "none"
        return _control_error(f"no phone number {phone_number_id} here; known: {known}")
    wamid = await graph.post_inbound_text(
        wa_id, text, name or None, phone_number_id=number.phone_number_id
    )
    return JSONResponse(
        {
            "id": wamid,
            "from": wa_id,
            "name": graph.customer_name(wa_id),
            "phone_number_id": number.phone_number_id,
            "webhook_url": number.webhook_url,
            "delivery": graph.last_delivery,
        }
    )


def _number_json(graph: FakeGraph, number: Number) -> dict[str, Any]:
    return {
        "phone_number_id": number.phone_number_id,
        "display_phone_number": number.display_phone_number,
        "business_account_id": number.waba_id,
        "webhook_url": number.webhook_url,
    }


async def sandbox_channels(request: Request) -> Response:
    """The numbers the fake answers for: the default one and each connected one."""
    graph = _graph(request)
    numbers = [graph.default_number, *graph.numbers.values()]
    unique = {number.phone_number_id: number for number in numbers}
    return JSONResponse({"numbers": [_number_json(graph, n) for n in unique.values()]})


async def sandbox_connect(request: Request) -> Response:
    """Tell the fake about a channel: ``{"phone_number_id", "webhook_url",
    "display_phone_number"?, "business_account_id"?}``. Answers the credentials the channel
    must use (the fake's own token and app secret)."""
    graph = _graph(request)
    body = await _control_body(request)
    phone_number_id, webhook_url = body.get("phone_number_id"), body.get("webhook_url")
    display, waba_id = body.get("display_phone_number"), body.get("business_account_id")
    if not isinstance(phone_number_id, str) or not NUMERIC_ID.fullmatch(phone_number_id):
        return _control_error('"phone_number_id" is required: digits, as Meta gives it')
    if not isinstance(webhook_url, str) or not webhook_url.startswith(("http://", "https://")):
        return _control_error('"webhook_url" is required: the channel\'s http(s) webhook URL')
    if display is not None and not isinstance(display, str):
        return _control_error('"display_phone_number" must be a string')
    if waba_id is not None and not (isinstance(waba_id, str) and NUMERIC_ID.fullmatch(waba_id)):
        return _control_error('"business_account_id" must be digits')
    number = graph.connect(
        phone_number_id,
        webhook_url,
        display_phone_number="".join(c for c in display if c.isdigit()) if display else None,
        waba_id=waba_id,
    )
    return JSONResponse(
        {
            **_number_json(graph, number),
            "access_token": sorted(graph.access_tokens)[0],
            "app_secret": graph.app_secret,
        }
    )


async def sandbox_status(request: Request) -> Response:
    """Post a status for a sent message, e.g. ``{"id": wamid, "status": "failed"}``."""
    graph = _graph(request)
    body = await _control_body(request)
    wamid, status = body.get("id"), body.get("status")
    sent = next((item for item in graph.sent if item["wamid"] == wamid), None)
    recipient = body.get("recipient") or (sent["to"] if sent else None)
    if not isinstance(wamid, str) or not isinstance(status, str) or not recipient:
        return _control_error('"id" and "status" are required; "recipient" when id is unknown')
    errors = body.get("errors")
    if status == "failed" and not errors:
        errors = [payloads.failure_error(131026, payloads.ERROR_TITLES[131026])]
    await graph.post_status(wamid, status, str(recipient), errors)
    return JSONResponse({"ok": True})


async def sandbox_page_connect(request: Request) -> Response:
    """Tell the fake about a Messenger or Instagram channel: ``{"page_id", "webhook_url",
    "provider"?}``; answers the credentials the channel must use."""
    graph = _graph(request)
    body = await _control_body(request)
    page_id, webhook_url = body.get("page_id"), body.get("webhook_url")
    provider = body.get("provider", "messenger")
    if not isinstance(page_id, str) or not NUMERIC_ID.fullmatch(page_id):
        return _control_error('"page_id" is required: digits, as Meta gives it')
    if not isinstance(webhook_url, str) or not webhook_url.startswith(("http://", "https://")):
        return _control_error('"webhook_url" is required: the channel\'s http(s) webhook URL')
    if provider not in ("messenger", "instagram"):
        return _control_error('"provider" must be messenger or instagram')
    graph.connect_page(page_id, webhook_url, provider)
    return JSONResponse(
        {
            "page_id": page_id,
            "provider": provider,
            "webhook_url": webhook_url,
            "access_token": sorted(graph.access_tokens)[0],
            "app_secret": graph.app_secret,
        }
    )


async def sandbox_page_inbound(request: Request) -> Response:
    """Be a customer on Messenger or Instagram: ``{"page_id", "text", "from"?, "name"?}``
    (a new customer id when "from" is left out)."""
    graph = _graph(request)
    body = await _control_body(request)
    page = graph.pages.get(str(body.get("page_id")))
    text, psid, name = body.get("text"), body.get("from"), body.get("name")
    if page is None:
        known = ", ".join(graph.pages) or "none"
        return _control_error(f'"page_id" must be a connected Page; known: {known}')
    if not isinstance(text, str) or not text:
        return _control_error('"text" is required')
    if psid is not None and not (isinstance(psid, str) and NUMERIC_ID.fullmatch(psid)):
        return _control_error('"from" must be digits (a Page-scoped id)')
    psid, mid = await graph.post_page_inbound(
        page, text, psid, name if isinstance(name, str) else None
    )
    return JSONResponse({"from": psid, "mid": mid, "delivery": graph.last_delivery})


async def sandbox_page_sent(request: Request) -> Response:
    return JSONResponse({"sent": _graph(request).page_sent})


async def _not_found(request: Request, exc: Exception) -> Response:
    # Graph answers an unknown path with a 400 and this error, not a bare 404.
    return _error(400, 2500, f"Unknown path components: {request.url.path}")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await cast("FakeGraph", app.state.graph).aclose()


def routes() -> list[Route]:
    # Order matters: "/_sandbox/sent" and "/media-download/x" also fit "/{version}/{media_id}".
    return [
        Route("/_sandbox/sent", sandbox_sent, methods=["GET"]),
        Route("/_sandbox/fail", sandbox_fail, methods=["POST"]),
        Route("/_sandbox/reset", sandbox_reset, methods=["POST"]),
        Route("/_sandbox/inbound", sandbox_inbound, methods=["POST"]),
        Route("/_sandbox/channels", sandbox_channels, methods=["GET"]),
        Route("/_sandbox/channels", sandbox_connect, methods=["POST"]),
        Route("/_sandbox/status", sandbox_status, methods=["POST"]),
        Route("/_sandbox/meta/connect", sandbox_page_connect, methods=["POST"]),
        Route("/_sandbox/meta/inbound", sandbox_page_inbound, methods=["POST"]),
        Route("/_sandbox/meta/sent", sandbox_page_sent, methods=["GET"]),
        Route("/media-download/{media_id}", download_media, methods=["GET"]),
        Route("/cdn/{media_id}", cdn_media, methods=["GET"]),
        Route("/{version}/me/messages", send_page_message, methods=["POST"]),
        Route("/{version}/me/message_attachments", upload_page_attachment, methods=["POST"]),
        Route("/{version}/{phone_number_id}/messages", send_message, methods=["POST"]),
        Route("/{version}/{phone_number_id}/media", upload_media, methods=["POST"]),
        Route("/{version}/{media_id}", media_object, methods=["GET", "DELETE"]),
    ]


async def _not_allowed(request: Request, exc: Exception) -> Response:
    object_id = request.url.path.strip("/").split("/", 1)[-1]
    return _unknown_object(request.method.lower(), object_id)


EXCEPTION_HANDLERS = {404: _not_found, 405: _not_allowed}
