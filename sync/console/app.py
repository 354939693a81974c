"""The console's Starlette application: every page and form, over the CLI's own admin, delivery and reporting code."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog
import yaml
from sqlalchemy import Engine, func, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.errors import ConfigError, HourbridgeError
from mappings.loader import MappingDocumentError, Problem
from sync.admin import preview as mapping_preview
from sync.admin import revisions as mapping_revisions
from sync.admin import unmapped as mapping_unmapped
from sync.console.auth import (
    COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    Gate,
    SessionEnded,
    SignInLimited,
    SignInRefused,
    Viewer,
    client_address,
)
from sync.console.charts import bar_chart, month_bar
from sync.delivery import periods
from sync.ops import admin as admin_ops
from sync.ops.health import check_health, source_health
from sync.reporting.lines import read_report_lines
from sync.reporting.model import Period, build_report, format_hours
from sync.reporting.statement_files import render_statement
from sync.reporting.statements import build_statements, statement_bills
from sync.settings import REPORT_FORMATS, Settings
from sync.store import invoices as invoice_checks
from sync.store import ledger
from sync.store import outbox as store_outbox
from sync.store.revisions import StaleParent
from sync.store.runs import recent_runs
from sync.store.tables import entries

log = structlog.get_logger("hourbridge.console")

HERE = Path(__file__).resolve().parent
# Months the chart shows, ending with the chosen one.
CHART_MONTHS = 6
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
}
# Every page is the console's own: no framing by other sites, no scripts from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Page:
    """What a handler gets: the request, who asks, the submitted form, and the console."""

    request: Request
    viewer: Viewer
    form: FormData | None
    console: ConsoleState

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else self.request.query_params.get(name)
        return default if value is None else str(value)

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        return self.console.render(self.request, template, status=status, viewer=self.viewer, **context)


Handler = Callable[[Page], Response]


class ConsoleState:
    """The application's state: settings, the store, the sign-in gate and the templates."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utc_now,
        http: httpx.Client | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.gate = Gate(engine, settings.console, clock)
        self.http = http or httpx.Client(timeout=15.0)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals.update(hours=format_hours, csrf_field=CSRF_FIELD)

    @property
    def gitops_file(self) -> Path | None:
        """The file every run applies (HOURBRIDGE_MAPPINGS_FILE), when it exists: the document is read-only here."""
        path = self.settings.mappings_file
        return path if path.is_file() else None

    def render(self, request: Request, template: str, *, status: int = 200, **context: Any) -> Response:
        context.setdefault("viewer", None)
        context.setdefault("gitops", self.gitops_file)
        return self.templates.TemplateResponse(request, template, context, status_code=status)

    # ------------------------------------------------------------------ shared reads

    def latest_month(self) -> str:
        """The month of the newest live entry (the current month when the ledger is empty)."""
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(entries.c.work_date)).where(entries.c.deleted_at.is_(None))).scalar()
        day = last if isinstance(last, date) else self.clock().date()
        return periods.month_label(day)

    def period(self, text: str | None) -> Period:
        label = (text or "").strip() or self.latest_month()
        try:
            return Period.month(periods.parse_month(label))
        except ValueError as exc:
            raise ConfigError(f"period: {exc}") from None


