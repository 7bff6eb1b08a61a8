# ruff: noqa: F811  (fixtures imported from tests.browser_fixtures and tests.outbound_fixtures)
"""The web console in real headless Chromium against a real gateway, PostgreSQL and SMTP.

Each test saves screenshots under tests/artifacts/ (console_*.png).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from tests.browser_fixtures import (  # noqa: F401
    ARTIFACTS,
    PASSWORD,
    VIEWPORT,
    ConsoleTab,
    browser,
    console,
)
from tests.gateway_fixtures import unique
from tests.outbound_fixtures import (  # noqa: F401
    CALLER,
    COMPANY,
    KEY_ID,
    KEY_SECRET,
    WRONG_SECRET,
    outbound,
    outbound_fake,
)
from tests.processes import free_port, start_gateway

SMTP_PASSWORD = "授权码-s3cret"


async def wait_for_text(tab: ConsoleTab, text: str, timeout: float = 20.0) -> None:
    """Reload the page until ``text`` shows (a delivery finishing in the background)."""
    deadline = time.monotonic() + timeout
    while text not in await tab.text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not shown within {timeout}s:\n{await tab.text()}")
        await asyncio.sleep(0.3)
        await tab.page.reload()


async def test_login_refuses_a_wrong_password_then_lets_the_user_in(gateway, console):
    tab = await console(gateway, "operator")
    await tab.goto("/messages")
    assert "/admin/login" in tab.page.url  # no session: the login page, remembering where to
    await tab.page.fill("#f-name", tab.user)
    await tab.page.fill("#f-password", "not the password")
    await tab.click("form.stack button[type=submit]")
    assert "账号或密码错误" in await tab.text(".login-card")
    assert await tab.page.input_value("#f-password") == ""  # never rendered back
    await tab.shot("console_login_wrong_password")

    await tab.page.fill("#f-password", tab.password)
    await tab.click("form.stack button[type=submit]")
    assert tab.page.url.endswith("/admin/messages")  # back where the visitor wanted to go
    assert await tab.page.inner_text("h1") == "消息日志"
    cookie = next(c for c in await tab.page.context.cookies() if c["name"] == "msggate_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/admin"
    assert not cookie["secure"]  # plain HTTP here; over TLS it is Secure

    await tab.menu("概览")
    assert await tab.page.inner_text("h1") == "概览"
    nav = await tab.text("nav.nav")
    for entry in (
        "消息推送",
        "分级消息推送",
        "智能外呼",
        "系统设置",
        "账户设置",
        "访问控制",
        "智能外呼账户管理",
        "费用管理",
        "系统总览",
        "费用账单",
        "费用明细",
        "收支明细",
    ):
        assert entry in nav
    coming = tab.page.locator("nav .nav-head.disabled span:text-is('消息推送')")
    assert await coming.count() == 1  # a later issue's screen: shown, not faked
    await tab.shot("console_home")

    await tab.click("button:text-is('退出')")
    assert "您已退出登录" in await tab.text(".login-card")
    await tab.goto("/")
    assert "/admin/login" in tab.page.url


async def test_email_account_is_checked_against_the_smtp_server_535_next_to_the_password(
    gateway, console, smtp_server
):
    server = smtp_server(tls="starttls", users={"ops@example.com": SMTP_PASSWORD})
    tab = await console(gateway, "operator")
    await tab.login()
    await tab.menu("系统设置", "账户设置")
    await tab.click("a:text-is('创建')")
    await tab.click("a.type-card[data-channel=email]")
    assert await tab.page.inner_text("h1") == "新建发信账户：邮箱"
    name = unique("运维邮箱")
    await tab.page.fill("#f-name", name)
    await tab.page.fill("#f-from", "运维中心 <ops@example.com>")
    await tab.page.fill("#f-password", "wrong-password")
    await tab.page.fill("#f-host", server.host)
    await tab.page.fill("#f-port", str(server.port))
    await tab.page.select_option("#f-tls", "starttls")
    await tab.page.click("details.more summary")
    await tab.page.fill("#f-ca_cert", server.ca.pem)
    await tab.click("button:text-is('确定')")

    error = await tab.page.inner_text("#password-error")
    assert "535" in error  # the server's own reason, next to the password field
    assert await tab.page.input_value("#f-password") == ""
    assert "wrong-password" not in await tab.page.content()
    await tab.shot("console_account_wrong_password")

    await tab.page.fill("#f-password", SMTP_PASSWORD)
    await tab.click("button:text-is('确定')")
    assert "已创建并通过校验" in await tab.text()
    page = await tab.page.content()
    assert SMTP_PASSWORD not in page and "s3cret" not in page
    assert "已设置" in await tab.text()  # the password: set, never shown
    assert server.messages == []  # checking sends no mail
    await tab.shot("console_account_view")

    await tab.menu("账户设置")
    await tab.page.fill("#q", "ops@example.com")
    await tab.click("button:text-is('查询')")
    row = tab.page.locator("tbody tr", has_text=name)
    assert await row.count() == 1
    assert "运维中心 <ops@example.com>" in await row.inner_text()
    await tab.shot("console_accounts")

    # edit: the password stays write-only; left empty it keeps the stored one (checked again)
    await tab.click(row.locator("a:text-is('编辑')"))
    assert await tab.page.input_value("#f-password") == ""
    assert await tab.page.get_attribute("#f-password", "placeholder") == "已保存（留空则保持不变）"
    await tab.page.fill("#f-from", "值班 <ops@example.com>")
    await tab.click("button:text-is('确定')")
    assert "已保存" in await tab.text() and "值班 <ops@example.com>" in await tab.text()

    await tab.click(".page-actions button:text-is('删除')")  # confirm() is accepted
    assert tab.dialogs and name in tab.dialogs[-1]
    assert f"发信账户“{name}”已删除" in await tab.text()


async def test_access_rule_from_the_console_makes_the_api_refuse_other_addresses(
    make_database, make_gateway, console
):
    gw = await make_gateway(database_url=await make_database())  # rules apply to every node
    tab = await console(gw, "admin")
    await tab.login()
    await tab.menu("系统设置", "访问控制")
    assert "未限制地址" in await tab.text()
    await tab.click("a:text-is('创建')")
    await tab.page.fill("#f-name", "办公网")
    await tab.page.fill("#f-cidr", "10.0.0.0/8")
    await tab.click("button:text-is('确定')")
    assert "127.0.0.1" in await tab.page.inner_text("#cidr-error")  # would shut ourselves out
    await tab.shot("console_access_lockout_refused")

    await tab.page.fill("#f-name", "本机")
    await tab.page.fill("#f-cidr", "127.0.0.1")
    await tab.click("button:text-is('确定')")
    assert "访问控制“本机”（127.0.0.1/32）已添加" in await tab.text()
    assert "已启用地址限制" in await tab.text()
    await tab.shot("console_access")

    headers = {"Authorization": f"Bearer {gw.api_key}"}
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=other) as session:
        async with session.get(gw.url + "/api/v1/accounts", headers=headers) as answer:
            assert answer.status == 403
            body = await answer.json()
        assert "127.0.0.2" in body["error"]["message"]
        assert (await gw.get("/api/v1/accounts"))[0] == 200  # 127.0.0.1 is in the list

        await tab.page.fill("#f-ip", "127.0.0.1")  # search by an address a rule covers
        await tab.click("button:text-is('查询')")
        assert await tab.page.locator("tbody tr", has_text="本机").count() == 1
        await tab.page.fill("#f-ip", "192.0.2.1")
        await tab.click("button:text-is('查询')")
        assert await tab.page.locator("tbody tr").count() == 0

        await tab.click("a:text-is('重置')")
        await tab.click("tbody button:text-is('删除')")
        assert "已删除" in await tab.text()
        async with session.get(gw.url + "/api/v1/accounts", headers=headers) as answer:
            assert answer.status == 200  # the list is empty again: no address restriction


async def test_outbound_account_is_added_inline_and_searched_by_company(gateway, console, outbound):
    tab = await console(gateway, "operator")
    await tab.login()
    await tab.menu("系统设置", "智能外呼账户管理")
    add = tab.page.locator("tr.add-row")
    await add.locator("input[name=company_name]").fill(COMPANY)
    await add.locator("input[name=access_key_id]").fill(KEY_ID)
    await add.locator("input[name=access_key_secret]").fill(WRONG_SECRET)
    await add.locator("input[name=caller_number]").fill(CALLER)
    await tab.page.click("tr.add-more summary")
    await tab.page.fill("#ob-endpoint", outbound.url)
    await tab.click("button:text-is('添加')")
    refused = await tab.text(".table-card")
    assert "签名" in refused or "Signature" in refused or "secret" in refused.lower(), refused
    assert WRONG_SECRET not in await tab.page.content()
    await tab.shot("console_outbound_wrong_secret")

    await tab.page.locator("tr.add-row input[name=access_key_secret]").fill(KEY_SECRET)
    await tab.click("button:text-is('添加')")
    assert f"智能外呼账户“{COMPANY}”已添加" in await tab.text()
    row = tab.page.locator("tbody tr", has_text=KEY_ID)
    assert await row.count() == 1
    assert CALLER in await row.inner_text() and "••••••••" in await row.inner_text()
    assert KEY_SECRET not in await tab.page.content()
    await tab.shot("console_outbound")

    await tab.page.fill("#company", COMPANY[2:4])  # part of the company name
    await tab.click("button:text-is('查询')")
    assert await tab.page.locator("tbody tr", has_text=KEY_ID).count() == 1
    await tab.page.fill("#company", "没有这家公司")
    await tab.click("button:text-is('查询')")
    assert await tab.page.locator("tbody tr", has_text=KEY_ID).count() == 0

    await tab.click("a:text-is('重置')")
    await tab.click(tab.page.locator("tbody tr", has_text=KEY_ID).locator("button:text-is('删除')"))
    assert f"智能外呼账户“{COMPANY}”已删除" in await tab.text()


async def test_message_sent_from_the_console_is_followed_to_the_sandbox(gateway, console):
    tab = await console(gateway, "operator")
    await tab.login()
    await tab.menu("账户设置")
    await tab.click("a:text-is('创建')")
    await tab.click("a.type-card[data-channel=email]")
    account = unique("sandbox")
    await tab.page.fill("#f-name", account)
    await tab.page.check("#f-sandbox")
    await tab.click("button:text-is('确定')")
    assert "沙箱" in await tab.text()

    await tab.menu("发送测试消息")
    await tab.page.select_option("#f-account", account)
    subject = unique("磁盘告警")
    await tab.page.fill("#f-subject", subject)
    await tab.page.fill("#f-recipients", "zhangsan@example.com\nlisi@example.com")
    await tab.page.fill("#f-text", "使用率 95%，请尽快处理。")
    await tab.shot("console_send")
    await tab.click("button:text-is('确认发送')")
    assert "消息已受理（2 个投递）" in await tab.text()
    await wait_for_text(tab, "服务商答复")
    detail = await tab.text()
    assert "控制台" in detail and tab.user in detail  # ingress: the console and who sent it
    for step in ("已受理", "开始尝试", "已发送", "recorded in the sandbox"):
        assert step in detail
    assert await tab.page.locator(".delivery[data-status=sent]").count() == 2
    await tab.shot("console_message_detail")

    api = await gateway.send(
        channel="email",
        account=account,
        recipients=["wangwu@example.com"],
        subject=subject + " (API)",
        text="via HTTP",
    )
    await gateway.wait_done(api["id"])

    await tab.menu("消息日志")
    await tab.page.fill("#f-q", subject)
    await tab.page.select_option("#f-status", "sent")
    await tab.click("button:text-is('查询')")
    rows = tab.page.locator("tbody tr")
    assert await rows.count() == 2, await tab.text()
    assert "HTTP" in await rows.nth(0).inner_text()  # the newest first
    await tab.shot("console_messages")
    await tab.click(rows.nth(0).locator("a").first)
    assert "API 密钥" in await tab.text() and "wangwu@example.com" in await tab.text()

    await tab.menu("沙箱发件箱")
    await tab.page.select_option("#account", account)
    await tab.click("button:text-is('查询')")
    recorded = await tab.text(".table-card")
    for recipient in ("zhangsan@example.com", "lisi@example.com", "wangwu@example.com"):
        assert recipient in recorded
    await tab.shot("console_sandbox")


async def test_language_switches_to_english_and_stays_with_the_user(gateway, console):
    tab = await console(gateway, "admin")
    await tab.login()
    assert await tab.page.get_attribute("html", "lang") == "zh-CN"
    await tab.menu("账户设置")
    await tab.click("button.lang:text-is('English')")
    assert tab.page.url.endswith("/admin/accounts")  # the same screen, now in English
    assert await tab.page.get_attribute("html", "lang") == "en"
    nav = await tab.text("nav.nav")
    for entry in ("System settings", "Sender accounts", "Access control", "Message log"):
        assert entry in nav
    assert await tab.page.inner_text("h1") == "Sender accounts"
    await tab.shot("console_english")

    await tab.click("button:text-is('Log out')")
    await tab.page.context.clear_cookies()  # a new browser: the language comes with the user
    await tab.login()
    assert await tab.page.inner_text("h1") == "Overview"
    await tab.click("button.lang:text-is('中文')")
    assert await tab.page.inner_text("h1") == "概览"


async def test_read_only_user_sees_the_screens_but_cannot_change_anything(gateway, console):
    tab = await console(gateway, "readonly")
    await tab.login()
    await tab.menu("账户设置")
    assert await tab.page.locator("a:text-is('创建')").count() == 0
    assert await tab.page.locator("button:text-is('删除')").count() == 0
    assert "控制台用户" not in await tab.text("nav.nav")
    assert "发送测试消息" not in await tab.text("nav.nav")
    token = await tab.csrf()
    answer = await tab.page.request.post(
        tab.url("/accounts/new/email"), form={"_csrf": token, "name": "x", "sandbox": "on"}
    )
    assert answer.status == 403
    assert "只读" in await answer.text()
    await tab.goto("/access/new")
    assert "您的角色（只读）不能执行此操作" in await tab.text()
    await tab.shot("console_readonly_refused")


async def test_html_and_script_in_fields_are_shown_as_text_never_run(gateway, console):
    tab = await console(gateway, "admin")
    await tab.login()
    script = '<script>alert("x")</script>'
    await tab.menu("访问控制")
    await tab.click("a:text-is('创建')")
    await tab.page.fill("#f-name", script)
    await tab.page.fill("#f-cidr", "127.0.0.0/8")
    await tab.click("button:text-is('确定')")

    await tab.menu("账户设置")
    await tab.click("a:text-is('创建')")
    await tab.click("a.type-card[data-channel=email]")
    account = "<img src=x onerror=alert(1)>" + unique("")
    await tab.page.fill("#f-name", account)
    await tab.page.check("#f-sandbox")
    await tab.click("button:text-is('确定')")

    await tab.menu("发送测试消息")
    await tab.page.select_option("#f-account", account)
    long_text = ("告警<b>加粗</b>&amp;" * 200)[:2000]
    await tab.page.fill("#f-subject", script)
    await tab.page.fill("#f-recipients", "ops@example.com")
    await tab.page.fill("#f-text", long_text)
    await tab.click("button:text-is('确认发送')")
    shown = await tab.text()
    assert script in shown and account in shown and long_text[:60] in shown
    assert await tab.page.locator("main script, main img, main b").count() == 0
    await tab.shot("console_escaping")

    await tab.menu("访问控制")
    assert script in await tab.text(".table-card")
    await tab.page.fill("#f-name", "名" * 2000)  # a 2,000-character search is just no match
    await tab.click("button:text-is('查询')")
    assert await tab.page.locator("tbody tr").count() == 0
    await tab.goto("/access")
    await tab.click(tab.page.locator("tbody tr", has_text=script).locator("button"))
    assert tab.dialogs == [f"确定删除访问控制“{script}”（127.0.0.0/8）吗？"]  # only confirm()


async def test_a_form_posted_from_another_site_is_refused(gateway, console, unused_tcp_port):
    tab = await console(gateway, "admin")
    await tab.login()
    name = unique("csrf")

    async def attacker(request: web.Request) -> web.Response:
        html = (
            f'<form id="f" method="post" action="{tab.url("/apikeys")}">'
            f'<input name="name" value="{name}"><button>go</button></form>'
        )
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", attacker)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        await tab.page.goto(f"http://127.0.0.1:{unused_tcp_port}/")
        await tab.click("button")
        assert "表单已过期或来自其他站点" in await tab.text()
        await tab.shot("console_csrf_refused")
    finally:
        await runner.cleanup()
    keys = await gateway.services.api_keys.list()
    assert name not in [k.name for k in keys]


async def test_first_serve_prints_an_administrator_who_must_change_the_password(
    make_database, browser, tmp_path
):
    port = free_port()
    env = {
        "MSGGATE_DATABASE_URL": await make_database(),
        "MSGGATE_DATA_DIR": str(tmp_path / "data"),
        "MSGGATE_HTTP_PORT": str(port),
        "MSGGATE_HTTP_HOST": "127.0.0.1",
    }
    served = await start_gateway(env=env)
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        first = served.first_run()
        name, password = first["console_user"], first["console_password"]
        assert f"console  : http://127.0.0.1:{port}/admin/" in "\n".join(served.lines)
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{port}/")  # the root leads to the console
        await page.fill("#f-name", name)
        await page.fill("#f-password", password)
        async with page.expect_navigation():
            await page.click("form.stack button[type=submit]")
        assert page.url.endswith("/admin/profile")
        assert "请先修改初始密码" in await page.inner_text("main")
        await page.fill("#f-current_password", password)
        await page.fill("#f-new_password", "my own admin password")
        await page.fill("#f-new_password2", "my own admin password")
        async with page.expect_navigation():
            await page.click("button:text-is('修改密码')")
        assert "密码已修改" in await page.inner_text("main")
        await page.goto(f"http://127.0.0.1:{port}/admin/accounts")
        assert await page.inner_text("h1") == "账户设置"
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "console_first_run_accounts.png"))
    finally:
        await context.close()
        await served.stop()
    again = await start_gateway(env=env)  # a second start creates no one and prints no password
    try:
        await again.wait_line(r"API key  :")  # printed after where the login would be
        assert "login    :" not in "\n".join(again.lines)
    finally:
        await again.stop()
