"""Mapping revisions: read and validate a document, choose the one a run uses, adopt, apply, history, export."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog
from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.engine import make_url

from connectors.errors import ConfigError
from mappings.check import check_document
from mappings.engine import Matcher, compile_rules
from mappings.loader import MappingDocumentError, Problem, load_document
from mappings.schema import MappingDocument
from sync.admin.diff import DocumentDiff, diff_revisions
from sync.settings import Settings
from sync.store import revisions
from sync.store.tables import mapping_revisions

log = structlog.get_logger("hourbridge.mappings")

SETTING = "HOURBRIDGE_MAPPINGS_FILE"


# --------------------------------------------------------------------------- documents


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """A validated mapping document with its YAML text and compiled matcher; ``origin`` names it for messages."""

    text: str
    document: MappingDocument
    matcher: Matcher
    origin: str

    @property
    def content_hash(self) -> str:
        return self.matcher.document_hash

    def summary(self) -> str:
        doc = self.document
        return f"{len(doc.codes)} codes, {len(doc.people)} people, {len(doc.rules)} rules"


def parse_document(text: str, origin: str) -> LoadedDocument:
    """Validate ``text``: schema and references (by line), then `mappings check` errors; warnings pass."""
    document = load_document(text, filename=origin)
    matcher = compile_rules(document)
    errors = [finding for finding in check_document(document) if finding.level == "error"]
    if errors:
        raise MappingDocumentError([Problem(finding.line, "", finding.message) for finding in errors], filename=origin)
    return LoadedDocument(text, document, matcher, origin)


def read_document(path: Path) -> LoadedDocument:
    """Read and validate the mapping document at ``path``; any problem raises before anything is written."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"mapping document {path} does not exist: check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a mapping document: name the YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8") from None
    return parse_document(text, str(path))


def revision_document(revision: revisions.Revision) -> LoadedDocument:
    """The stored revision as a document (read from its YAML text, so messages keep their line numbers)."""
    return parse_document(revision.yaml_text, f"revision {revision.id}")


