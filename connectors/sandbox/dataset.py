"""A deterministic, tool-agnostic seeded data set of contractors, clients, projects, tasks and time entries."""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from operator import itemgetter
from zoneinfo import ZoneInfo

from connectors.model import Window

APPROVAL_STATUSES = ("DRAFT", "SUBMITTED", "APPROVED", "REJECTED")
CATEGORIES = ("Development", "Meetings", "Design", "Support", "Project management")
ENTRIES_PER_WORKING_DAY = 14
MIN_MINUTES = 15
MAX_MINUTES = 480


@dataclass(frozen=True, slots=True)
class Contractor:
    """A person who logs time; works local office hours in their own time zone."""

    id: str
    index: int
    name: str
    email: str
    timezone: str
    work_start_hour: int
    work_end_hour: int


@dataclass(frozen=True, slots=True)
class Client:
    """A customer that projects are billed to."""

    id: str
    index: int
    name: str


@dataclass(frozen=True, slots=True)
class Project:
    """Client work; ``code`` is the accounting project code, ``None`` when nobody assigned one."""

    id: str
    index: int
    client_id: str
    name: str
    code: str | None
    billable: bool


@dataclass(frozen=True, slots=True)
class Task:
    """A unit of work inside one project; ``code`` is set when the task carries its own project code."""

    id: str
    index: int
    project_id: str
    name: str
    category: str
    code: str | None
    tags: tuple[str, ...]
    billable: bool


@dataclass(frozen=True, slots=True)
class Entry:
    """One time record: who, on what, which local work day, when it started (UTC) and for how long."""

    id: str
    index: int
    person_id: str
    task_id: str
    project_id: str
    work_date: date
    started_at: datetime
    minutes: int
    billable: bool
    approval_status: str
    category: str | None
    description: str | None
    recorded_at: datetime

    @property
    def ended_at(self) -> datetime:
        return self.started_at + timedelta(minutes=self.minutes)

    @property
    def duration_seconds(self) -> int:
        return self.minutes * 60


@dataclass(frozen=True, slots=True)
class Dataset:
    """Everything one seed produces; entries are sorted by (work date, person, start) and ids are stable."""

    seed: int
    anchor: date
    days: int
    contractors: tuple[Contractor, ...]
    clients: tuple[Client, ...]
    projects: tuple[Project, ...]
    tasks: tuple[Task, ...]
    categories: tuple[str, ...]
    entries: tuple[Entry, ...]
    _entry_index: dict[str, Entry] = field(init=False, repr=False, compare=False)
    _contractor_index: dict[str, Contractor] = field(init=False, repr=False, compare=False)
    _client_index: dict[str, Client] = field(init=False, repr=False, compare=False)
    _project_index: dict[str, Project] = field(init=False, repr=False, compare=False)
    _task_index: dict[str, Task] = field(init=False, repr=False, compare=False)
    _ordinals: list[int] = field(init=False, repr=False, compare=False)
    _total_minutes: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_entry_index", {e.id: e for e in self.entries})
        object.__setattr__(self, "_contractor_index", {c.id: c for c in self.contractors})
        object.__setattr__(self, "_client_index", {c.id: c for c in self.clients})
        object.__setattr__(self, "_project_index", {p.id: p for p in self.projects})
        object.__setattr__(self, "_task_index", {t.id: t for t in self.tasks})
        object.__setattr__(self, "_ordinals", [e.work_date.toordinal() for e in self.entries])
        object.__setattr__(self, "_total_minutes", sum(e.minutes for e in self.entries))

    @property
    def start(self) -> date:
        return self.anchor - timedelta(days=self.days - 1)

    @property
    def window(self) -> Window:
        return Window(self.start, self.anchor)

    @property
    def total_minutes(self) -> int:
        return self._total_minutes

    def entries_in(self, start: date | None = None, end: date | None = None) -> tuple[Entry, ...]:
        """Entries whose work date lies in ``[start, end]`` (both inclusive, open when ``None``)."""
        lo = 0 if start is None else bisect_left(self._ordinals, start.toordinal())
        hi = len(self.entries) if end is None else bisect_right(self._ordinals, end.toordinal())
        return self.entries[lo:hi]

    def minutes_in(self, start: date | None = None, end: date | None = None) -> int:
        return sum(e.minutes for e in self.entries_in(start, end))

    def entry(self, entry_id: str) -> Entry:
        return self._entry_index[entry_id]

    def contractor(self, contractor_id: str) -> Contractor:
        return self._contractor_index[contractor_id]

    def client(self, client_id: str) -> Client:
        return self._client_index[client_id]

    def project(self, project_id: str) -> Project:
        return self._project_index[project_id]

    def task(self, task_id: str) -> Task:
        return self._task_index[task_id]

    def tasks_of(self, project_id: str) -> tuple[Task, ...]:
        return tuple(t for t in self.tasks if t.project_id == project_id)


