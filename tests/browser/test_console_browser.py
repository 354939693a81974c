"""The console in headless Chromium (Playwright): sign in, a rule from the unmapped queue to a revision, a month closed.

Debian's /usr/bin/chromium is launched directly (browsers cannot be downloaded here; `.ci/run`
installs it with apt-get). Without Chromium or Playwright these tests skip locally and FAIL in CI
(CI=true), so a CI machine that lost its browser cannot pass them by skipping.
A screenshot of every view is saved under tests/artifacts/console/ (or $HOURBRIDGE_TEST_ARTIFACTS).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from sync.console.app import create_app
from sync.delivery import periods
from sync.store import revisions
from sync.store.db import make_engine, upgrade
from sync.store.tables import entries
from tests.console_fixtures import Clock, console_settings, new_token, seed

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("HOURBRIDGE_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = (
    Path(os.environ.get("HOURBRIDGE_TEST_ARTIFACTS", str(Path(__file__).resolve().parents[1] / "artifacts")))
    / "console"
)


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _browser_available() -> None:
    missing = _missing()
    if missing is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run in CI: {missing}")
    pytest.skip(f"browser tests skipped: {missing}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    """The console on a real HTTP server (uvicorn in a thread) over a seeded SQLite ledger."""

    def __init__(self, folder: Path) -> None:
        import uvicorn

        self.engine: Engine = make_engine(f"sqlite:///{folder / 'ledger.db'}")
        upgrade(self.engine)
        settings = console_settings(folder, self.engine)
        seed(self.engine, settings)
        self.admin_token = new_token(self.engine)
        self.clock = Clock(datetime.now(UTC))  # the console's clock, which a test may move on
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_app(settings, self.engine, clock=self.clock),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the console did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.engine.dispose()


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.chdir(tmp_path)  # no mappings.yaml here: the console edits the stored revisions
    with Served(tmp_path) as running:
        yield running


@pytest.fixture
def page(served: Served) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = browser.new_context(base_url=served.base, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.on(
            "console",
            lambda message: errors.append(message.text) if "Content Security Policy" in message.text else None,
        )
        try:
            yield tab
        finally:
            context.close()
            browser.close()
        assert errors == [], f"the page reported script or CSP errors: {errors}"


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def sign_in(page: Any, token: str) -> None:
    page.goto("/login")
    page.fill("input[name=token]", token)
    page.click("form[action='/login'] button[type=submit]")


def test_a_wrong_token_is_refused(page: Any, served: Served) -> None:
    sign_in(page, "hbc_not-a-token")
    page.wait_for_selector("#login-error")
    assert "not valid" in page.inner_text("#login-error")
    shot(page, "01-login-refused")
    page.goto("/")
    assert page.url.endswith("/login?next=/")


def test_an_idle_session_ends_on_the_sign_in_page_saying_so(page: Any, served: Served) -> None:
    from playwright.sync_api import expect

    sign_in(page, served.admin_token)
    expect(page.locator("#identity")).to_have_text("Ada (token 1)")
    served.clock.advance(minutes=31)
    page.click("nav >> text=Report")  # a boosted link: htmx follows the redirect to the sign-in page
    expect(page.locator("#login-notice")).to_contain_text("Your session expired after 30 minutes without activity")
    shot(page, "01-login-session-expired")
    # Signing in again from here goes back to the page that was asked for.
    page.fill("input[name=token]", served.admin_token)
    page.click("form[action='/login'] button[type=submit]")
    expect(page.locator("#identity")).to_have_text("Ada (token 1)")
    assert page.url.endswith("/report")


def test_rule_from_the_unmapped_queue_to_a_revision_and_the_report(page: Any, served: Served) -> None:
    from playwright.sync_api import expect

    page.goto("/login")
    shot(page, "02-login")
    sign_in(page, served.admin_token)
    expect(page.locator("#identity")).to_have_text("Ada (token 1)")
    expect(page.locator("#ledger")).to_contain_text("Unmapped: 2.00 h in 2 entries")
    shot(page, "03-overview")
    # htmx (bundled, under the strict CSP) boosts links: the page is swapped in place, not reloaded.
    assert page.evaluate("typeof htmx") == "object"
    page.evaluate("window.stillHere = true")

    page.click("nav >> text=Report")
    expect(page.locator("#report-totals")).to_contain_text("2.00 h unmapped")
    expect(page.locator('tr[data-code="APP"]')).to_have_count(0)
    assert page.evaluate("window.stillHere") is True
    assert page.url.endswith("/report")

    page.click("nav >> text=Unmapped")
    group = page.locator("#group-1")
    expect(group).to_contain_text("2.00 h · 2 entries")
    shot(page, "04-unmapped")
    group.locator("select[name=code]").select_option("APP")
    group.locator("input[name=rule_id]").fill("asana-mobile")
    group.locator("text=Make this a rule and preview").click()

    preview = page.locator("#preview")
    expect(preview).to_contain_text("2 of 4 live entries would change code")
    expect(page.locator("#moves")).to_contain_text("newly mapped")
    expect(page.locator("#moves")).to_contain_text("APP")
    shot(page, "05-preview")
    with served.engine.connect() as conn:
        assert revisions.count(conn) == 1  # the preview wrote nothing

    page.fill("#apply input[name=comment]", "Mobile time is the app")
    page.click("text=Apply as a new revision")
    expect(page.locator("#applied")).to_contain_text("Revision 2 stored")
    expect(page.locator("#revision-author")).to_have_text("Ada (token 1)")
    expect(page.locator("#revision-comment")).to_have_text("Mobile time is the app")
    shot(page, "06-revision")

    page.click("nav >> text=Report")
    expect(page.locator('tr[data-code="APP"]')).to_contain_text("2.00")
    expect(page.locator("#report-totals")).to_contain_text("0.00 h unmapped")
    shot(page, "07-report")
    with served.engine.connect() as conn:
        assert dict(conn.execute(select(entries.c.external_id, entries.c.code)).all())["app-1"] == "APP"

    page.click("nav >> text=Revisions")
    expect(page.locator("#revisions")).to_contain_text("Mobile time is the app")
    shot(page, "08-revisions")
    page.goto("/explain?entry=asana:ws1:app-1")
    expect(page.locator("#explanation")).to_contain_text("mapped to APP by rule 'asana-mobile'")
    shot(page, "09-explain")
    page.click("nav >> text=Rules")
    expect(page.locator("textarea[name=document]")).to_contain_text("asana-mobile")
    shot(page, "10-rules")
    page.click("nav >> text=Deliveries")
    shot(page, "11-deliveries")
    page.goto("/contractors?period=2026-11")
    expect(page.locator("#statements")).to_contain_text("Sam Lee")
    shot(page, "12-contractors")


def test_close_a_period_and_a_form_without_its_csrf_token_is_refused(page: Any, served: Served) -> None:
    from playwright.sync_api import expect

    sign_in(page, served.admin_token)
    expect(page.locator("#identity")).to_be_visible()
    page.click("nav >> text=Periods")
    page.fill("#close-form input[name=month]", "2026-11")
    page.fill("#close-form input[name=reason]", "November books done")
    page.click("#close-form button[type=submit]")
    expect(page.locator("#period-done")).to_contain_text("2026-11 closed")
    expect(page.locator("#period-history")).to_contain_text("Ada (token 1)")
    shot(page, "13-periods")

    # A form posted from elsewhere (no CSRF field, no htmx header): refused, and the month stays closed.
    page.evaluate(
        """() => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = "/periods/reopen";
            for (const [name, value] of [["month", "2026-11"], ["reason", "forged"]]) {
                const input = document.createElement("input");
                input.name = name; input.value = value; form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
        }"""
    )
    expect(page.locator("#error-message")).to_contain_text("security token is missing or out of date")
    shot(page, "14-csrf-refused")
    with served.engine.connect() as conn:
        assert periods.closed(conn).labels == {"2026-11"}


def test_the_read_only_role_may_preview_but_not_apply(page: Any, served: Served) -> None:
    from playwright.sync_api import expect

    sign_in(page, new_token(served.engine, role="viewer", label="Vic"))
    expect(page.locator("#identity")).to_have_text("Vic (token 2)")
    expect(page.locator(".role")).to_have_text("read-only")
    page.click("nav >> text=Rules")
    page.click("#editor button[type=submit]")
    expect(page.locator("#preview")).to_contain_text("0 of 4 live entries would change code")
    expect(page.locator("#apply")).to_have_count(0)
    page.click("nav >> text=Periods")
    expect(page.locator("#close-form")).to_have_count(0)
    shot(page, "15-read-only")
