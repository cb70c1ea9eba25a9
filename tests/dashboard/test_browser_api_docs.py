"""The interactive API docs in a real browser, offline: Swagger UI comes from our own static
folder (installed by `botplatform assets`), starts under the strict docs policy with no inline
script, and lists the API's operations. Any request off this host is refused and recorded."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from playwright.async_api import Route, expect

from tests.dashboard.conftest import SCREENSHOTS, Tab


async def test_api_docs_render_offline_from_our_own_files(tab: Tab) -> None:
    page = tab.page
    local = urlsplit(tab.base).netloc
    elsewhere: list[str] = []

    async def only_this_host(route: Route) -> None:
        url = route.request.url
        if url.startswith("data:") or urlsplit(url).netloc == local:
            await route.continue_()
        else:  # the machine is offline as far as this page is concerned
            elsewhere.append(url)
            await route.abort()

    await page.route("**/*", only_this_host)
    loaded: list[str] = []
    page.on("requestfinished", lambda request: loaded.append(urlsplit(request.url).path))

    await tab.open("/api/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("WhatsApp Bot Platform")
    operations = page.locator(".opblock")
    await expect(operations.first).to_be_visible()
    # The whole API, not an empty shell. Swagger UI renders long lists virtually (only what is
    # near the viewport exists in the page), so the loaded spec is asked, not the page.
    paths = await page.evaluate("window.ui.specSelectors.specJson().get('paths').size")
    assert paths > 50
    me_path = page.locator(".opblock-summary-path", has_text="/api/v1/me")
    for _ in range(150):  # scrolled to: operations far down the page exist near the viewport
        if await me_path.count():
            break
        await page.mouse.wheel(0, 600)
        await page.wait_for_timeout(50)
    await me_path.first.scroll_into_view_if_needed()
    await expect(me_path.first).to_be_visible()

    # An operation opens and shows its parameters and responses.
    me = page.locator(".opblock").filter(
        has=page.locator(".opblock-summary-path", has_text="/api/v1/me")
    )
    await me.first.locator(".opblock-summary").first.click()
    await expect(me.first.locator(".responses-wrapper").first).to_be_visible()

    assert elsewhere == []
    assert "/app/static/vendor/swagger-ui-bundle.js" in loaded
    assert "/app/static/vendor/swagger-ui.css" in loaded
    assert "/app/static/api-docs.js" in loaded
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(SCREENSHOTS / "api-docs-top.png"))  # what a reader sees first
    await tab.shot("api-docs")


async def test_api_docs_page_has_no_inline_script_and_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/api/docs")
    assert answer.status_code == 200
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy and "http" not in policy
    page = answer.text
    assert "<script>" not in page and "cdn" not in page.lower()
    assert 'src="/app/static/vendor/swagger-ui-bundle.js?v=' in page  # fingerprinted
    assert (await client.get("/api/redoc")).status_code == 404  # no second, CDN-fed docs page