# Offices are spread so that some local working hours straddle midnight UTC (Los Angeles afternoons,
# Auckland middays): the date an entry is filed under then differs from its UTC start date.
_CONTRACTORS: tuple[tuple[str, str, str, int, int, float], ...] = (
    ("Zoë Müller", "zoe.mueller@example.com", "Europe/Berlin", 8, 17, 1.3),
    ("José Álvarez", "jose.alvarez@example.org", "America/Mexico_City", 9, 18, 1.0),
    ("Åsa Lindqvist", "asa.lindqvist@example.net", "Europe/Stockholm", 8, 17, 1.1),
    ("Liam O'Connor", "liam.oconnor@example.com", "America/Los_Angeles", 9, 19, 1.0),
    ("Priya Raman", "priya.raman@example.org", "Asia/Kolkata", 10, 19, 1.2),
    ("Aroha Ngata", "aroha.ngata@example.com", "Pacific/Auckland", 8, 18, 0.8),
    ("Kwame Mensah", "kwame.mensah@example.org", "Africa/Accra", 8, 17, 0.9),
    ("Mei Tanaka", "mei.tanaka@example.net", "Asia/Tokyo", 9, 18, 0.7),
)

_CLIENTS = ("Northwind Traders", "Globex Corporation", "Initech", "Contoso Ltd.", "Łódź Design Collective")

# (client index, title, code, billable, task pools). Two projects deliberately carry no code.
_PROJECTS: tuple[tuple[int, str, str | None, bool, tuple[str, ...]], ...] = (
    (0, "Website relaunch", "NWT-WEB", True, ("dev", "design", "pm")),
    (0, "Mobile app", "NWT-APP", True, ("dev", "pm")),
    (1, "ERP integration", "GLX-ERP", True, ("dev", "ops", "pm")),
    (1, "Discovery workshop", None, False, ("pm", "design")),
    (2, "DevOps retainer", "INI-OPS", True, ("ops",)),
    (2, "Ad-hoc support", None, True, ("ops", "dev")),
    (3, "Data warehouse", "CTS-DATA", True, ("dev", "pm")),
    (3, "Security audit", "CTS-SEC", True, ("ops", "pm")),
    (4, "Brand refresh", "LDC-BRAND", True, ("design", "pm")),
    (4, "Online shop", "LDC-SHOP", True, ("dev", "design")),
)

_TASK_POOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dev": (
        "Development",
        (
            "Backend API",
            "Frontend components",
            "Database migration",
            "Bug triage",
            "Code review",
            "Release preparation",
            "Performance tuning",
            "Integration tests",
        ),
    ),
    "design": ("Design", ("Wireframes", "Visual design", "Usability testing", "Style guide", "Icon set")),
    "ops": ("Support", ("On-call rotation", "CI pipeline", "Infrastructure upgrade", "Monitoring alerts")),
    "pm": ("Meetings", ("Sprint planning", "Weekly client call", "Status report", "Requirements workshop")),
}

_INTERNAL_TASKS = (("Internal sync", "Meetings"), ("Team retrospective", "Project management"))

_DESCRIPTIONS = (
    "Pairing session",
    "Reviewed pull requests",
    "Call with the client about scope",
    "Fixed flaky tests",
    "Überarbeitung der Startseite",
    "Revisión de requisitos",
    "Prepared the weekly report",
    "Deployed to staging",
    "Investigated a production incident",
    "Mockups for the checkout — v2",
    "Estimating the next milestone",
    "Documentation update",
)


