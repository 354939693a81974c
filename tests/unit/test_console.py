"""Every console route through Starlette's test client: sign-in, roles, CSRF, GitOps, previews, parent checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from sync.console.app import create_app
from sync.delivery import periods
from sync.settings import Settings
from sync.store import revisions
from sync.store.tables import console_sessions, console_sign_in_attempts, console_tokens, entries, outbox, period_events
from tests.console_fixtures import (
    DOCUMENT,
    NOW,
    Clock,
    console_settings,
    csrf_of,
    form_value,
    new_token,
    seed,
    try_sign_in,
)


class Browser:
    """A test client with the console's sign-in and form helpers."""

    def __init__(self, client: TestClient, engine: Engine, settings: Settings, clock: Clock) -> None:
        self.client = client
        self.engine = engine
        self.settings = settings
        self.clock = clock

    def sign_in(self, token: str) -> None:
        page = self.client.get("/login")
        response = self.client.post(
            "/login", data={"token": token, "csrf_token": csrf_of(page.text), "next": "/"}, follow_redirects=False
        )
        assert response.status_code == 303, response.text

    def csrf(self, path: str = "/") -> str:
        return csrf_of(self.client.get(path).text)

    def post(self, path: str, data: dict[str, str], *, csrf_from: str = "/", **kwargs: object):
        return self.client.post(path, data={**data, "csrf_token": self.csrf(csrf_from)}, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_mapping_file_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default HOURBRIDGE_MAPPINGS_FILE is mappings.yaml in the working folder: none there, no GitOps.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def browser(engine: Engine, tmp_path: Path) -> Iterator[Browser]:
    settings = console_settings(tmp_path, engine)
    seed(engine, settings)
    clock = Clock()
    with TestClient(create_app(settings, engine, clock=clock)) as client:
        yield Browser(client, engine, settings, clock)


@pytest.fixture
def admin(browser: Browser) -> Browser:
    browser.sign_in(new_token(browser.engine))
    return browser


@pytest.fixture
def viewer(browser: Browser) -> Browser:
    browser.sign_in(new_token(browser.engine, role="viewer", label="Vic"))
    return browser


PAGES = ["/", "/unmapped", "/rules", "/revisions", "/revisions/1", "/explain", "/report", "/periods", "/deliveries",
         "/contractors"]  # fmt: skip


# --------------------------------------------------------------------------- sign-in


@pytest.mark.parametrize("path", PAGES)
def test_every_page_needs_a_sign_in(browser: Browser, path: str) -> None:
    response = browser.client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}"


def test_a_wrong_token_is_refused_and_opens_no_session(browser: Browser) -> None:
    new_token(browser.engine)
    page = browser.client.get("/login")
    response = browser.client.post("/login", data={"token": "hbc_wrong", "csrf_token": csrf_of(page.text)})
    assert response.status_code == 401
    assert "not valid" in response.text
    assert "hb_console" not in browser.client.cookies
    with browser.engine.connect() as conn:
        assert conn.execute(select(console_sessions)).all() == []
    assert browser.client.get("/", follow_redirects=False).status_code == 303


def test_the_sign_in_form_needs_its_csrf_token(browser: Browser) -> None:
    token = new_token(browser.engine)
    browser.client.get("/login")
    response = browser.client.post("/login", data={"token": token, "csrf_token": "forged"})
    assert response.status_code == 403
    assert browser.client.get("/", follow_redirects=False).status_code == 303


def test_tokens_are_stored_hashed_and_sessions_too(admin: Browser) -> None:
    with admin.engine.connect() as conn:
        stored = conn.execute(select(console_tokens.c.token_hash)).scalars().all()
        sessions = conn.execute(select(console_sessions.c.id_hash)).scalars().all()
    cookie = admin.client.cookies["hb_console"]
    assert len(stored) == 1 and len(stored[0]) == 64 and not stored[0].startswith("hbc_")
    assert cookie not in sessions and len(sessions) == 1


