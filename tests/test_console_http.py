"""The web console over plain HTTP: roles on every route, sessions, CSRF, throttling, headers.

These run against a real gateway and PostgreSQL without a browser; the browser tests are in
test_console_browser.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from yarl import URL

import admin
from admin import i18n
from admin.accountform import decode, field_specs, initial_values
from admin.app import CONSOLE
from admin.routing import ADMIN, ANY, OPERATOR, PUBLIC, ROUTES
from gateway.accounts import MASK
from gateway.channel import secret_fields
from gateway.config import ConfigError
from gateway.console_store import ConsoleStore
from gateway.console_users import ConsoleUserIn, ConsoleUsers
from gateway.errors import Conflict, Invalid
from gateway.plugins import Plugins
from tests.browser_fixtures import PASSWORD, add_console_user
from tests.browser_fixtures import _missing as missing_browser
from tests.connection_recorder import recording
from tests.gateway_fixtures import RunningGateway, unique

CSRF_FIELD = re.compile(r'name="_csrf" value="([^"]+)"')
PARAMS = {"name": "x", "id": "1", "channel": "email"}


class Client:
    """A browser-like HTTP client of one gateway's console (cookies kept, redirects not)."""

    def __init__(self, gateway: RunningGateway, headers: dict[str, str] | None = None) -> None:
        self.gateway = gateway
        self.session = aiohttp.ClientSession(
            base_url=gateway.url,
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies for 127.0.0.1
            headers=headers,
        )

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.get("/admin" + path, allow_redirects=False, **kwargs) as r:
            return r.status, await r.text(), r

    async def post(
        self, path: str, data: dict[str, str], **kwargs: Any
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.post(
            "/admin" + path, data=data, allow_redirects=False, **kwargs
        ) as r:
            return r.status, await r.text(), r

    async def login(self, name: str, password: str = PASSWORD, **kwargs: Any) -> int:
        _, page, _ = await self.get("/login")
        token = CSRF_FIELD.search(page).group(1)
        status, _, _ = await self.post(
            "/login", {"_csrf": token, "name": name, "password": password}, **kwargs
        )
        return status

    async def csrf(self) -> str:
        _, page, _ = await self.get("/profile")
        return CSRF_FIELD.search(page).group(1)


@pytest.fixture
async def client():
    made: list[Client] = []

    def make(gateway: RunningGateway, **kwargs: Any) -> Client:
        made.append(Client(gateway, **kwargs))
        return made[-1]

    yield make
    for c in made:
        await c.close()


def concrete(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: PARAMS[m.group(1)], path)


def test_every_route_names_its_role_and_changes_need_more_than_a_session():
    assert ROUTES
    for r in ROUTES:
        assert r.role in (PUBLIC, ANY, OPERATOR, ADMIN), r
    assert {r.name for r in ROUTES if r.role == PUBLIC} == {
        "auth.login",
        "auth.login_submit",
        "home.bare",
    }
    own = {"auth.logout", "profile.save", "profile.language", "profile.password"}
    assert {r.name for r in ROUTES if r.method == "POST" and r.role == ANY} == own


async def test_roles_are_enforced_on_every_route(gateway, client):
    for role, refused in (("readonly", (OPERATOR, ADMIN)), ("operator", (ADMIN,))):
        c = client(gateway)
        assert await c.login(await add_console_user(gateway, role)) == 303
        token = await c.csrf()
        for r in sorted(ROUTES, key=lambda r: r.name == "auth.logout"):  # log out last
            path = concrete(r.path)
            if r.method == "GET":
                status, page, _ = await c.get(path)
            else:
                status, page, _ = await c.post(path, {"_csrf": token, "confirmed": "1"})
            if r.role in refused:
                assert status == 403, (role, r.name, status)
                assert "不能执行此操作" in page
            elif r.method == "GET" and r.role == ANY and "{" not in r.path:
                assert status == 200, (role, r.name, status)


async def test_pages_carry_security_headers_and_no_inline_script_or_style(gateway, client):
    c = client(gateway)
    status, page, answer = await c.get("/login")
    assert status == 200
    for key, expected in (("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff")):
        assert answer.headers[key] == expected
    csp = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert await c.login(await add_console_user(gateway, "admin")) == 303
    for r in ROUTES:
        if r.method != "GET" or "{" in r.path or r.role == PUBLIC:
            continue
        status, page, answer = await c.get(r.path)
        assert status == 200, r.name
        assert answer.headers["Cache-Control"] == "no-store"
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), r.name
        assert " style=" not in page and "javascript:" not in page, r.name
    status, _, answer = await c.get("/static/admin.css")
    assert status == 200 and answer.headers["X-Content-Type-Options"] == "nosniff"