def _approval_for(rng: random.Random, week_age: int) -> str:
    u = rng.random()
    if week_age <= 0:
        return "DRAFT" if u < 0.7 else "SUBMITTED"
    if week_age == 1:
        if u < 0.5:
            return "SUBMITTED"
        if u < 0.85:
            return "APPROVED"
        return "DRAFT" if u < 0.95 else "REJECTED"
    if u < 0.92:
        return "APPROVED"
    return "REJECTED" if u < 0.96 else "SUBMITTED"


def _build_catalog(
    rng: random.Random,
) -> tuple[tuple[Contractor, ...], tuple[Client, ...], tuple[Project, ...], tuple[Task, ...]]:
    contractors = tuple(
        Contractor(f"c{i + 1:02d}", i, name, email, tz, start, end)
        for i, (name, email, tz, start, end, _w) in enumerate(_CONTRACTORS)
    )
    clients = tuple(Client(f"cl{i + 1}", i, name) for i, name in enumerate(_CLIENTS))
    projects: list[Project] = []
    tasks: list[Task] = []
    for p_index, (c_index, title, code, billable, pools) in enumerate(_PROJECTS):
        project = Project(
            f"pr{p_index + 1:02d}", p_index, clients[c_index].id, f"{_CLIENTS[c_index]} – {title}", code, billable
        )
        projects.append(project)
        names: list[tuple[str, str]] = []
        for pool in pools:
            category, pool_names = _TASK_POOLS[pool]
            names.extend((n, category) for n in rng.sample(pool_names, 2 if len(pools) > 1 else 4))
        if rng.random() < 0.6:
            names.append(_INTERNAL_TASKS[int(rng.random() * len(_INTERNAL_TASKS))])
        for t_number, (name, category) in enumerate(names, start=1):
            internal = name in {n for n, _ in _INTERNAL_TASKS}
            if internal:
                tags: tuple[str, ...] = ("internal",)
            elif billable and rng.random() < 0.5:
                tags = ("billable",)
            else:
                tags = ()
            # About half of a coded project's tasks repeat the code on the task itself.
            task_code = code if code is not None and not internal and rng.random() < 0.5 else None
            tasks.append(
                Task(
                    f"{project.id}-t{t_number}",
                    len(tasks),
                    project.id,
                    name,
                    category,
                    task_code,
                    tags,
                    billable and not internal,
                )
            )
    # A cross-charged task: filed under the website project but coded to the app budget.
    tasks.append(Task("pr01-tx", len(tasks), "pr01", "Shared login service", "Development", "NWT-APP", (), True))
    return contractors, clients, tuple(projects), tuple(tasks)


def _working_days(start: date, end: date) -> list[date]:
    days: list[date] = []
    cursor = start
    while cursor <= end:
        if cursor.weekday() < 5:
            days.append(cursor)
        cursor += timedelta(days=1)
    return days


def _pick_minutes(rng: random.Random) -> int:
    u = rng.random()
    if u < 0.7:
        return 15 * (1 + int(rng.random() * 16))  # quarter hours up to 4 h: how most people log
    if u < 0.94:
        return MIN_MINUTES + int(rng.random() * 166)  # timer-driven odd minutes up to 3 h
    return 240 + int(rng.random() * (MAX_MINUTES - 240 + 1))  # long days