@pytest.mark.parametrize("path", PAGES)
def test_every_page_shows_for_an_admin(admin: Browser, path: str) -> None:
    response = admin.client.get(path)
    assert response.status_code == 200, response.text
    assert "Ada (token 1)" in response.text
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_shows_read_only_to_a_viewer(viewer: Browser, path: str) -> None:
    response = viewer.client.get(path)
    assert response.status_code == 200
    assert "read-only" in response.text
    # No form that changes anything is offered to the read-only role.
    for action in ('action="/rules/apply"', 'action="/unmapped/rule"', 'action="/periods/close"', "/deliveries/retry"):
        assert action not in response.text


def test_sessions_expire(browser: Browser) -> None:
    browser.sign_in(new_token(browser.engine))
    assert browser.client.get("/", follow_redirects=False).status_code == 200
    browser.clock.advance(minutes=browser.settings.console.session_minutes + 1)
    assert browser.client.get("/", follow_redirects=False).status_code == 303


def last_seen(engine: Engine) -> datetime:
    with engine.connect() as conn:
        value = conn.execute(select(console_sessions.c.last_seen_at)).scalar_one()
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_an_idle_session_is_refused_and_sent_to_sign_in_saying_it_expired(admin: Browser) -> None:
    assert admin.settings.console.idle_minutes == 30
    admin.clock.advance(minutes=29)
    assert admin.client.get("/periods", follow_redirects=False).status_code == 200
    admin.clock.advance(minutes=30)
    response = admin.client.get("/periods", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/periods&ended=idle"
    assert "hb_console" not in admin.client.cookies  # the cookie is cleared too
    with admin.engine.connect() as conn:
        assert conn.execute(select(console_sessions)).all() == []
    login = admin.client.get(response.headers["location"])
    assert "Your session expired after 30 minutes without activity" in login.text
    assert form_value(login.text, "next") == "/periods"


def test_an_idle_session_cannot_post_a_form(admin: Browser) -> None:
    csrf = admin.csrf("/periods")
    admin.clock.advance(minutes=31)
    response = admin.client.post("/periods/close", data={"month": "2026-10", "csrf_token": csrf})
    assert response.status_code == 401
    assert "without activity" in response.text and "Nothing was changed" in response.text
    with admin.engine.connect() as conn:
        assert periods.closed(conn).labels == frozenset()


def test_requests_keep_a_session_alive_past_the_idle_window(admin: Browser) -> None:
    for _ in range(6):  # two hours in all, four times the idle timeout
        admin.clock.advance(minutes=20)
        assert admin.client.get("/", follow_redirects=False).status_code == 200
    admin.clock.advance(minutes=30)
    assert admin.client.get("/", follow_redirects=False).headers["location"].endswith("ended=idle")


def test_the_last_request_is_written_at_most_once_a_minute(admin: Browser) -> None:
    assert last_seen(admin.engine) == NOW
    admin.clock.advance(seconds=50)
    admin.client.get("/")
    assert last_seen(admin.engine) == NOW  # not written: too soon
    admin.clock.advance(seconds=20)
    admin.client.get("/")
    assert last_seen(admin.engine) == NOW + timedelta(seconds=70)


def test_an_active_session_still_ends_at_its_maximum_age(admin: Browser) -> None:
    minutes = admin.settings.console.session_minutes
    for _ in range(minutes // 20 - 1):
        admin.clock.advance(minutes=20)
        assert admin.client.get("/", follow_redirects=False).status_code == 200
    admin.clock.advance(minutes=20)
    response = admin.client.get("/", follow_redirects=False)
    assert response.headers["location"] == "/login?next=/&ended=expired"
    assert "Your session expired (sign-ins last 480 minutes)" in admin.client.get(response.headers["location"]).text


def test_the_sign_in_page_shows_no_made_up_notice(browser: Browser) -> None:
    page = browser.client.get("/login?ended=<script>")
    assert "login-notice" not in page.text and "<script>" not in page.text


def test_the_sixth_token_from_an_address_is_refused_with_429_even_when_right(browser: Browser) -> None:
    token = new_token(browser.engine)
    for _ in range(5):
        assert try_sign_in(browser.client, "hbc_wrong").status_code == 401
    browser.clock.advance(minutes=4, seconds=30)
    refused = try_sign_in(browser.client, token)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str((15 - 4) * 60 - 30)  # the rest of the window
    assert "too many failed sign-ins" in refused.text
    assert "hb_console" not in browser.client.cookies
    with browser.engine.connect() as conn:
        assert conn.execute(select(console_sessions)).all() == []
        # The token was not looked at: its last use is not recorded.
        assert conn.execute(select(console_tokens.c.last_used_at)).scalar_one() is None
    # Once the window has passed, the right token signs in.
    browser.clock.advance(minutes=10, seconds=30)
    assert try_sign_in(browser.client, token).status_code == 303


def test_a_successful_sign_in_clears_the_addresss_count(browser: Browser) -> None:
    token = new_token(browser.engine)
    for _ in range(4):
        assert try_sign_in(browser.client, "hbc_wrong").status_code == 401
    assert try_sign_in(browser.client, token).status_code == 303
    with browser.engine.connect() as conn:
        assert conn.execute(select(console_sign_in_attempts)).all() == []
    # A fresh count: five more failures are allowed before the limit.
    for _ in range(5):
        assert try_sign_in(browser.client, "hbc_wrong").status_code == 401
    assert try_sign_in(browser.client, "hbc_wrong").status_code == 429


def test_the_limit_is_per_address_and_its_numbers_are_settings(engine: Engine, tmp_path: Path) -> None:
    settings = console_settings(tmp_path, engine, sign_in_limit=2, sign_in_window_minutes=5)
    app = create_app(settings, engine, clock=Clock())
    token = new_token(engine)
    with TestClient(app, client=("192.0.2.1", 1)) as first, TestClient(app, client=("192.0.2.2", 1)) as second:
        for _ in range(2):
            assert try_sign_in(first, "hbc_wrong").status_code == 401
        limited = try_sign_in(first, "hbc_wrong")
        assert limited.status_code == 429 and limited.headers["retry-after"] == "300"
        assert try_sign_in(second, token).status_code == 303


def test_the_limit_holds_across_console_processes(engine: Engine, tmp_path: Path) -> None:
    settings = console_settings(tmp_path, engine)
    clock = Clock()
    token = new_token(engine)
    # Two applications over one database, as two console processes behind a load balancer.
    with (
        TestClient(create_app(settings, engine, clock=clock)) as one,
        TestClient(create_app(settings, engine, clock=clock)) as two,
    ):
        for client in (one, two, one, two, one):
            assert try_sign_in(client, "hbc_wrong").status_code == 401
        assert try_sign_in(two, token).status_code == 429


def test_the_submitted_token_is_never_logged(browser: Browser) -> None:
    token = new_token(browser.engine)
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            try_sign_in(browser.client, token + "x")
        try_sign_in(browser.client, token)
    assert [line["event"] for line in logs] == ["console.sign_in_refused"] * 5 + ["console.sign_in_limited"]
    assert logs[-1]["address"] == "testclient" and logs[-1]["retry_after"] == 900
    assert token not in repr(logs)


def test_sign_out_ends_the_session(admin: Browser) -> None:
    response = admin.post("/logout", {}, follow_redirects=False)
    assert response.status_code == 303
    with admin.engine.connect() as conn:
        assert conn.execute(select(console_sessions)).all() == []


def test_a_revoked_token_signs_in_no_more(browser: Browser) -> None:
    from sync.store import console as console_store

    token = new_token(browser.engine)
    with browser.engine.begin() as conn:
        assert console_store.revoke_token(conn, 1, NOW)
    page = browser.client.get("/login")
    assert browser.client.post("/login", data={"token": token, "csrf_token": csrf_of(page.text)}).status_code == 401


def test_next_never_leaves_the_console(browser: Browser) -> None:
    token = new_token(browser.engine)
    page = browser.client.get("/login")
    response = browser.client.post(
        "/login",
        data={"token": token, "csrf_token": csrf_of(page.text), "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_healthz_needs_no_sign_in(browser: Browser) -> None:
    response = browser.client.get("/healthz")
    assert response.status_code == 200 and response.text == "ok\n"


def test_healthz_fails_on_an_unmigrated_store(tmp_path: Path) -> None:
    from sync.store.db import make_engine

    bare = make_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    with TestClient(create_app(console_settings(tmp_path, bare), bare)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert "not ready" in response.text


def test_static_assets_are_bundled(browser: Browser) -> None:
    htmx = browser.client.get("/static/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text[:200] and "Zero-Clause BSD" in htmx.text[:200]
    assert browser.client.get("/static/console.css").status_code == 200


# --------------------------------------------------------------------------- CSRF and roles on every form

FORMS = {
    "/logout": {},
    "/unmapped/rule": {"rule": "id: x\nmatch: {source: asana, project: Mobile}\n", "code": "APP", "rule_id": "x"},
    "/rules/preview": {"document": DOCUMENT, "parent": "1"},
    "/rules/apply": {"document": DOCUMENT, "parent": "1", "comment": "c"},
    "/periods/close": {"month": "2026-10"},
    "/periods/reopen": {"month": "2026-10", "reason": "r"},
    "/deliveries/retry": {"sink": "quickbooks"},
}


@pytest.mark.parametrize("path", sorted(FORMS))
def test_every_form_without_its_csrf_token_is_refused(admin: Browser, path: str) -> None:
    before = _state(admin.engine)
    response = admin.client.post(path, data=FORMS[path])
    assert response.status_code == 403
    assert "security token" in response.text
    forged = admin.client.post(path, data={**FORMS[path], "csrf_token": "x" * 43})
    assert forged.status_code == 403
    assert _state(admin.engine) == before
    assert admin.client.get("/", follow_redirects=False).status_code == 200  # still signed in


@pytest.mark.parametrize("path", sorted(set(FORMS) - {"/logout", "/rules/preview"}))
def test_the_read_only_role_changes_nothing(viewer: Browser, path: str) -> None:
    before = _state(viewer.engine)
    response = viewer.post(path, FORMS[path])
    assert response.status_code == 403
    assert "read-only role" in response.text
    assert _state(viewer.engine) == before


def test_a_post_without_a_session_is_refused(browser: Browser) -> None:
    response = browser.client.post("/periods/close", data={"month": "2026-11", "csrf_token": "x"})
    assert response.status_code == 401


def test_the_htmx_header_carries_the_csrf_token(admin: Browser) -> None:
    token = admin.csrf()
    response = admin.client.post(
        "/periods/close", data={"month": "2026-10", "reason": "done"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200
    with admin.engine.connect() as conn:
        assert periods.closed(conn).labels == {"2026-10"}


def _state(engine: Engine) -> tuple[object, ...]:
    with engine.connect() as conn:
        return (
            revisions.count(conn),
            sorted(periods.closed(conn).labels),
            conn.execute(select(period_events.c.id)).all(),
            conn.execute(select(outbox.c.id)).all(),
            conn.execute(select(entries.c.code, entries.c.mapping_revision).order_by(entries.c.id)).all(),
        )


# --------------------------------------------------------------------------- the unmapped queue to a revision


def test_unmapped_queue_groups_like_the_cli(admin: Browser) -> None:
    from sync.admin.unmapped import unmapped_queue

    page = admin.client.get("/unmapped").text
    groups = unmapped_queue(admin.engine, None)
    assert len(groups) == 1 and groups[0].value == "Mobile"
    assert "#1 2.00 h · 2 entries · 2 people · asana" in page
    assert "asana:ws1:app-1" in page
    assert 'action="/unmapped/rule"' in page


def test_a_suggestion_becomes_a_previewed_draft_then_a_revision_that_moves_hours(admin: Browser) -> None:
    queue = admin.client.get("/unmapped").text
    rule = form_value(queue, "rule")
    draft = admin.post(
        "/unmapped/rule", {"rule": rule, "rule_id": "asana-mobile", "code": "APP"}, csrf_from="/unmapped"
    )
    assert draft.status_code == 200, draft.text
    assert "newly mapped" in draft.text
    assert "<td>(unmapped)</td><td>APP</td><td>2</td><td>2.00</td>" in draft.text
    document = form_value(draft.text, "document")
    assert document.startswith(DOCUMENT) and "id: asana-mobile" in document and "code: APP" in document
    with admin.engine.connect() as conn:
        assert revisions.count(conn) == 1  # the preview wrote nothing

    report_before = admin.client.get("/report?period=2026-11").text
    assert 'data-code="APP"' not in report_before

    applied = admin.post(
        "/rules/apply",
        {"document": document, "parent": form_value(draft.text, "parent"), "comment": "Mobile is APP"},
        follow_redirects=False,
    )
    assert applied.status_code == 303
    assert applied.headers["location"] == "/revisions/2?applied=1"
    revision = admin.client.get("/revisions/2").text
    assert "Ada (token 1)" in revision and "Mobile is APP" in revision and "asana-mobile" in revision
    with admin.engine.connect() as conn:
        stored = revisions.current(conn)
        assert stored is not None and stored.info.author == "Ada (token 1)" and stored.info.parent_id == 1
        codes = dict(conn.execute(select(entries.c.external_id, entries.c.code)).all())
    assert codes == {"web-1": "WEB", "web-2": "WEB", "app-1": "APP", "app-2": "APP"}
    report_after = admin.client.get("/report?period=2026-11").text
    assert '<tr data-code="APP"><td>CC-2</td><td>APP</td>' in report_after
    assert "0.00 h unmapped" in report_after
    assert "Nothing unmapped" in admin.client.get("/unmapped").text


def test_two_admins_editing_the_same_revision_cannot_lose_a_change(admin: Browser) -> None:
    first = DOCUMENT.replace("Website}", "Website}\n  - {id: a, priority: 50, code: APP, match: {project: Mobile}}")
    second = DOCUMENT.replace("priority: 100", "priority: 90")
    ok = admin.post("/rules/apply", {"document": first, "parent": "1", "comment": "one"}, follow_redirects=False)
    assert ok.status_code == 303
    stale = admin.post("/rules/apply", {"document": second, "parent": "1", "comment": "two"})
    assert stale.status_code == 409
    assert "edited from revision 1, but revision 2 was applied since" in stale.text
    with admin.engine.connect() as conn:
        assert revisions.count(conn) == 2
        current = revisions.current(conn)
        assert current is not None and current.info.comment == "one"


def test_bad_yaml_gets_the_clis_line_numbered_errors_and_writes_nothing(admin: Browser) -> None:
    from mappings.loader import MappingDocumentError

    broken = DOCUMENT.replace("code: WEB", "code: NOPE")
    with pytest.raises(MappingDocumentError) as cli_error:
        from sync.admin.revisions import parse_document

        parse_document(broken, "the draft")
    line = cli_error.value.problems[0].line
    preview = admin.post("/rules/preview", {"document": broken, "parent": "1"})
    assert preview.status_code == 422
    assert f'<a href="#line-{line}">line {line}</a>' in preview.text
    assert cli_error.value.problems[0].message.split("'")[0] in preview.text
    assert 'action="/rules/apply"' not in preview.text
    applied = admin.post("/rules/apply", {"document": broken, "parent": "1", "comment": "x"})
    assert applied.status_code == 422
    with admin.engine.connect() as conn:
        assert revisions.count(conn) == 1


def test_apply_needs_a_comment(admin: Browser) -> None:
    response = admin.post("/rules/apply", {"document": DOCUMENT + "# note\n", "parent": "1", "comment": " "})
    assert response.status_code == 422 and "Say why" in response.text
    with admin.engine.connect() as conn:
        assert revisions.count(conn) == 1


def test_the_viewer_may_preview_but_is_offered_no_apply(viewer: Browser) -> None:
    response = viewer.post("/rules/preview", {"document": DOCUMENT, "parent": "1"})
    assert response.status_code == 200
    assert "Preview against revision 1" in response.text
    assert 'action="/rules/apply"' not in response.text


def test_gitops_shows_the_file_read_only_and_refuses_changes(engine: Engine, tmp_path: Path) -> None:
    gitops = tmp_path / "mappings.yaml"
    gitops.write_text(DOCUMENT, encoding="utf-8")
    settings = Settings(database_url="sqlite://", mappings_file=gitops)
    seed(engine, settings)
    with TestClient(create_app(settings, engine, clock=Clock())) as client:
        browser = Browser(client, engine, settings, Clock())
        browser.sign_in(new_token(engine))
        rules = client.get("/rules").text
        assert "HOURBRIDGE_MAPPINGS_FILE" in rules and str(gitops) in rules
        assert "<textarea" not in rules
        assert 'action="/unmapped/rule"' not in client.get("/unmapped").text
        refused = browser.post("/rules/apply", {"document": DOCUMENT + "# x\n", "parent": "1", "comment": "c"})
        assert refused.status_code == 422 and "through your repository" in refused.text
    with engine.connect() as conn:
        assert revisions.count(conn) == 1


# --------------------------------------------------------------------------- revisions, explain, report


def test_revision_diff_and_history(admin: Browser) -> None:
    changed = DOCUMENT.replace("priority: 100", "priority: 90")
    admin.post("/rules/apply", {"document": changed, "parent": "1", "comment": "lower"}, follow_redirects=False)
    history = admin.client.get("/revisions").text
    assert "lower" in history and "first" in history and "2</a> (current)" in history
    diff = admin.client.get("/revisions/diff?old=1&new=2").text
    assert "<td>rule</td><td>web</td><td>changed</td><td>priority</td>" in diff
    assert "-    priority: 100" in diff and "+    priority: 90" in diff
    assert admin.client.get("/revisions/diff?old=1&new=9").status_code == 422
    assert admin.client.get("/revisions/9").status_code == 422


def test_explain_an_entry(admin: Browser) -> None:
    page = admin.client.get("/explain?entry=asana:ws1:web-1").text
    assert "mapped to WEB by rule &#39;web&#39;" in page
    missing = admin.client.get("/explain?entry=nope")
    assert missing.status_code == 422 and "no entry" in missing.text


def test_report_chart_draws_each_code_per_month(admin: Browser) -> None:
    page = admin.client.get("/report?period=2026-11").text
    assert "<svg" in page and "2026-11: CC-1 / WEB 1.50 h" in page and "2026-11: (unmapped) 2.00 h" in page
    assert "2026-06" in page  # six months up to the chosen one
    assert admin.client.get("/report?period=2026-13").status_code == 422


# --------------------------------------------------------------------------- periods


def test_close_and_reopen_a_period_with_who_and_why(admin: Browser) -> None:
    closed = admin.post("/periods/close", {"month": "2026-11", "reason": "books done"}, follow_redirects=False)
    assert closed.status_code == 303
    page = admin.client.get(closed.headers["location"]).text
    assert "2026-11 closed" in page and "Closed: 2026-11" in page
    refused = admin.post("/periods/reopen", {"month": "2026-11", "reason": " "}, csrf_from="/periods")
    assert refused.status_code == 422 and "needs a reason" in refused.text
    admin.post("/periods/reopen", {"month": "2026-11", "reason": "late invoice"}, csrf_from="/periods")
    with admin.engine.connect() as conn:
        events = periods.history(conn)
        assert periods.closed(conn).labels == frozenset()
    assert [(e.action, e.by, e.reason) for e in events] == [
        ("close", "Ada (token 1)", "books done"),
        ("reopen", "Ada (token 1)", "late invoice"),
    ]


def test_a_period_that_does_not_reconcile_cannot_close(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sync.ops.admin as admin_ops
    from sync.settings import DeliverySettings
    from tests.fakes import MemorySink

    settings = console_settings(tmp_path, engine).model_copy(
        update={"delivery": DeliverySettings.with_gates(asana="none")}
    )
    seed(engine, settings)
    monkeypatch.setattr(admin_ops, "build_sinks", lambda settings, engine: {"quickbooks": MemorySink()})
    with TestClient(create_app(settings, engine, clock=Clock())) as client:
        browser = Browser(client, engine, settings, Clock())
        browser.sign_in(new_token(engine))
        # Nothing was delivered yet: the sink holds less than the ledger says it should.
        refused = browser.post("/periods/close", {"month": "2026-11"})
        assert refused.status_code == 409
        assert "does not reconcile" in refused.text and 'id="differences"' in refused.text
        assert "<td>quickbooks</td><td>WEB</td>" in refused.text
        # October has nothing to deliver: it reconciles and closes.
        assert browser.post("/periods/close", {"month": "2026-10"}, follow_redirects=False).status_code == 303
    with engine.connect() as conn:
        assert periods.closed(conn).labels == {"2026-10"}


# --------------------------------------------------------------------------- deliveries and contractors


def test_deliveries_list_failed_lines_with_their_message(admin: Browser) -> None:
    with admin.engine.begin() as conn:
        conn.execute(
            outbox.insert().values(
                idempotency_key="k1",
                sink="quickbooks",
                line_key="day:2026-11-05:zoe:WEB",
                version=1,
                kind="create",
                line={"seconds": 3600},
                content_hash="h",
                period="2026-11",
                state="failed",
                attempts=1,
                created_at=NOW,
                error="QuickBooks refused: the customer is inactive; reactivate it",
            )
        )
    page = admin.client.get("/deliveries").text
    assert "quickbooks" in page and "the customer is inactive; reactivate it" in page
    assert "day:2026-11-05:zoe:WEB" in page and 'action="/deliveries/retry"' in page


def test_retry_without_a_configured_sink_says_so(admin: Browser) -> None:
    response = admin.post("/deliveries/retry", {"sink": "quickbooks"})
    assert response.status_code == 422
    assert "not configured" in response.text


def test_contractors_and_statement_downloads(admin: Browser) -> None:
    page = admin.client.get("/contractors?period=2026-11").text
    assert "Zoë Müller" in page and "Sam Lee" in page
    csv = admin.client.get("/contractors/2026-11/sam-lee.csv")
    assert csv.status_code == 200, csv.text
    assert csv.headers["content-type"].startswith("text/csv")
    assert 'filename="sam-lee-2026-11.csv"' in csv.headers["content-disposition"]
    assert "Sam Lee" in csv.text and "Zoë" not in csv.text
    data = json.loads(admin.client.get("/contractors/2026-11/sam-lee.json").content)
    assert data["statement"]["contractor"] == "Sam Lee"
    assert admin.client.get("/contractors/2026-11/sam-lee.xlsx").content[:2] == b"PK"
    assert admin.client.get("/contractors/2026-11/nobody.csv").status_code == 404
    assert admin.client.get("/contractors/2026-11/sam-lee.exe").status_code == 422


def test_overview_shows_runs_health_unmapped_and_deliveries(admin: Browser) -> None:
    page = admin.client.get("/").text
    assert "4 live entries, 3.50 h" in page
    assert "Unmapped: 2.00 h in 2 entries" in page
    assert "asana" in page and "Closed: none" in page


def test_a_suggested_rule_whose_id_is_taken_shows_the_error_at_its_line(admin: Browser) -> None:
    rule = form_value(admin.client.get("/unmapped").text, "rule")
    response = admin.post("/unmapped/rule", {"rule": rule, "rule_id": "web", "code": "APP"}, csrf_from="/unmapped")
    assert response.status_code == 422
    assert 'class="bad-line"' in response.text and "web" in response.text
    assert 'action="/rules/apply"' not in response.text
    with admin.engine.connect() as conn:
        assert revisions.count(conn) == 1


def test_a_suggestion_needs_a_chosen_code(admin: Browser) -> None:
    rule = form_value(admin.client.get("/unmapped").text, "rule")
    response = admin.post("/unmapped/rule", {"rule": rule, "rule_id": "m", "code": "TODO-CODE"}, csrf_from="/unmapped")
    assert response.status_code == 422 and "choose the code" in response.text


def test_what_people_type_is_escaped(admin: Browser) -> None:
    response = admin.client.get("/explain", params={"entry": "<script>alert(1)</script>"})
    assert response.status_code == 422
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_add_rule_appends_as_text_and_keeps_comments() -> None:
    from sync.admin.unmapped import add_rule

    rule = {"id": "m", "priority": 100, "code": "APP", "match": {"source": "asana", "project": "Mobile"}}
    text = add_rule("# ours\n" + DOCUMENT, rule, "doc")
    assert text.startswith("# ours\n" + DOCUMENT)
    assert text.endswith(
        "  - id: m\n    priority: 100\n    code: APP\n    match:\n      source: asana\n      project: Mobile\n"
    )
    without_rules = add_rule("version: 1\ncodes: {}\n", rule, "doc")
    assert without_rules.startswith("version: 1\ncodes: {}\nrules:\n  - id: m\n")


def test_add_rule_refuses_a_rules_list_that_does_not_end_the_document() -> None:
    from connectors.errors import ConfigError
    from sync.admin.unmapped import add_rule

    with pytest.raises(ConfigError, match="add it in the rule editor"):
        add_rule("version: 1\nrules: []\ncodes: {}\n", {"id": "m"}, "doc")


def test_a_refused_write_is_listed_retried_and_then_the_month_closes(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sync.ops.admin as admin_ops
    from sync.settings import DeliverySettings
    from tests.fakes import MemorySink

    settings = console_settings(tmp_path, engine).model_copy(
        update={"delivery": DeliverySettings.with_gates(asana="none")}
    )
    seed(engine, settings)
    sink = MemorySink()
    monkeypatch.setattr(admin_ops, "build_sinks", lambda settings, engine: {"quickbooks": sink})
    with TestClient(create_app(settings, engine, clock=Clock())) as client:
        browser = Browser(client, engine, settings, Clock())
        browser.sign_in(new_token(engine))
        # The dry run (`deliver --dry-run`) names the lines; the sink will refuse the first one.
        plan = admin_ops.deliver_now(settings, engine, dry_run=True, only="quickbooks").plans["quickbooks"]
        keys = [op.line.line_key for op in plan.ops]
        assert keys and sink.pushes == []
        sink.refuse = {keys[0]}
        failed = browser.post("/deliveries/retry", {"sink": "quickbooks"}, csrf_from="/deliveries")
        assert "1 failed" in failed.text
        page = client.get("/deliveries").text
        assert '<tr class="state-failed"><td>failed</td><td>create</td><td>' + keys[0] in page
        assert "refused" in page
        assert browser.post("/periods/close", {"month": "2026-11"}).status_code == 409
        sink.refuse = set()
        retried = browser.post("/deliveries/retry", {"sink": "quickbooks"}, csrf_from="/deliveries")
        assert "0 failed" in retried.text and "Every line is delivered." in retried.text
        closed = browser.post("/periods/close", {"month": "2026-11", "reason": "all in"}, follow_redirects=False)
        assert closed.status_code == 303
    with engine.connect() as conn:
        assert periods.closed(conn).labels == {"2026-11"}
