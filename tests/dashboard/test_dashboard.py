"""The dashboard over plain HTTP, on both backends: sessions, CSRF, CSP, permissions (hidden
and refused), every form's happy and refused path, the polling fragments, and the admin."""

from __future__ import annotations

import re
import uuid

import httpx
import pyotp
import pytest
from sqlalchemy import select

from botplatform.auth.service import find_by_email
from botplatform.kit.clock import utcnow
from botplatform.models import AuditLog, DeadJob
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.conftest import STRONG_PASSWORD, Api, SmtpSink, eventually
from tests.dashboard.conftest import enable_two_factor, next_code, unique_phone
from tests.dashboard.helpers import browser_login, csrf_of, post_form, unlabelled_controls


async def _owner_with_conversation(
    api: Api, wa: FakeGraph, text: str = "hello"
) -> tuple[object, str, dict[str, str], dict[str, str]]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await wa.post_inbound_text(unique_phone(), text, "Ann Customer")
    conversation = await api.conversation_of(owner, ws, "Ann Customer")  # type: ignore[arg-type]
    return owner, ws, channel, conversation


async def test_pages_need_a_session_and_send_a_strict_csp(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/app/w/{uuid.uuid4()}/inbox")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/app/login?next=")
    login = await client.get("/app/login")
    policy = login.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "<script>" not in login.text and "style=" not in login.text
    assert login.headers["cache-control"] == "no-store"
    htmx = await client.get("/app/static/vendor/htmx.min.js")
    assert htmx.status_code == 200
    assert "htmx" in htmx.text[:2000]


async def test_csrf_token_is_required_and_bound_to_the_session(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner, "Before")
    # Without any token: refused, even with the right password.
    refused = await client.post("/app/login", data={"email": owner.email, "password": "x"})
    assert refused.status_code == 403
    assert "expired" in refused.text
    await browser_login(client, owner.email, owner.password)
    settings_page = await client.get(f"/app/w/{ws}/settings")
    token = csrf_of(settings_page.text)
    for headers, data in (
        ({}, {"name": "Hijacked"}),
        ({}, {"name": "Hijacked", "csrf_token": "0" * 64}),
        ({"X-CSRF-Token": "f" * 64}, {"name": "Hijacked"}),
    ):
        answer = await client.post(f"/app/w/{ws}/settings", data=data, headers=headers)
        assert answer.status_code == 403
    # The token of another browser (other nonce cookie) does not fit this one.
    other = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with other:
        foreign = csrf_of((await other.get("/app/login")).text)
    answer = await client.post(
        f"/app/w/{ws}/settings", data={"name": "Hijacked", "csrf_token": foreign}
    )
    assert answer.status_code == 403
    # htmx sends the page's token as a header.
    saved = await client.post(
        f"/app/w/{ws}/settings", data={"name": "After"}, headers={"X-CSRF-Token": token}
    )
    assert saved.status_code == 303
    me = await client.get(f"/api/v1/workspaces/{ws}", headers=owner.headers)
    assert me.json()["data"]["name"] == "After"