def generate_dataset(seed: int = 7, *, anchor: date, days: int = 60, entries: int | None = None) -> Dataset:
    """The data set for ``seed``: entries on working days in ``[anchor - days + 1, anchor]``.

    ``entries`` defaults to 14 per working day (about 600 for 60 days); any count is honoured.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if entries is not None and entries < 0:
        raise ValueError("entries must not be negative")
    rng = random.Random(seed)
    r = rng.random
    contractors, clients, projects, tasks = _build_catalog(rng)
    start = anchor - timedelta(days=days - 1)
    work_days = _working_days(start, anchor)
    count = len(work_days) * ENTRIES_PER_WORKING_DAY if entries is None else entries
    if count and not work_days:
        raise ValueError(f"no working day between {start} and {anchor} to place {count} entries on")

    # Each contractor works on three projects, mostly the first; the shuffle covers every project.
    order = list(range(len(projects)))
    rng.shuffle(order)
    staffing = [[order[(i * 3 + k) % len(order)] for k in range(3)] for i in range(len(contractors))]
    project_position = {project.id: i for i, project in enumerate(projects)}
    tasks_by_project: list[list[Task]] = [[] for _ in projects]
    for task in tasks:
        tasks_by_project[project_position[task.project_id]].append(task)
    person_cum = list(accumulate(w for *_rest, w in _CONTRACTORS))
    person_total = person_cum[-1]

    # Time zone offsets are looked up once per person and day (local noon; DST flips at night).
    midnights: list[list[datetime]] = []
    for person in contractors:
        zone = ZoneInfo(person.timezone)
        row = []
        for day in work_days:
            offset = datetime.combine(day, time(12), tzinfo=zone).utcoffset() or timedelta(0)
            row.append(datetime.combine(day, time(0), tzinfo=UTC) - offset)
        midnights.append(row)

    # Approval is per timesheet (a person's week), so every entry of that week shares it.
    anchor_monday = anchor - timedelta(days=anchor.weekday())
    week_age = [(anchor_monday - (d - timedelta(days=d.weekday()))).days // 7 for d in work_days]
    approvals = [{age: _approval_for(rng, age) for age in sorted(set(week_age), reverse=True)} for _ in contractors]
    horizon = datetime.combine(anchor + timedelta(days=1), time(12), tzinfo=UTC)
    minute = [timedelta(minutes=m) for m in range(24 * 60 + 1)]
    n_days = len(work_days)
    n_categories = len(CATEGORIES)
    n_descriptions = len(_DESCRIPTIONS)

    raw: list[tuple[int, int, int, int, Task, int, bool, str | None, str | None, int]] = []
    append = raw.append
    for _ in range(count):
        day_i = int(r() * n_days)
        p = bisect_right(person_cum, r() * person_total)
        u = r()
        project_i = staffing[p][0 if u < 0.6 else 1 if u < 0.85 else 2]
        choices = tasks_by_project[project_i]
        task = choices[int(r() * len(choices))]
        minutes = _pick_minutes(rng)
        person = contractors[p]
        lo = person.work_start_hour * 60
        hi = max(lo, person.work_end_hour * 60 - minutes)
        start_minute = lo + int(r() * (hi - lo + 1))
        billable = task.billable if r() >= 0.05 else not task.billable
        u = r()
        category = task.category if u < 0.85 else CATEGORIES[int(r() * n_categories)] if u < 0.95 else None
        description = _DESCRIPTIONS[int(r() * n_descriptions)] if r() < 0.6 else None
        # Most people log right away; a few catch up days later (what look-back windows exist for).
        delay = 5 + int(r() * 600) if r() < 0.95 else 1440 + int(r() * 1440 * 8)
        # One integer sort key (day, person, start) sorts far faster than a tuple key at 100k entries.
        sort_key = (day_i * 64 + p) * 2048 + start_minute
        append((sort_key, day_i, p, start_minute, task, minutes, billable, category, description, delay))
    raw.sort(key=itemgetter(0))

    built: list[Entry] = []
    for i, (_key, day_i, p, start_minute, task, minutes, billable, category, description, delay) in enumerate(raw):
        started = midnights[p][day_i] + minute[start_minute]
        ended = started + minute[minutes]
        recorded = ended + (minute[delay] if delay <= 1440 else timedelta(minutes=delay))
        built.append(
            Entry(
                f"e{i + 1:06d}",
                i,
                contractors[p].id,
                task.id,
                task.project_id,
                work_days[day_i],
                started,
                minutes,
                billable,
                approvals[p][week_age[day_i]],
                category,
                description,
                max(ended, min(recorded, horizon)),
            )
        )
    return Dataset(
        seed=seed,
        anchor=anchor,
        days=days,
        contractors=contractors,
        clients=clients,
        projects=projects,
        tasks=tasks,
        categories=CATEGORIES,
        entries=tuple(built),
    )