def default_author() -> str:
    """Who applies a document when --author is not given: $USER, else the operating-system user."""
    user = os.environ.get("USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:  # getpass raises various errors in containers without a passwd entry
        return "unknown"


# --------------------------------------------------------------------------- which document a run uses


@dataclass(frozen=True, slots=True)
class ActiveMapping:
    """The document a run maps with: the settings' file (applied by every run) or the stored revision."""

    loaded: LoadedDocument
    file: Path | None
    revision: int | None

    @property
    def document(self) -> MappingDocument:
        return self.loaded.document

    @property
    def matcher(self) -> Matcher:
        return self.loaded.matcher


def choose_mapping(settings: Settings, engine: Engine) -> ActiveMapping:
    """The precedence rule (README "The mapping document"); raises before anything is written.

    1. ``mappings_file`` names an existing file: every run applies it (stored as a new revision when
       its content changed). Set explicitly but missing: a ConfigError, because a typo in a GitOps
       path must not silently fall back to an older revision.
    2. Otherwise the database's current revision.
    3. Neither: a ConfigError that says how to provide one.
    """
    path = settings.mappings_file
    explicit = "mappings_file" in settings.model_fields_set
    if path.is_file():
        return ActiveMapping(read_document(path), file=path, revision=None)
    if explicit:
        raise ConfigError(
            f"{SETTING} names {path}, which is not an existing file: fix the path, or unset {SETTING} so "
            "runs use the database's current mapping revision (`hourbridge mappings apply FILE` stores one)"
        )
    stored = _stored_current(engine)
    if stored is None:
        raise ConfigError(
            f"no mapping document: run `hourbridge mappings apply FILE` to store one in the database, or set "
            f"{SETTING} to a file every run applies (the default, {path}, does not exist)"
        )
    return ActiveMapping(revision_document(stored), file=None, revision=stored.id)


def _stored_current(engine: Engine) -> revisions.Revision | None:
    """The current revision, without creating anything: a missing SQLite file or schema means none."""
    url = make_url(str(engine.url))
    database = url.database
    if url.get_backend_name() == "sqlite" and database not in (None, "", ":memory:") and not Path(database).exists():
        return None
    with engine.connect() as conn:
        if not inspect(conn).has_table(mapping_revisions.name):
            return None
        return revisions.current(conn)


def adopt(engine: Engine, active: ActiveMapping, *, now: datetime) -> int:
    """The revision id a run maps with; the settings' file is stored as a new revision when it changed."""
    if active.revision is not None:
        return active.revision
    # The run id is bound to the logging context by sync.run.context.recorded_run; a worker job has none.
    run_id = structlog.contextvars.get_contextvars().get("run_id")
    by = f"by run {run_id} " if run_id is not None else ""
    appended = revisions.append(
        engine,
        content_hash=active.loaded.content_hash,
        canonical_json=active.document.canonical_json(),
        yaml_text=active.loaded.text,
        author=default_author(),
        comment=f"applied {by}from {active.file}",
        now=now,
    )
    if appended.created:
        log.info("mappings.revision_applied", revision=appended.revision.id, file=str(active.file))
    return appended.revision.id


# --------------------------------------------------------------------------- apply, history, export


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """What `mappings apply` did: the revision now current, whether it is new, and what changed."""

    revision: revisions.RevisionInfo
    created: bool
    summary: str
    warnings: tuple[str, ...]
    diff: DocumentDiff | None


def apply_file(engine: Engine, path: Path, *, author: str, comment: str, now: datetime) -> ApplyOutcome:
    """Store the document at ``path`` as a new revision when its content differs from the current one."""
    return apply_document(engine, read_document(path), author=author, comment=comment, now=now)


def apply_document(
    engine: Engine,
    loaded: LoadedDocument,
    *,
    author: str,
    comment: str,
    now: datetime,
    parent: int | revisions.AnyParent | None = revisions.ANY_PARENT,
) -> ApplyOutcome:
    """Store a validated document as a new revision when its content differs from the current one.

    ``parent``: the revision the document was edited from; when another revision was applied since,
    StaleParent is raised and nothing is stored (the console passes it; the CLI applies files as is).
    """
    warnings = tuple(
        f"line {finding.line}: {finding.message}" if finding.line else finding.message
        for finding in check_document(loaded.document)
        if finding.level == "warning"
    )
    appended = revisions.append(
        engine,
        content_hash=loaded.content_hash,
        canonical_json=loaded.document.canonical_json(),
        yaml_text=loaded.text,
        author=author,
        comment=comment,
        now=now,
        parent=parent,
    )
    changes = None
    if appended.created and appended.revision.info.parent_id is not None:
        with engine.connect() as conn:
            before = revisions.get(conn, appended.revision.info.parent_id)
        if before is not None:
            changes = diff_revisions(before, appended.revision)
    return ApplyOutcome(appended.revision.info, appended.created, loaded.summary(), warnings, changes)


def history(engine: Engine, *, limit: int | None = None) -> list[revisions.RevisionInfo]:
    with engine.connect() as conn:
        return revisions.history(conn, limit=limit)


def get_revision(conn: Connection, revision_id: int | None) -> revisions.Revision:
    """Revision ``revision_id`` (None = the current one), or a ConfigError that says which exist."""
    found = revisions.current(conn) if revision_id is None else revisions.get(conn, revision_id)
    if found is not None:
        return found
    latest = revisions.current(conn)
    if latest is None:
        raise ConfigError("no mapping revision is stored yet: run `hourbridge mappings apply FILE` first")
    raise ConfigError(
        f"there is no mapping revision {revision_id}; revisions run from 1 to {latest.id} "
        "(see `hourbridge mappings history`)"
    )


def export(engine: Engine, revision_id: int | None = None) -> str:
    """The YAML text revision ``revision_id`` (default: current) was applied from, byte for byte."""
    with engine.connect() as conn:
        return get_revision(conn, revision_id).yaml_text


def diff(engine: Engine, old_id: int, new_id: int | None = None) -> DocumentDiff:
    """Revision ``old_id`` against ``new_id`` (default: the current revision)."""
    with engine.connect() as conn:
        old = get_revision(conn, old_id)
        new = get_revision(conn, new_id)
    return diff_revisions(old, new)