def page(role: str = "viewer") -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler: sign-in required, the role checked, CSRF checked on every POST, errors shown as pages."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            console: ConsoleState = request.app.state.console
            peer = request.client.host if request.client else None
            viewer = await run_in_threadpool(console.gate.viewer, request.cookies.get(COOKIE), peer, request.headers)
            if isinstance(viewer, SessionEnded):
                if request.method == "GET":
                    response: Response = RedirectResponse(
                        f"/login?next={request.url.path}&ended={viewer.reason}", status_code=303
                    )
                else:
                    message = console.gate.ended_message(viewer.reason) + " Nothing was changed."
                    response = _refused(console, request, None, 401, message)
                response.delete_cookie(COOKIE, path="/")
                return response
            if viewer is None:
                if request.method == "GET":
                    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
                return _refused(console, request, None, 401, "Sign in first: your session has ended or never began.")
            form = None
            if request.method == "POST":
                form = await request.form()
                submitted = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
                if not console.gate.check_csrf(viewer, submitted if isinstance(submitted, str) else None):
                    log.warning("console.csrf_refused", path=request.url.path, identity=viewer.identity)
                    response = _refused(
                        console,
                        request,
                        viewer,
                        403,
                        "This form's security token is missing or out of date, so nothing was changed. "
                        "Reload the page and submit it again.",
                    )
                    return _with_cookie(response, viewer, console)
            if role == "admin" and not viewer.can_change:
                response = _refused(
                    console, request, viewer, 403, f"{viewer.identity} has the read-only role: nothing was changed."
                )
                return _with_cookie(response, viewer, console)
            current = Page(request, viewer, form, console)
            try:
                response = await run_in_threadpool(handler, current)
            except StaleParent as exc:
                response = _refused(console, request, viewer, 409, exc.message)
            except HourbridgeError as exc:
                status = 422 if isinstance(exc, ConfigError) else 502
                response = _refused(console, request, viewer, status, exc.message)
            return _with_cookie(response, viewer, console)

        endpoint.__name__ = handler.__name__
        return endpoint

    return wrap


def _refused(console: ConsoleState, request: Request, viewer: Viewer | None, status: int, message: str) -> Response:
    return console.render(request, "error.html", status=status, viewer=viewer, message=message)


def _with_cookie(response: Response, viewer: Viewer, console: ConsoleState) -> Response:
    if viewer.new_cookie is not None:
        _set_session_cookie(response, viewer.new_cookie, console)
    return response


def _set_session_cookie(response: Response, value: str, console: ConsoleState, *, max_age: int | None = None) -> None:
    public = console.settings.console.public_url or ""
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age if max_age is not None else console.settings.console.session_minutes * 60,
        httponly=True,
        samesite="lax",
        secure=public.startswith("https://"),
        path="/",
    )


# --------------------------------------------------------------------------- sign-in


async def healthz(request: Request) -> Response:
    """The probe: the store is reachable and migrated (no sign-in; says nothing else)."""
    console: ConsoleState = request.app.state.console
    report = await run_in_threadpool(check_health, console.settings, console.engine, database_only=True)
    if report.ok:
        return PlainTextResponse("ok\n")
    return PlainTextResponse("not ready: " + "; ".join(report.reasons) + "\n", status_code=503)


