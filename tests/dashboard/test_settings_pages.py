"""The settings page over plain HTTP, on both backends: name and 2FA, branding (colours,
custom domain, logo upload with its preview), retention; the API's refusals shown in the
page, CSRF, and members without `workspace:update` seeing values but no forms (and refused)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from botplatform.runtime import Runtime
from tests.branding.test_branding import png
from tests.conftest import Account, Api
from tests.dashboard.helpers import browser_login, csrf_of, unlabelled_controls


async def _api(client: httpx.AsyncClient, who: Account, path: str) -> dict[str, object]:
    response = await client.get(path, headers=who.headers)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def _logo_files(runtime: Runtime, ws: str) -> list[Path]:
    folder = Path(runtime.settings.data_dir) / "media" / "ws" / ws / "branding"
    return [p for p in folder.glob("*") if "~" not in p.name] if folder.is_dir() else []


async def test_settings_page_saves_branding_logo_and_retention(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner, "Acme")
    base = f"/app/w/{ws}/settings"
    await browser_login(client, owner.email, owner.password)
    page = await client.get(base)
    assert page.status_code == 200
    html = page.text
    assert "not available yet" not in html
    for action in ("settings/branding", "settings/logo", "settings/retention"):
        assert f'action="/app/w/{ws}/{action}"' in html
    assert 'type="color"' in html and 'enctype="multipart/form-data"' in html
    assert 'data-preview="logo-preview"' in html
    assert unlabelled_controls(html) == []
    assert "style=" not in html and "<script>" not in html
    token = csrf_of(html)

    saved = await client.post(
        f"{base}/branding",
        data={
            "brand_name": "Acme Help",
            "primary_color": "#AA0000",
            "background_color": "#ffffff",
            "text_color": "#111111",
            "custom_domain": "help.acme-example.com",
            "csrf_token": token,
        },
    )
    assert saved.status_code == 303, saved.text
    branding = await _api(client, owner, f"/api/v1/workspaces/{ws}/branding")
    assert branding["primary_color"] == "#aa0000"
    assert branding["custom_domain"] == "help.acme-example.com"
    shown = (await client.get(base)).text
    assert 'value="#aa0000"' in shown and 'value="help.acme-example.com"' in shown

    refused = await client.post(
        f"{base}/branding",
        data={"brand_name": "X", "primary_color": "red", "csrf_token": token},
    )
    assert refused.status_code == 422
    assert 'class="alert alert-error"' in refused.text
    assert 'id="f-primary_color-note"' in refused.text
    unchanged = await _api(client, owner, f"/api/v1/workspaces/{ws}/branding")
    assert unchanged == branding
    reset = await client.post(
        f"{base}/branding",
        data={"brand_name": "Acme Help", "default_colors": "on", "csrf_token": token},
    )
    assert reset.status_code == 303
    assert (await _api(client, owner, f"/api/v1/workspaces/{ws}/branding"))["primary_color"] is None

    bad_logo = await client.post(
        f"{base}/logo",
        data={"csrf_token": token},
        files={"logo": ("logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")},
    )
    assert bad_logo.status_code == 422 and 'class="alert alert-error"' in bad_logo.text
    assert _logo_files(runtime, ws) == []
    logo = await client.post(
        f"{base}/logo", data={"csrf_token": token}, files={"logo": ("l.png", png(), "image/png")}
    )
    assert logo.status_code == 303, logo.text
    with_logo = (await client.get(base)).text
    preview = re.search(r'src="(/branding/[^"]+/logo\?v=\w+)"', with_logo)
    assert preview and (await client.get(preview.group(1))).content == png()
    removed = await client.post(f"{base}/logo/delete", data={"csrf_token": token})
    assert removed.status_code == 303
    assert "No logo yet." in (await client.get(base)).text

    kept = await client.post(
        f"{base}/retention",
        data={"retention_days": "30", "archive_before_delete": "on", "csrf_token": token},
    )
    assert kept.status_code == 303
    retention = await _api(client, owner, f"/api/v1/workspaces/{ws}/retention")
    assert retention["retention_days"] == 30 and retention["archive_before_delete"] is True
    for days in ("0", "91", "3651", "soon"):  # 91: over the starter plan's 90 days
        bad = await client.post(
            f"{base}/retention", data={"retention_days": days, "csrf_token": token}
        )
        assert bad.status_code == 422, days
    forever = await client.post(
        f"{base}/retention", data={"retention_days": "", "csrf_token": token}
    )
    assert forever.status_code == 303
    retention = await _api(client, owner, f"/api/v1/workspaces/{ws}/retention")
    assert retention == {
        "retention_days": None,
        "archive_before_delete": False,
        "plan_ceiling_days": 90,
    }

    no_token = await client.post(f"{base}/retention", data={"retention_days": "5"})
    assert no_token.status_code == 403
    two_factor = await client.post(
        base, data={"name": "Acme", "slug": "acme-x", "require_2fa": "on", "csrf_token": token}
    )
    assert two_factor.status_code == 303
    # Saved: the owner, without 2FA yet, is now asked to enable it.
    after = await client.get(f"/api/v1/workspaces/{ws}", headers=owner.headers)
    assert after.json()["error"]["code"] == "two_factor_required"


async def test_members_without_settings_permission_see_values_and_are_refused(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner, "Acme")
    await client.put(
        f"/api/v1/workspaces/{ws}/branding",
        json={"name": "Acme Brand", "custom_domain": "chat.acme-example.com"},
        headers=owner.headers,
    )
    developer = await api.add_member(owner, ws, "developer")
    await browser_login(client, developer.email, developer.password)
    base = f"/app/w/{ws}/settings"
    page = await client.get(base)
    assert page.status_code == 200
    assert "Acme Brand" in page.text and "chat.acme-example.com" in page.text
    assert "settings/branding" not in page.text and "settings/retention" not in page.text
    assert 'type="file"' not in page.text
    token = csrf_of(page.text)
    attempts = [
        ("branding", {"brand_name": "Mine", "primary_color": "#000000"}),
        ("retention", {"retention_days": "1"}),
        ("logo/delete", {}),
    ]
    for path, data in attempts:
        response = await client.post(f"{base}/{path}", data={**data, "csrf_token": token})
        assert response.status_code == 403, path
    upload = await client.post(
        f"{base}/logo", data={"csrf_token": token}, files={"logo": ("l.png", png(), "image/png")}
    )
    assert upload.status_code == 403
    branding = await _api(client, owner, f"/api/v1/workspaces/{ws}/branding")
    assert branding["name"] == "Acme Brand" and branding["logo_url"] is None
    retention = await _api(client, owner, f"/api/v1/workspaces/{ws}/retention")
    assert retention["retention_days"] is None