async def test_session_cookie_is_httponly_lax_and_secure_behind_tls(
    make_gateway, client, monkeypatch
):
    gw = await make_gateway(trusted_proxies="127.0.0.1")
    name = await add_console_user(gw, "operator")
    plain = client(gw)
    _, page, _ = await plain.get("/login")
    token = CSRF_FIELD.search(page).group(1)
    _, _, answer = await plain.post("/login", {"_csrf": token, "name": name, "password": PASSWORD})
    (cookie,) = [c for c in answer.headers.getall("Set-Cookie") if "msggate_session=" in c]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie

    async def secure_login(c: Client, user: str) -> str:
        """Log in as over TLS: the client is told to keep its cookies for https only, so the
        login form's cookie is handed back by hand; returns the session's Set-Cookie."""
        _, page, answer = await c.get("/login")
        token = CSRF_FIELD.search(page).group(1)
        assert "Secure" in answer.headers["Set-Cookie"]
        _, _, answer = await c.post(
            "/login",
            {"_csrf": token, "name": user, "password": PASSWORD},
            headers={"Cookie": f"msggate_login_csrf={token}"},
        )
        (cookie,) = [c for c in answer.headers.getall("Set-Cookie") if "msggate_session=" in c]
        return cookie

    proxied = client(gw, headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in await secure_login(proxied, name)
    _, _, answer = await proxied.get("/login")
    assert answer.headers["Strict-Transport-Security"]

    monkeypatch.setenv("MSGGATE_CONSOLE_SECURE_COOKIES", "true")
    forced = await make_gateway()
    assert "Secure" in await secure_login(client(forced), await add_console_user(forced))

    monkeypatch.setenv("MSGGATE_CONSOLE_SECURE_COOKIES", "maybe")
    with pytest.raises(ConfigError, match="MSGGATE_CONSOLE_SECURE_COOKIES"):
        await make_gateway()


async def test_state_changing_requests_need_the_csrf_token_and_our_origin(gateway, client):
    c = client(gateway)
    assert await c.login(await add_console_user(gateway, "admin")) == 303
    token = await c.csrf()
    name = unique("csrf-key")
    refusals = [
        ({"name": name}, {}),
        ({"name": name, "_csrf": "forged"}, {}),
        ({"name": name, "_csrf": token}, {"Origin": "http://evil.example"}),
        ({"name": name, "_csrf": token}, {"Origin": "null"}),
    ]
    for data, headers in refusals:
        status, page, _ = await c.post("/apikeys", data, headers=headers)
        assert status == 403 and "表单已过期或来自其他站点" in page
    assert name not in [k.name for k in await gateway.services.api_keys.list()]
    status, page, _ = await c.post("/apikeys", {"name": name, "_csrf": token})
    assert status == 200 and "mg_" in page  # shown once, on this page only
    assert name in [k.name for k in await gateway.services.api_keys.list()]

    stranger = client(gateway)  # the login form has its own token (a double-submit cookie)
    status, _, _ = await stranger.post("/login", {"name": "x", "password": "y", "_csrf": "z"})
    assert status == 403


async def test_sessions_are_kept_hashed_and_end_at_logout(gateway, client, db):
    c = client(gateway)
    assert await c.login(await add_console_user(gateway, "readonly")) == 303
    jar = c.session.cookie_jar.filter_cookies(URL(gateway.url + "/admin/"))
    value = jar["msggate_session"].value
    digest = hashlib.sha256(value.encode()).digest()
    assert await db.fetchval("SELECT count(*) FROM console_sessions WHERE id_hash = $1", digest)
    assert not await db.fetchval(
        "SELECT count(*) FROM console_sessions WHERE encode(id_hash, 'escape') LIKE $1",
        f"%{value}%",
    )
    status, _, _ = await c.post("/logout", {"_csrf": await c.csrf()})
    assert status == 303
    assert not await db.fetchval("SELECT count(*) FROM console_sessions WHERE id_hash = $1", digest)
    c.session.cookie_jar.update_cookies({"msggate_session": value})
    status, _, answer = await c.get("/accounts")
    assert status == 303 and answer.headers["Location"].startswith("/admin/login")


async def test_a_user_who_must_change_the_password_does_that_first(gateway, client):
    users = gateway.runner.app[CONSOLE].users
    name = unique("new")
    body = ConsoleUserIn(name=name, password=PASSWORD, role="operator")
    await users.create(body, must_change_password=True)
    c = client(gateway)
    assert await c.login(name) == 303
    status, _, answer = await c.get("/accounts")
    assert status == 303 and answer.headers["Location"] == "/admin/profile"
    token = await c.csrf()
    change = {"_csrf": token, "current_password": PASSWORD}
    status, page, _ = await c.post(
        "/profile/password", {**change, "new_password": "short", "new_password2": "short"}
    )
    assert status == 422 and 'id="new_password-error"' in page  # the service's rule, next to it
    new = "a brand new password"
    status, _, _ = await c.post(
        "/profile/password", {**change, "new_password": new, "new_password2": new}
    )
    assert status == 303
    assert (await c.get("/accounts"))[0] == 200


async def test_first_console_user_is_an_administrator_made_once(make_database, make_gateway):
    gw = await make_gateway(database_url=await make_database())
    users = ConsoleUsers(ConsoleStore(gw.services.store.pool))
    first = await users.first_user()
    assert first is not None and first[0] == "admin" and len(first[1]) >= 16
    assert await users.first_user() is None
    (admin,) = await users.list()
    assert admin.role == "admin" and admin.must_change_password
    login = await users.login("admin", first[1], "127.0.0.1", "test")
    assert login.session.user.name == "admin"
    stored = await gw.services.store.pool.fetchval("SELECT password_hash FROM console_users")
    assert stored.startswith("$argon2id$") and first[1] not in stored

    with pytest.raises(Conflict, match="last administrator"):
        await users.update(admin.id, "operator", "zh-CN", "Asia/Shanghai")
    with pytest.raises(Conflict):
        await users.delete(admin.id, acting_user_id=admin.id)
    other = await users.create(ConsoleUserIn(name=unique("ops"), password=PASSWORD))
    with pytest.raises(Conflict, match="last administrator"):
        await users.delete(admin.id, acting_user_id=other.id)
    for bad, field in (
        (ConsoleUserIn(name="x y", password=PASSWORD), "name"),
        (ConsoleUserIn(name=unique("u"), password="short"), "password"),
        (ConsoleUserIn(name=unique("u"), password=PASSWORD, role="root"), "role"),
        (ConsoleUserIn(name=unique("u"), password=PASSWORD, time_zone="Mars/Base"), "time_zone"),
        (ConsoleUserIn(name=unique("u"), password=PASSWORD, language="fr"), "language"),
    ):
        with pytest.raises(Invalid) as refused:
            await users.create(bad)
        assert refused.value.field == field


async def test_an_account_deliveries_wait_on_is_not_deleted_and_the_page_says_why(
    make_gateway, client
):
    gw = await make_gateway(dispatch=False)  # nothing sends: the delivery stays queued
    name = unique("busy")
    assert (await gw.post("/api/v1/accounts", {"channel": "email", "name": name, "sandbox": True}))[
        0
    ] == 201
    await gw.send(channel="email", account=name, recipients=["a@example.com"], text="hi")
    c = client(gw)
    assert await c.login(await add_console_user(gw, "operator")) == 303
    token = await c.csrf()
    status, page, _ = await c.post(f"/account/{name}/delete", {"_csrf": token})
    assert status == 200 and "确认删除" in page  # without script: the server asks first
    status, _, _ = await c.post(f"/account/{name}/delete", {"_csrf": token, "confirmed": "1"})
    assert status == 303
    _, page, _ = await c.get("/accounts")
    assert "无法删除" in page and "1 deliveries waiting" in page
    assert await gw.services.store.account_by_name(name) is not None


async def test_long_chinese_and_bad_inputs_are_refused_next_to_their_field(gateway, client):
    c = client(gateway)
    assert await c.login(await add_console_user(gateway, "admin")) == 303
    token = await c.csrf()
    status, page, _ = await c.post(
        "/access/new", {"_csrf": token, "name": "名" * 2000, "cidr": "127.0.0.1"}
    )
    assert status == 422
    assert re.search(r'id="name-error">最多 200 个字符', page)
    status, page, _ = await c.post("/access/new", {"_csrf": token, "name": "x", "cidr": "nope"})
    assert status == 422 and 'id="cidr-error"' in page and "not an IP address" in page
    status, page, _ = await c.get("/messages", params={"status": "bogus"})
    assert status == 200 and 'id="status-error"' in page
    status, page, _ = await c.get("/messages", params={"since": "yesterday"})
    assert status == 200 and 'id="since-error"' in page and "yyyy-mm-dd HH:mm:ss" in page
    status, page, _ = await c.post("/send", {"_csrf": token, "account": "", "recipients": ""})
    assert status == 422 and 'id="account-error"' in page
    status, page, _ = await c.post(
        "/users/new",
        {
            "_csrf": token,
            "name": "a b",
            "role": "admin",
            "password": PASSWORD,
            "password2": PASSWORD,
            "language": "zh-CN",
            "time_zone": "Asia/Shanghai",
        },
    )
    assert status == 422 and 'id="name-error"' in page


async def test_nul_in_a_form_or_search_is_refused_in_the_users_language_not_a_500(
    gateway, client, db
):
    c = client(gateway)
    assert await c.login(await add_console_user(gateway, "admin")) == 303
    token = await c.csrf()
    before = await db.fetchval("SELECT count(*) FROM access_rules")
    status, page, _ = await c.post(
        "/access/new", {"_csrf": token, "name": "a\x00b", "cidr": "127.0.0.1"}
    )
    assert status == 422 and "“name”包含空字符" in page, page
    assert await db.fetchval("SELECT count(*) FROM access_rules") == before
    for path, name in (
        ("/accounts", "q"),
        ("/access", "name"),
        ("/messages", "q"),
        ("/sandbox", "recipient"),
        ("/users", "q"),
    ):
        status, page, _ = await c.get(path, params={name: "\x00"})
        assert status == 422 and f"“{name}”包含空字符" in page, (path, status)


def test_catalogues_agree_and_cover_every_text_the_console_shows():
    zh, en = i18n.catalogue("zh-CN"), i18n.catalogue("en")
    assert set(zh) == set(en), set(zh) ^ set(en)
    used: set[str] = set()
    for path in Path(admin.__path__[0]).rglob("*"):
        if path.suffix in (".html", ".py"):
            text = path.read_text("utf-8")
            used |= set(re.findall(r"""(?:\b_|\bt)\(\s*["']([a-z_]+\.[A-Za-z0-9_.-]+)["']""", text))
            used |= set(re.findall(r'"((?:notice|menu|errors)\.[a-z_]+)"', text))
    missing = sorted(k for k in used if k not in en and not k.endswith("."))
    assert not missing, missing
    for group in ("status", "roles", "events"):
        assert any(k.startswith(group + ".") for k in zh)


def test_account_forms_come_from_each_channels_account_type():
    plugins = Plugins.load()
    assert plugins.channels
    t = i18n.translator("zh-CN")
    for channel in plugins.channels.values():
        specs = field_specs(channel)
        wire = {f.encode_name for f in msgspec.structs.fields(channel.account_type)}
        assert {s.name for s in specs} == wire, channel.name
        for spec in specs:
            if spec.secret and spec.kind in ("text", "password", "textarea"):
                assert spec.kind == "password", (channel.name, spec.name)
        assert not {
            k for k in initial_values(specs, None) if k in secret_fields(channel.account_type)
        }
        config, _ = decode(specs, {}, editing=True, t=t)
        for spec in specs:
            if spec.secret and spec.name in config:
                assert config[spec.name] == MASK  # an empty secret keeps the stored one


async def test_msggate_user_add_reads_the_password_from_stdin(
    gateway, database_url, secret_key, tmp_path, client
):
    name = unique("cli")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "user",
        "add",
        "--name",
        name,
        "--role",
        "admin",
        "--password-stdin",
        "--database-url",
        database_url,
        "--secret-key",
        secret_key,
        "--data-dir",
        str(tmp_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(PASSWORD.encode() + b"\n"), 60)
    assert process.returncode == 0, err.decode()
    assert name in out.decode() and PASSWORD not in out.decode() + err.decode()
    assert await client(gateway).login(name) == 303


def test_browser_tests_fail_rather_than_skip_without_chromium_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        missing_browser("Chromium is not installed")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        missing_browser("Chromium is not installed")


async def test_admin_revokes_an_api_key_and_deletes_a_relay_user_after_confirming(gateway, client):
    key_name = unique("key")
    await gateway.services.api_keys.create(key_name)
    user = unique("app")
    status, _ = await gateway.post(
        "/api/v1/relay-users", {"username": user, "password": "a-long-passw0rd!"}
    )
    assert status == 201
    c = client(gateway)
    assert await c.login(await add_console_user(gateway, "admin")) == 303
    token = await c.csrf()
    for path, field, value in (
        ("/apikeys/revoke", "name", key_name),
        ("/relay-users/delete", "username", user),
    ):
        status, page, _ = await c.post(path, {"_csrf": token, field: value})
        assert status == 200 and value in page  # the confirmation page names it
        status, _, _ = await c.post(path, {"_csrf": token, field: value, "confirmed": "1"})
        assert status == 303
    assert all(k.revoked_at for k in await gateway.services.api_keys.list() if k.name == key_name)
    status, users = await gateway.get("/api/v1/relay-users")
    assert user not in str(users)
    # A second revoke of the same key is refused, and the list page says so.
    status, _, _ = await c.post(
        "/apikeys/revoke", {"_csrf": token, "name": key_name, "confirmed": "1"}
    )
    assert status == 303
    _, page, _ = await c.get("/apikeys")
    assert "无法删除" in page


def _as_posted(specs, values: dict[str, str]) -> dict[str, str]:
    """Form values as a browser posts them: CRLF in text areas, unticked boxes left out."""
    posted = {}
    for spec in specs:
        value = values.get(spec.name, "")
        if spec.kind == "checkbox" and not value:
            continue
        posted[spec.name] = value.replace("\n", "\r\n") if "\n" in value else value
    return posted


async def test_moving_an_account_in_the_console_asks_for_its_password_again(
    gateway, smtp_server, client
):
    users = {"ops@example.com": "授权码-s3cret"}
    server = smtp_server(tls="starttls", users=users)
    name = unique("mail")
    await gateway.create_account("email", name, server.account_config())
    c = client(gateway)
    assert await c.login(await add_console_user(gateway, "operator")) == 303
    status, page, _ = await c.get(f"/account/{name}/edit")
    assert status == 200
    assert 'data-destinations="allow_insecure_auth ca_cert host port tls verify_tls"' in page
    assert "data-secret-kept" in page and "data-secrets-again" not in page
    channel = gateway.services.plugins.channel("email")
    specs = field_specs(channel)
    view = await gateway.services.accounts.get(name)
    form = {"_csrf": await c.csrf(), **_as_posted(specs, initial_values(specs, view.config))}
    # saved as it is (the CA text area comes back with CRLF): the stored password is kept
    status, page, _ = await c.post(f"/account/{name}/edit", form)
    assert status == 303, page
    async with recording() as attacker:
        status, page, _ = await c.post(
            f"/account/{name}/edit", {**form, "port": str(attacker.port)}
        )
        assert status == 422
        error = re.search(r'<p class="field-error" id="password-error">([^<]*)</p>', page)
        assert error and "端口已更改：请重新输入此密钥" in error.group(1), page
        password = re.search(r'<input id="f-password"[^>]*>', page).group(0)
        assert " required" in password and "留空则保持不变" not in password
        assert "data-secrets-again" in page
        assert attacker.connections == 0
    moved = smtp_server(tls="starttls", users=users)
    changes = {"port": str(moved.port), "ca_cert": moved.ca.pem, "password": "授权码-s3cret"}
    status, page, _ = await c.post(f"/account/{name}/edit", {**form, **changes})
    assert status == 303, page
    assert moved.connections == 1
    assert (await gateway.services.accounts.get(name)).config["port"] == moved.port