async def login(request: Request) -> Response:
    console: ConsoleState = request.app.state.console
    if request.method == "GET":
        nonce = secrets.token_urlsafe(24)
        ended = request.query_params.get("ended")
        response = console.render(
            request,
            "login.html",
            login_csrf=nonce,
            next=_safe_next(request.query_params.get("next")),
            error=None,
            notice=console.gate.ended_message(ended) if ended in ("idle", "expired") else None,
        )
        response.set_cookie(LOGIN_COOKIE, nonce, max_age=1800, httponly=True, samesite="strict", path="/login")
        return response
    form = await request.form()
    submitted = str(form.get(CSRF_FIELD) or "")
    expected = request.cookies.get(LOGIN_COOKIE) or ""
    target = _safe_next(str(form.get("next") or ""))
    if not expected or not secrets.compare_digest(submitted, expected):
        return console.render(
            request,
            "login.html",
            status=403,
            login_csrf=expected,
            next=target,
            error="This form's security token is missing or out of date. Reload the page and sign in again.",
        )
    peer = request.client.host if request.client else None
    address = client_address(console.settings.console, peer, request.headers)
    try:
        cookie, _ = await run_in_threadpool(console.gate.sign_in_with_token, str(form.get("token") or ""), address)
    except SignInLimited as exc:
        log.warning("console.sign_in_limited", method="token", address=address, retry_after=exc.retry_after)
        response = console.render(
            request, "login.html", status=429, login_csrf=expected, next=target, error=exc.message
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except SignInRefused as exc:
        log.warning("console.sign_in_refused", method="token", address=address)
        return console.render(request, "login.html", status=401, login_csrf=expected, next=target, error=exc.message)
    response = RedirectResponse(target, status_code=303)
    _set_session_cookie(response, cookie, console)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


def _safe_next(value: str | None) -> str:
    # Only paths of this console: never an open redirect to another site.
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _redirect_uri(request: Request, console: ConsoleState) -> str:
    base = (console.settings.console.public_url or str(request.base_url)).rstrip("/")
    return f"{base}/login/oidc/callback"


async def oidc_start(request: Request) -> Response:
    console: ConsoleState = request.app.state.console
    if not console.gate.oidc_enabled:
        return _refused(console, request, None, 404, "OpenID Connect is not configured (HOURBRIDGE_CONSOLE__OIDC_*).")
    try:
        cookie, url = await run_in_threadpool(console.gate.oidc_start, console.http, _redirect_uri(request, console))
    except HourbridgeError as exc:
        return _refused(console, request, None, 502, exc.message)
    response = RedirectResponse(url, status_code=303)
    _set_session_cookie(response, cookie, console, max_age=600)
    return response


async def oidc_callback(request: Request) -> Response:
    console: ConsoleState = request.app.state.console
    if not console.gate.oidc_enabled:
        return _refused(console, request, None, 404, "OpenID Connect is not configured (HOURBRIDGE_CONSOLE__OIDC_*).")
    params = request.query_params
    if params.get("error"):
        return _refused(console, request, None, 401, f"The identity provider refused the sign-in: {params['error']}.")
    try:
        cookie, session = await run_in_threadpool(
            console.gate.oidc_finish,
            console.http,
            request.cookies.get(COOKIE),
            params.get("state", ""),
            params.get("code", ""),
            _redirect_uri(request, console),
        )
    except SignInRefused as exc:
        log.warning("console.sign_in_refused", method="oidc")
        response = _refused(console, request, None, 401, exc.message)
        response.delete_cookie(COOKIE, path="/")
        return response
    except HourbridgeError as exc:
        return _refused(console, request, None, 502, exc.message)
    log.info("console.signed_in", method="oidc", identity=session.identity)
    response = RedirectResponse("/", status_code=303)
    _set_session_cookie(response, cookie, console)
    return response


@page()
def logout(p: Page) -> Response:
    p.console.gate.sign_out(p.viewer)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# --------------------------------------------------------------------------- overview


@page()
def overview(p: Page) -> Response:
    console = p.console
    settings = console.settings
    now = console.clock()
    with console.engine.connect() as conn:
        runs = recent_runs(conn, 10, now=now, after=settings.run_abandoned_after)
        totals = ledger.ledger_totals(conn)
        deliveries = store_outbox.outbox_summary(conn)
        closed = sorted(periods.closed(conn).labels)
        events = periods.history(conn)[-5:]
    health = check_health(settings, console.engine, now=now)
    return p.render(
        "overview.html",
        runs=runs,
        sources=source_health(console.engine),
        totals=totals,
        deliveries=deliveries,
        closed=closed,
        events=list(reversed(events)),
        health=health,
    )


# --------------------------------------------------------------------------- the unmapped queue and rules


def _codes(console: ConsoleState) -> list[tuple[str, str]]:
    current = admin_ops.current_revision(console.engine)
    if current is None:
        return []
    document = mapping_revisions.revision_document(current).document
    return sorted((code, spec.name or code) for code, spec in document.codes.items())


@page()
def unmapped(p: Page) -> Response:
    period = None if p.field("period") in ("", "all") else p.console.period(p.field("period"))
    groups = mapping_unmapped.unmapped_queue(p.console.engine, period)
    suggestions = [
        None if g.rule is None else yaml.safe_dump(g.rule, sort_keys=False, allow_unicode=True, width=1000)
        for g in groups
    ]
    return p.render(
        "unmapped.html",
        groups=list(zip(groups, suggestions, strict=True)),
        period=period,
        total=sum(g.seconds for g in groups),
        codes=_codes(p.console),
        placeholder=mapping_unmapped.PLACEHOLDER_CODE,
    )


@page("admin")
def rule_from_suggestion(p: Page) -> Response:
    """A suggestion with its code chosen, added to the current document: shown in the editor with its preview."""
    console = p.console
    _require_editable(console)
    current = admin_ops.current_revision(console.engine)
    if current is None:
        raise ConfigError("no mapping revision is stored yet: write the first document in the rule editor")
    try:
        rule = yaml.safe_load(p.field("rule"))
    except yaml.YAMLError:
        rule = None
    if not isinstance(rule, dict) or not isinstance(rule.get("match"), dict):
        raise ConfigError("the suggested rule did not come through: reload the unmapped queue and try again")
    code = p.field("code").strip()
    if not code or code == mapping_unmapped.PLACEHOLDER_CODE:
        raise ConfigError("choose the code the rule maps to")
    rule_id = p.field("rule_id").strip() or str(rule.get("id") or "")
    rule = {**rule, "id": rule_id, "code": code}
    text = mapping_unmapped.add_rule(current.yaml_text, rule, f"revision {current.id}")
    try:
        draft = mapping_revisions.parse_document(text, "the draft")
    except MappingDocumentError as exc:
        # E.g. an id that another rule has: the draft is shown with the error at its line.
        return _editor(p, text, current.id, problems=exc.problems, status=422)
    return _editor(p, text, current.id, draft=draft)


def _require_editable(console: ConsoleState) -> None:
    if console.gitops_file is not None:
        raise ConfigError(
            f"the mapping document is managed in {console.gitops_file} (HOURBRIDGE_MAPPINGS_FILE), which every run "
            "applies: change it there, through your repository"
        )


@page()
def rules(p: Page) -> Response:
    console = p.console
    gitops = console.gitops_file
    if gitops is not None:
        return p.render("rules.html", text=gitops.read_text(encoding="utf-8"), parent=None, read_only=True)
    current = admin_ops.current_revision(console.engine)
    return p.render(
        "rules.html",
        text=current.yaml_text if current is not None else "version: 1\ncodes: {}\nrules: []\n",
        parent=None if current is None else current.id,
        read_only=False,
    )


def _parent(p: Page) -> int | None:
    raw = p.field("parent").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"parent revision must be a number, got {raw!r}: reload the rule editor") from None


