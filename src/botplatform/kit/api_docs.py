"""The interactive API docs page (/api/docs): Swagger UI served from our own static folder.

Swagger UI's bundle and style are installed by `botplatform assets` (pinned and digest-checked,
like htmx), and the page starts it from our own `api-docs.js`: no CDN, no inline script, so the
page keeps working offline and under a strict Content-Security-Policy."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from botplatform.dashboard.assets import DOCS_ASSETS, missing, static_version

DOCS_PATH = "/api/docs"
OPENAPI_PATH = "/api/openapi.json"
STATIC = "/app/static"

router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — API docs</title>
<link rel="stylesheet" href="{static}/vendor/swagger-ui.css?v={css}">
<link rel="icon" href="data:,">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{static}/vendor/swagger-ui-bundle.js?v={bundle}"></script>
<script src="{static}/api-docs.js?v={starter}"></script>
</body>
</html>
"""

_MISSING = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>API docs not installed</title></head>
<body>
<h1>API docs not installed</h1>
<p>Swagger UI's files are missing ({names}). Run <code>botplatform assets</code> on the
server, then reload. The machine-readable description is at
<a href="{openapi}">{openapi}</a>.</p>
</body>
</html>
"""


def docs_page(title: str) -> HTMLResponse:
    absent = missing(assets=DOCS_ASSETS)
    if absent:
        names = ", ".join(asset.target for asset in absent)
        body = _MISSING.format(names=escape(names), openapi=OPENAPI_PATH)
        return HTMLResponse(body, status_code=503)
    page = _PAGE.format(
        title=escape(title),
        static=STATIC,
        openapi=OPENAPI_PATH,
        css=static_version("vendor/swagger-ui.css"),
        bundle=static_version("vendor/swagger-ui-bundle.js"),
        starter=static_version("api-docs.js"),
    )
    return HTMLResponse(page)


@router.get(DOCS_PATH)
async def api_docs() -> HTMLResponse:
    return docs_page("WhatsApp Bot Platform")