async def test_login_with_two_factor_and_logout(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    await api.create_workspace(owner)
    totp = await enable_two_factor(api, owner)
    wrong = await post_form(
        client, "/app/login", "/app/login", {"email": owner.email, "password": "wrong-one-123"}
    )
    assert wrong.status_code == 401
    assert "incorrect" in wrong.text
    step = await post_form(
        client, "/app/login", "/app/login", {"email": owner.email, "password": owner.password}
    )
    assert step.headers["location"] == "/app/login/2fa"
    assert "bp_session" not in client.cookies  # no session before the second factor
    bad = await post_form(client, "/app/login/2fa", "/app/login/2fa", {"code": "000000"})
    assert bad.status_code == 401
    good = await post_form(client, "/app/login/2fa", "/app/login/2fa", {"code": next_code(totp)})
    assert good.status_code == 303
    home = await client.get("/app", follow_redirects=True)
    assert home.status_code == 200 and "Inbox" in home.text
    session = client.cookies["bp_session"]
    out = await post_form(client, "/app/account", "/app/logout", {})
    assert out.status_code == 303
    # The session is gone server-side: the old cookie no longer opens anything.
    client.cookies.set("bp_session", session)
    again = await client.get("/app/account")
    assert again.status_code == 303 and again.headers["location"].startswith("/app/login")
    entries = await _audit_actions(runtime)
    assert {"auth.password_ok", "auth.login", "auth.logout"} <= set(entries)


async def _audit_actions(runtime: Runtime) -> list[str]:
    async with runtime.db.unit_of_work(system=True) as db:
        return list((await db.execute(select(AuditLog.action).order_by(AuditLog.seq))).scalars())


async def test_open_redirects_are_refused(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    page = await client.get("/app/login?next=//evil.example/x")
    answer = await client.post(
        "/app/login",
        data={
            "email": owner.email,
            "password": owner.password,
            "next": "https://evil.example/",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert answer.headers["location"] == "/app"


async def test_password_reset_by_emailed_link(
    client: httpx.AsyncClient, api: Api, smtp: SmtpSink
) -> None:
    owner = await api.register()
    sent = await post_form(
        client, "/app/password/forgot", "/app/password/forgot", {"email": owner.email}
    )
    assert sent.headers["location"] == "/app/login?notice=reset_sent"
    unknown = await post_form(
        client, "/app/password/forgot", "/app/password/forgot", {"email": "nobody@example.com"}
    )
    assert unknown.headers["location"] == sent.headers["location"]  # no enumeration
    mail = await eventually(lambda: smtp.to(owner.email))
    body = mail[0].get_body(("plain",)).get_content()
    link = re.search(r"(/app/password/reset\?token=\S+)", body)
    assert link
    weak = await post_form(
        client,
        link[1],
        "/app/password/reset",
        {
            "token": link[1].split("token=", 1)[1],
            "password": "short",
        },
    )
    assert weak.status_code == 422
    changed = await post_form(
        client,
        link[1],
        "/app/password/reset",
        {
            "token": link[1].split("token=", 1)[1],
            "password": "a-brand-new-river-stone-77",
        },
    )
    assert changed.headers["location"] == "/app/login?notice=password_changed"
    await browser_login(client, owner.email, "a-brand-new-river-stone-77")


async def test_register_and_accept_an_invitation(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner, "Invites Inc")
    created = await api.invite(owner, ws, "newcomer@example.com", "agent")
    path = created["link"].split("http://localhost:3000", 1)[1]
    first = await client.get(path)
    assert first.headers["location"].startswith("/app/login?next=")
    joined = await post_form(
        client,
        "/app/register",
        "/app/register",
        {
            "email": "newcomer@example.com",
            "password": STRONG_PASSWORD,
            "name": "New",
            "next": path,
        },
    )
    assert joined.headers["location"] == path
    accepted = await post_form(
        client,
        path,
        "/app/invitations/accept",
        {
            "token": path.split("token=", 1)[1],
        },
    )
    assert accepted.headers["location"] == f"/app/w/{ws}?notice=joined"
    inbox = await client.get(f"/app/w/{ws}", follow_redirects=True)
    assert "Invites Inc (agent)" in inbox.text
    reused = await post_form(
        client,
        path,
        "/app/invitations/accept",
        {
            "token": path.split("token=", 1)[1],
        },
    )
    assert reused.status_code >= 400 and "<h1>Join a workspace</h1>" in reused.text


async def test_inbox_escapes_filters_polls_and_replies_without_javascript(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, _, conversation = await _owner_with_conversation(
        api, wa, "<script>alert(1)</script>"
    )
    await browser_login(client, owner.email, owner.password)  # type: ignore[attr-defined]
    inbox = await client.get(f"/app/w/{ws}/inbox")
    assert "Ann Customer" in inbox.text
    resolved = await client.get(f"/app/w/{ws}/inbox?status=resolved")
    assert "Ann Customer" not in resolved.text
    other_channel = await client.get(f"/app/w/{ws}/inbox?channel={uuid.uuid4()}")
    assert "Ann Customer" not in other_channel.text
    view = await client.get(f"/app/w/{ws}/inbox/{conversation['id']}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in view.text
    assert "<script>alert(1)" not in view.text
    version = re.search(r'/thread\?v=([0-9a-f]+)"', view.text)
    assert version
    unchanged = await client.get(f"/app/w/{ws}/inbox/{conversation['id']}/thread?v={version[1]}")
    assert unchanged.status_code == 204
    replied = await client.post(
        f"/app/w/{ws}/inbox/{conversation['id']}/reply",
        data={"text": "On its way", "csrf_token": csrf_of(view.text), "idempotency_key": "k-1"},
    )
    assert replied.status_code == 303
    await eventually(lambda: [m for m in wa.sent if m["body"].get("text")])
    again = await client.post(  # the same form submitted twice sends once
        f"/app/w/{ws}/inbox/{conversation['id']}/reply",
        data={"text": "On its way", "csrf_token": csrf_of(view.text), "idempotency_key": "k-1"},
    )
    assert again.status_code == 303
    changed = await client.get(f"/app/w/{ws}/inbox/{conversation['id']}/thread?v={version[1]}")
    assert changed.status_code == 200 and "On its way" in changed.text
    assert len([m for m in wa.sent if m["body"].get("text")]) == 1
    empty = await client.post(
        f"/app/w/{ws}/inbox/{conversation['id']}/reply",
        data={"text": "", "csrf_token": csrf_of(view.text)},
        headers={"HX-Request": "true"},
    )
    assert empty.status_code == 422 and empty.headers["HX-Retarget"] == "#flash"
    assert "message.send" in await _audit_actions(runtime)


async def test_assign_resolve_and_permissions_of_an_agent(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, channel, conversation = await _owner_with_conversation(api, wa)
    agent = await api.add_member(owner, ws, "agent")  # type: ignore[arg-type]
    assigned_channel = await client.put(
        f"/api/v1/workspaces/{ws}/members/{agent.user_id}/channels",
        json={"channel_ids": [channel["id"]]},
        headers=owner.headers,  # type: ignore[attr-defined]
    )  # an agent sees only the channels it is assigned to
    assert assigned_channel.status_code == 200
    await browser_login(client, owner.email, owner.password)  # type: ignore[attr-defined]
    view = await client.get(f"/app/w/{ws}/inbox/{conversation['id']}")
    token = csrf_of(view.text)
    base = f"/app/w/{ws}/inbox/{conversation['id']}"
    assigned = await client.post(
        f"{base}/assign",
        data={"assignee_id": str(agent.user_id), "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert assigned.status_code == 200 and 'id="thread"' in assigned.text
    resolved = await client.post(f"{base}/status", data={"status": "resolved", "csrf_token": token})
    assert resolved.status_code == 303
    state = await client.get(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}", headers=owner.headers
    )  # type: ignore[attr-defined]
    assert state.json()["data"]["status"] == "resolved"
    assert state.json()["data"]["assignee_id"] == str(agent.user_id)
    mine = await client.get(f"/app/w/{ws}/inbox?assignee={agent.user_id}")
    assert "Ann Customer" in mine.text
    contact = await client.get(f"/app/w/{ws}/contacts/{conversation['contact_id']}")
    assert f"/app/w/{ws}/inbox/{conversation['id']}" in contact.text

    client.cookies.clear()
    await browser_login(client, agent.email, agent.password)
    page = await client.get(f"/app/w/{ws}/inbox/{conversation['id']}")
    assert "API keys" not in page.text and "Audit log" not in page.text
    assert ">Resolve<" not in page.text and "Reply to Ann Customer" in page.text
    for path in ("api-keys", "audit", "channels/new"):
        refused = await client.get(f"/app/w/{ws}/{path}")
        assert refused.status_code == 403, path
    forged = await client.post(
        f"{base}/status", data={"status": "open", "csrf_token": csrf_of(page.text)}
    )
    assert forged.status_code == 403
    stranger = await client.get(f"/app/w/{uuid.uuid4()}/inbox")
    assert stranger.status_code == 404
    assert (await client.get("/admin/workspaces")).status_code == 403


async def test_channels_connect_form_shows_webhook_and_health(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    bad = await post_form(
        client,
        f"/app/w/{ws}/channels/new",
        f"/app/w/{ws}/channels",
        {
            "name": "Sales",
            "phone_number_id": "abc",
            "business_account_id": "123456",
        },
    )
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    made = await post_form(
        client,
        f"/app/w/{ws}/channels/new",
        f"/app/w/{ws}/channels",
        {
            "name": "Sales",
            "phone_number_id": "109876543210",
            "business_account_id": "123456789",
            "verify_token": "my-verify-token-1",
            "access_token": "EAAG-secret-abc",
        },
    )
    assert made.status_code == 303
    detail = await client.get(made.headers["location"])
    assert "/webhooks/whatsapp/" in detail.text and "my-verify-token-1" in detail.text
    assert "EAAG-secret-abc" not in detail.text
    assert "never" in detail.text  # no webhook has arrived yet
    duplicate = await post_form(
        client,
        f"/app/w/{ws}/channels/new",
        f"/app/w/{ws}/channels",
        {
            "name": "Again",
            "phone_number_id": "109876543210",
            "business_account_id": "123456789",
        },
    )
    assert duplicate.status_code == 409 and "already connected" in duplicate.text
    # Nothing has arrived yet: the page says so rather than calling the channel healthy.
    listing = await client.get(f"/app/w/{ws}/channels")
    assert "no webhook yet" in listing.text and "healthy" not in listing.text
    assert "no webhook received yet" in detail.text and ">healthy<" not in detail.text


async def test_members_invitations_keys_settings_and_audit(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    viewer = await api.add_member(owner, ws, "viewer")
    await browser_login(client, owner.email, owner.password)
    members = f"/app/w/{ws}/members"
    promoted = await post_form(
        client, members, f"{members}/{viewer.user_id}/role", {"role": "manager"}
    )
    assert promoted.status_code == 303
    invited = await post_form(
        client, members, f"/app/w/{ws}/invitations", {"email": "x@example.com", "role": "agent"}
    )
    assert invited.status_code == 201 and "/app/invitations/accept?token=" in invited.text
    keys = f"/app/w/{ws}/api-keys"
    no_scope = await post_form(client, keys, keys, {"name": "k"})
    assert no_scope.status_code == 422
    made = await post_form(client, keys, keys, {"name": "ci", "scopes": "audit:read"})
    key = re.search(r'id="new-key">(bp_live_[^<]+)<', made.text)
    assert key
    listing = await client.get(keys)
    assert key[1] not in listing.text  # shown once
    key_id = re.search(r"/api-keys/([0-9a-f-]{36})/revoke", listing.text)
    assert key_id
    await post_form(client, keys, f"{keys}/{key_id[1]}/revoke", {})
    used = await client.get(
        f"/api/v1/workspaces/{ws}/audit-logs", headers={"Authorization": f"Bearer {key[1]}"}
    )
    assert used.status_code == 401
    settings = f"/app/w/{ws}/settings"
    saved = await post_form(client, settings, settings, {"name": "Renamed"})
    assert saved.status_code == 303
    audit = await client.get(f"/app/w/{ws}/audit?action=workspace.update")
    assert "<code>workspace.update</code>" in audit.text
    assert "<code>api_key.create</code>" not in audit.text
    required = await post_form(client, settings, settings, {"name": "Renamed", "require_2fa": "on"})
    assert required.status_code == 303
    # 2FA is now required: the owner (without it) is sent to set it up.
    blocked = await client.get(f"/app/w/{ws}/inbox")
    assert blocked.status_code == 403 and "/app/account" in blocked.text
    actions = await _audit_actions(runtime)
    for action in ("member.update", "invitation.create", "api_key.create", "api_key.revoke"):
        assert action in actions


async def test_account_two_factor_setup_in_the_browser(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    await browser_login(client, owner.email, owner.password)
    setup = await post_form(client, "/app/account", "/app/account/2fa/setup", {})
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', setup.text)
    assert secret and "<svg" in setup.text
    on = await client.post(
        "/app/account/2fa/enable",
        data={
            "code": pyotp.TOTP(secret[1]).now(),
            "csrf_token": csrf_of(setup.text),
        },
    )
    assert on.status_code == 200 and on.text.count("<li><code>") == 10


async def test_admin_panel_for_superadmins_with_dead_job_retry(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    admin = await api.register()
    await api.create_workspace(admin, "Tenant One")
    async with runtime.db.unit_of_work(system=True) as db:
        user = await find_by_email(db, admin.email)
        assert user is not None
        user.is_superadmin = True
        db.add(
            DeadJob(
                job="send_email",
                queue="default",
                args=[str(uuid.uuid4())],
                message_id="m-1",
                last_error="TimeoutError: smtp\ntrace",
                attempts=5,
                first_enqueued_at=utcnow(),
                failed_at=utcnow(),
            )
        )
    await browser_login(client, admin.email, admin.password)
    assert "Tenant One" in (await client.get("/admin/workspaces")).text
    assert admin.email in (await client.get(f"/admin/users?q={admin.email[:8]}")).text
    queue = await client.get("/admin/queue")
    assert "send_email" in queue.text and "TimeoutError: smtp" in queue.text
    dead_id = re.search(r'data-dead-job="([0-9a-f-]{36})"', queue.text)
    assert dead_id
    retried = await post_form(client, "/admin/queue", f"/admin/queue/dead/{dead_id[1]}/retry", {})
    assert retried.headers["location"] == "/admin/queue?notice=retried"
    again = await post_form(client, "/admin/queue", f"/admin/queue/dead/{dead_id[1]}/retry", {})
    assert again.status_code == 404
    assert "admin.dead_job_retry" in await _audit_actions(runtime)


@pytest.mark.parametrize("path", ["/app/w/not-a-uuid/inbox", "/app/w/{ws}/inbox/nope"])
async def test_malformed_ids_are_a_page_not_found(
    client: httpx.AsyncClient, api: Api, path: str
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    response = await client.get(path.format(ws=ws))
    assert response.status_code == 404 and "Not found" in response.text


async def test_every_control_has_a_label_and_the_switcher_switches(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, channel, conversation = await _owner_with_conversation(api, wa)
    second = await api.create_workspace(owner, "Second Shop")  # type: ignore[arg-type]
    await browser_login(client, owner.email, owner.password)  # type: ignore[attr-defined]
    pages = [
        f"/app/w/{ws}/inbox",
        f"/app/w/{ws}/inbox/{conversation['id']}",
        f"/app/w/{ws}/contacts",
        f"/app/w/{ws}/contacts/{conversation['contact_id']}",
        f"/app/w/{ws}/channels",
        f"/app/w/{ws}/channels/new",
        f"/app/w/{ws}/channels/{channel['id']}",
        f"/app/w/{ws}/api-keys",
        f"/app/w/{ws}/members",
        f"/app/w/{ws}/audit",
        f"/app/w/{ws}/settings",
        "/app/workspaces",
        "/app/account",
    ]
    for path in pages:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert unlabelled_controls(response.text) == [], path
        assert 'class="skip" href="#main"' in response.text
    switched = await client.get(f"/app/switch?ws={second}")
    assert switched.headers["location"] == f"/app/w/{second}"
    inbox = await client.get(f"/app/w/{second}", follow_redirects=True)
    assert f'<option value="{second}" selected>Second Shop (owner)</option>' in inbox.text
    client.cookies.clear()
    for path in ("/app/login", "/app/register", "/app/password/forgot", "/app/password/reset"):
        assert unlabelled_controls((await client.get(path)).text) == [], path


async def test_another_workspaces_ids_are_not_found(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    _, other_ws, other_channel, other_conversation = await _owner_with_conversation(api, wa)
    me = await api.register()
    ws = await api.create_workspace(me, "Mine")
    await browser_login(client, me.email, me.password)
    for path in (
        f"/app/w/{ws}/inbox/{other_conversation['id']}",
        f"/app/w/{ws}/inbox/{other_conversation['id']}/thread",
        f"/app/w/{ws}/contacts/{other_conversation['contact_id']}",
        f"/app/w/{ws}/channels/{other_channel['id']}",
        f"/app/w/{other_ws}/inbox",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "Ann Customer" not in response.text
    page = await client.get(f"/app/w/{ws}/settings")
    forged = await client.post(
        f"/app/w/{ws}/inbox/{other_conversation['id']}/reply",
        data={"text": "hi", "csrf_token": csrf_of(page.text)},
    )
    assert forged.status_code == 404


async def _audit_count(runtime: Runtime) -> int:
    return len(await _audit_actions(runtime))


async def test_each_dashboard_action_writes_exactly_one_audit_entry(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, channel, conversation = await _owner_with_conversation(api, wa)
    member = await api.add_member(owner, ws, "viewer")  # type: ignore[arg-type]
    await browser_login(client, owner.email, owner.password)  # type: ignore[attr-defined]
    thread = f"/app/w/{ws}/inbox/{conversation['id']}"
    actions: list[tuple[str, str, dict[str, str]]] = [
        (thread, f"{thread}/reply", {"text": "hello", "idempotency_key": "a-1"}),
        (thread, f"{thread}/reply", {"text": "inside", "note": "on"}),
        (thread, f"{thread}/assign", {"assignee_id": str(member.user_id)}),
        (thread, f"{thread}/status", {"status": "pending"}),
        (thread, f"{thread}/read", {}),
        (f"/app/w/{ws}/settings", f"/app/w/{ws}/settings", {"name": "Audited"}),
        (f"/app/w/{ws}/members", f"/app/w/{ws}/members/{member.user_id}/role", {"role": "agent"}),
        (f"/app/w/{ws}/members", f"/app/w/{ws}/invitations", {"email": "z@example.com"}),
        (f"/app/w/{ws}/api-keys", f"/app/w/{ws}/api-keys", {"name": "k", "scopes": "audit:read"}),
        (
            f"/app/w/{ws}/channels/{channel['id']}",
            f"/app/w/{ws}/channels/{channel['id']}",
            {"name": "Renamed", "status": "active", "auto_reply": ""},
        ),
        ("/app/workspaces", "/app/workspaces", {"name": "Another"}),
        ("/app/account", "/app/account/2fa/setup", {}),
        (f"/app/w/{ws}/members", f"/app/w/{ws}/members/{member.user_id}/remove", {}),
        ("/app/account", "/app/logout", {}),
    ]
    actions.append(("/app/account", "/app/logout-all", {}))
    for page, action, data in actions:
        if action == "/app/logout-all":
            await browser_login(client, owner.email, owner.password)  # type: ignore[attr-defined]
        before = await _audit_count(runtime)
        response = await post_form(client, page, action, data)
        assert response.status_code in (200, 201, 303), (action, response.text[:500])
        assert await _audit_count(runtime) == before + 1, action


async def test_bad_input_is_a_clear_4xx_never_a_500(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    nasty = "%00'\"<x>\u202e" + "é" * 300
    for path in (
        f"/app/w/{ws}/inbox?status={nasty}&assignee={nasty}&channel={nasty}",
        f"/app/w/{ws}/inbox/list?v={nasty}&selected={nasty}",
        f"/app/w/{ws}/contacts?q={nasty[:90]}&cursor=not-a-cursor",
        f"/app/w/{ws}/audit?since={nasty[:50]}&until=2026-13-45&cursor=%%%",
        f"/app/switch?ws={nasty[:50]}",
        f"/admin/users?q={nasty[:50]}",
        f"/app/password/reset?token={nasty[:500]}",
    ):
        response = await client.get(path)
        assert response.status_code < 500, path
        assert "<x>" not in response.text
    keys, settings = f"/app/w/{ws}/api-keys", f"/app/w/{ws}/settings"
    for page, action, data in (
        (keys, keys, {"name": "k", "scopes": "audit:read", "expires_at": "2001-01-01"}),
        (keys, keys, {"name": "k", "scopes": "nonsense:perm"}),
        (keys, keys, {"name": "k", "scopes": "audit:read", "allowed_ips": "300.1.1.1/99"}),
        (settings, settings, {"name": "", "slug": "Not A Slug!"}),
        (f"/app/w/{ws}/channels/new", f"/app/w/{ws}/channels", {"send_rate_per_second": "x"}),
        (settings, f"/app/w/{ws}/members/{uuid.uuid4()}/role", {"role": "emperor"}),
        (settings, f"/app/w/{ws}/invitations", {"email": "not-an-email", "role": "owner"}),
        ("/app/account", "/app/account/2fa/enable", {"code": "12"}),
        ("/app/account", "/app/invitations/accept", {"token": nasty}),
    ):
        response = await post_form(client, page, action, data)
        assert 400 <= response.status_code < 500, (action, data, response.status_code)
        assert "<x>" not in response.text


async def test_members_page_assigns_channels_and_the_agents_inbox_follows(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    a = await api.create_channel(owner, ws, name="Alpha line")
    b = await api.create_channel(owner, ws, name="Beta line", phone_number_id="2233445566778")
    await api.inbound_text(a["id"], "15550000001", "hi from A", name="Ann Alpha")
    await api.inbound_text(b["id"], "15550000002", "hi from B", name="Bob Beta")
    conversation_b = await api.conversation_of(owner, ws, "Bob Beta")
    agent = await api.add_member(owner, ws, "agent")
    await browser_login(client, owner.email, owner.password)
    members = f"/app/w/{ws}/members"
    before = await _audit_count(runtime)
    saved = await post_form(
        client, members, f"{members}/{agent.user_id}/channels", {"channel_ids": a["id"]}
    )
    assert saved.status_code == 303, saved.text[:500]
    assert await _audit_count(runtime) == before + 1
    page = await client.get(members)
    assert f'value="{a["id"]}" checked' in page.text
    assert f'value="{b["id"]}" checked' not in page.text
    wrong = await post_form(
        client, members, f"{members}/{agent.user_id}/channels", {"channel_ids": "nope"}
    )
    assert wrong.status_code == 400 and "Choose channels" in wrong.text

    await browser_login(client, agent.email, agent.password)
    inbox = await client.get(f"/app/w/{ws}/inbox")
    assert inbox.status_code == 200
    assert "Ann Alpha" in inbox.text and "Bob Beta" not in inbox.text
    assert "Beta line" not in inbox.text  # not even in the channel filter
    hidden = await client.get(f"/app/w/{ws}/inbox/{conversation_b['id']}")
    assert hidden.status_code == 404