def _editor(
    p: Page,
    text: str,
    parent: int | None,
    *,
    draft: mapping_revisions.LoadedDocument | None = None,
    problems: tuple[Problem, ...] = (),
    status: int = 200,
    message: str | None = None,
) -> Response:
    preview = None
    if draft is not None:
        preview = mapping_preview.preview_document(p.console.engine, draft, None)
    return p.render(
        "rules.html",
        status=status,
        text=text,
        parent=parent,
        read_only=p.console.gitops_file is not None,
        draft=draft,
        preview=preview,
        problems=problems,
        message=message,
        lines=text.splitlines(),
    )


@page()
def rules_preview(p: Page) -> Response:
    """Validate the edited document (errors at their line) and show what applying it would move; writes nothing."""
    text = p.field("document").replace("\r\n", "\n")
    parent = _parent(p)
    try:
        draft = mapping_revisions.parse_document(text, "the draft")
    except MappingDocumentError as exc:
        return _editor(p, text, parent, problems=exc.problems, status=422)
    return _editor(p, text, parent, draft=draft)


@page("admin")
def rules_apply(p: Page) -> Response:
    console = p.console
    _require_editable(console)
    text = p.field("document").replace("\r\n", "\n")
    parent = _parent(p)
    comment = p.field("comment").strip()
    if not comment:
        try:
            draft = mapping_revisions.parse_document(text, "the draft")
        except MappingDocumentError as exc:
            return _editor(p, text, parent, problems=exc.problems, status=422)
        return _editor(p, text, parent, draft=draft, status=422, message="Say why in the comment, then apply.")
    try:
        loaded = mapping_revisions.parse_document(text, "the draft")
    except MappingDocumentError as exc:
        return _editor(p, text, parent, problems=exc.problems, status=422)
    applied = admin_ops.apply_and_remap(
        console.settings,
        console.engine,
        loaded,
        author=p.viewer.identity,
        comment=comment,
        parent=parent,
        now=console.clock(),
    )
    revision = applied.outcome.revision
    log.info(
        "console.revision_applied",
        revision=revision.id,
        created=applied.outcome.created,
        identity=p.viewer.identity,
        remapped=applied.remapped,
    )
    return RedirectResponse(f"/revisions/{revision.id}?applied={int(applied.outcome.created)}", status_code=303)


