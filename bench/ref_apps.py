"""The reference servers measured next to the platform.

- `bare`: an ASGI app that answers 200 and nothing else: the ceiling of uvicorn plus the load
  generator on this machine.
- `pywa`: the webhook server a Python user would otherwise pick. pywa's FastAPI integration
  (`WhatsApp(server=FastAPI())`), signature validation on (`app_secret` set), with either a
  no-op text handler or an echo handler that sends the text (or a tapped button's title) back
  through pywa's own client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
from common import ACCESS_TOKEN, APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_OK_BODY = b'{"ok":true}'
_OK_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"11")]


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body (as any webhook receiver must) and answers 200."""
    if scope["type"] == "lifespan":
        while True:
            event = (await receive())["type"]
            if event == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _OK_HEADERS})
    await send({"type": "http.response.body", "body": _OK_BODY})


class RedirectTransport(httpx.AsyncBaseTransport):
    """Sends every request to `base_url` instead of the host pywa wrote.

    pywa 4.5 hard-codes `https://graph.facebook.com/v{version}` as its session's base URL (in
    `GraphAPI.__init__`, overwriting any base_url of a session you pass), and has no option
    for another host. Its documented extension point is the `session` argument (an httpx
    client of your own), so the client we pass carries this transport, which keeps pywa's
    path (`/v{version}/{phone_id}/messages`) and swaps only scheme, host and port.
    """

    def __init__(self, base_url: str) -> None:
        self._target = httpx.URL(base_url)
        # The same connection pool size the platform's own client uses.
        self._inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self._target.scheme, host=self._target.host, port=self._target.port
        )
        request.headers["Host"] = request.url.netloc.decode("ascii")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def pywa_app(mode: str, graph_url: str | None) -> Any:
    """pywa's FastAPI webhook server; `mode` is "noop" (for (a)) or "echo" (for (b), and
    for (c) at its low rate)."""
    from fastapi import FastAPI
    from pywa_async import WhatsApp, filters, types
    from pywa_async.utils import UserIdentifier

    server = FastAPI()
    session = None
    if graph_url is not None:
        # The same timeouts the platform's client uses (kit/http.py).
        timeout = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)
        session = httpx.AsyncClient(transport=RedirectTransport(graph_url), timeout=timeout)
    wa = WhatsApp(
        phone_id=PHONE_NUMBER_ID,
        token=ACCESS_TOKEN,
        session=session,
        server=server,
        webhook_endpoint="/webhook",
        verify_token=VERIFY_TOKEN,
        app_secret=APP_SECRET,
        validate_updates=True,
        # Reply to the phone number (wa_id), as the platform does; pywa's default prefers the
        # business-scoped id, which the fake Graph API (like Meta before usernames) rejects.
        user_identifier_priority=(
            UserIdentifier.WA_ID,
            UserIdentifier.BSUID,
            UserIdentifier.PARENT_BSUID,
        ),
    )

    if mode == "echo":

        @wa.on_message(filters.text)
        async def echo(_: WhatsApp, message: types.Message) -> None:
            await message.reply_text(message.text)

        # (c)'s customers also tap a reply button: echoed as its title, one reply each.
        @wa.on_callback_button()
        async def echo_button(_: WhatsApp, button: types.CallbackButton) -> None:
            await button.reply_text(button.title)

    else:

        @wa.on_message(filters.text)
        async def noop(_: WhatsApp, message: types.Message) -> None:
            return None

    return server