# --------------------------------------------------------------------------- revisions, diff, explain


@page()
def revisions_list(p: Page) -> Response:
    return p.render("revisions.html", revisions=mapping_revisions.history(p.console.engine))


@page()
def revision_detail(p: Page) -> Response:
    revision_id = int(p.request.path_params["revision"])
    with p.console.engine.connect() as conn:
        revision = mapping_revisions.get_revision(conn, revision_id)
    diff = None
    if revision.info.parent_id is not None:
        diff = mapping_revisions.diff(p.console.engine, revision.info.parent_id, revision.id)
    return p.render("revision.html", revision=revision, diff=diff, applied=p.request.query_params.get("applied"))


@page()
def revisions_diff(p: Page) -> Response:
    old, new = p.field("old").strip(), p.field("new").strip()
    if not old.isdigit() or (new and not new.isdigit()):
        raise ConfigError("compare two revision numbers, e.g. old=3 and new=5 (new empty = the current one)")
    diff = mapping_revisions.diff(p.console.engine, int(old), int(new) if new else None)
    return p.render("diff.html", diff=diff)


@page()
def explain(p: Page) -> Response:
    ref = p.field("entry").strip()
    result = mapping_preview.explain(p.console.engine, ref) if ref else None
    return p.render("explain.html", ref=ref, result=result)


# --------------------------------------------------------------------------- report and chart


@page()
def report(p: Page) -> Response:
    console = p.console
    period = console.period(p.field("period"))
    drop = console.settings.drop_descriptions
    built = build_report(period, read_report_lines(console.engine, period, drop_descriptions=drop))
    months = [period.label]
    while len(months) < CHART_MONTHS:
        months.insert(0, periods.previous_month(months[0]))
    bars = []
    for label in months:
        month = Period.month(label)
        bars.append(
            month_bar(label, build_report(month, read_report_lines(console.engine, month, drop_descriptions=drop)))
        )
    return p.render("report.html", report=built, period=period, chart=bar_chart(bars), bars=bars)


# --------------------------------------------------------------------------- periods


@page()
def periods_page(p: Page) -> Response:
    return _periods_view(p, done=p.request.query_params.get("done"))


def _periods_view(
    p: Page, *, status: int = 200, message: str | None = None, reconciliation: Any = None, done: str | None = None
) -> Response:
    with p.console.engine.connect() as conn:
        closed = sorted(periods.closed(conn).labels)
        events = periods.history(conn)
    return p.render(
        "periods.html",
        status=status,
        closed=closed,
        events=list(reversed(events)),
        message=message,
        reconciliation=reconciliation,
        done=done,
        suggested=p.console.latest_month(),
    )


@page("admin")
def periods_close(p: Page) -> Response:
    console = p.console
    month = periods.parse_month(p.field("month"))
    try:
        closed, _ = admin_ops.close_reconciled(
            console.settings, console.engine, month, by=p.viewer.identity, reason=p.field("reason"), now=console.clock()
        )
    except admin_ops.PeriodNotReconciled as exc:
        result = admin_ops.reconcile_ledger(console.settings, console.engine, month)
        return _periods_view(p, status=409, message=exc.message, reconciliation=result)
    log.info("console.period_closed", month=month, identity=p.viewer.identity, changed=closed)
    note = f"{month} closed" if closed else f"{month} was already closed"
    return RedirectResponse(f"/periods?done={note}", status_code=303)


@page("admin")
def periods_reopen(p: Page) -> Response:
    console = p.console
    month = periods.parse_month(p.field("month"))
    periods.reopen(console.engine, month, by=p.viewer.identity, reason=p.field("reason"), now=console.clock())
    log.info("console.period_reopened", month=month, identity=p.viewer.identity)
    return RedirectResponse(f"/periods?done={month} reopened", status_code=303)


# --------------------------------------------------------------------------- deliveries


@page()
def deliveries(p: Page) -> Response:
    return _deliveries_view(p)


def _deliveries_view(p: Page, *, results: Any = None, errors: Any = None) -> Response:
    with p.console.engine.connect() as conn:
        summary = store_outbox.outbox_summary(conn)
        waiting = store_outbox.latest_ops(conn, ("failed", "unknown", "sending", "pending"))
    by_sink: dict[str, list[Any]] = {}
    for row in waiting:
        by_sink.setdefault(row.sink, []).append(row)
    return p.render("deliveries.html", summary=summary, waiting=by_sink, results=results or {}, errors=errors or {})


@page("admin")
def deliveries_retry(p: Page) -> Response:
    """Deliver again now (the `deliver` command): failed and unanswered lines are planned and sent again."""
    sink = p.field("sink").strip() or None
    done = admin_ops.deliver_now(p.console.settings, p.console.engine, only=sink)
    log.info("console.delivered", sink=sink or "all", identity=p.viewer.identity, sinks=list(done.sinks))
    if not done.sinks:
        raise ConfigError("no accounting sink is configured (HOURBRIDGE_QUICKBOOKS__… or HOURBRIDGE_XERO__…)")
    return _deliveries_view(p, results=done.results, errors=done.errors)


# --------------------------------------------------------------------------- contractors and statements


def _statements(console: ConsoleState, period: Period) -> list[Any]:
    drop = console.settings.drop_descriptions
    lines = read_report_lines(console.engine, period, drop_descriptions=drop)
    # The contractor sees the same bill verdicts as in their statement files (`hourbridge statement`).
    with console.engine.connect() as conn:
        bills = statement_bills(check.result for check in invoice_checks.checks_of(conn, period.label))
    return build_statements(period, lines, descriptions=not drop, bills=bills)


@page()
def contractors(p: Page) -> Response:
    period = p.console.period(p.field("period"))
    return p.render(
        "contractors.html", period=period, statements=_statements(p.console, period), formats=REPORT_FORMATS
    )


@page()
def statement_download(p: Page) -> Response:
    period = p.console.period(p.request.path_params["period"])
    slug, fmt = p.request.path_params["slug"], p.request.path_params["fmt"]
    if fmt not in CONTENT_TYPES:
        raise ConfigError(f"statements come as {', '.join(CONTENT_TYPES)}, not {fmt!r}")
    found = next((s for s in _statements(p.console, period) if s.slug == slug), None)
    if found is None:
        return _refused(p.console, p.request, p.viewer, 404, f"no statement {slug!r} in {period.label}")
    log.info("console.statement_downloaded", period=period.label, slug=slug, identity=p.viewer.identity)
    return Response(
        render_statement(found, fmt, csv_bom=p.console.settings.csv_bom),
        media_type=CONTENT_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{slug}-{period.label}.{fmt}"'},
    )


# --------------------------------------------------------------------------- the application


def create_app(
    settings: Settings,
    engine: Engine,
    *,
    clock: Callable[[], datetime] = utc_now,
    http: httpx.Client | None = None,
) -> Starlette:
    """The console over ``engine`` (migrated); ``clock`` and ``http`` (the identity provider's client) for tests."""
    routes = [
        Route("/healthz", healthz),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/login/oidc", oidc_start),
        Route("/login/oidc/callback", oidc_callback),
        Route("/logout", logout, methods=["POST"]),
        Route("/", overview),
        Route("/unmapped", unmapped),
        Route("/unmapped/rule", rule_from_suggestion, methods=["POST"]),
        Route("/rules", rules),
        Route("/rules/preview", rules_preview, methods=["POST"]),
        Route("/rules/apply", rules_apply, methods=["POST"]),
        Route("/revisions", revisions_list),
        Route("/revisions/diff", revisions_diff),
        Route("/revisions/{revision:int}", revision_detail),
        Route("/explain", explain),
        Route("/report", report),
        Route("/periods", periods_page),
        Route("/periods/close", periods_close, methods=["POST"]),
        Route("/periods/reopen", periods_reopen, methods=["POST"]),
        Route("/deliveries", deliveries),
        Route("/deliveries/retry", deliveries_retry, methods=["POST"]),
        Route("/contractors", contractors),
        Route("/contractors/{period}/{slug}.{fmt}", statement_download),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.console = ConsoleState(settings, engine, clock=clock, http=http)
    return app


class SecurityHeaders:
    """ASGI middleware: every answer carries SECURITY_HEADERS (unless a route set its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = ["ConsoleState", "create_app"]
