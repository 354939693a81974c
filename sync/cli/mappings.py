"""Mapping commands of the CLI: `mappings apply|history|export|diff|preview|explain|suggest` and `unmapped`."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import Engine

from sync.admin import diff as mapping_diff
from sync.admin import preview as mapping_preview
from sync.admin import revisions as mapping_revisions
from sync.admin import unmapped as mapping_unmapped
from sync.cli.shared import admin_errors as _admin_errors
from sync.cli.shared import out, parse_period
from sync.reporting.model import Period, format_hours

PeriodOption = Annotated[
    str | None, typer.Option(help="Month, YYYY-MM (default: every live entry, since every period is open).")
]
FromOption = Annotated[str | None, typer.Option("--from", help="First work date (YYYY-MM-DD), with --to.")]
ToOption = Annotated[str | None, typer.Option(help="Last work date (YYYY-MM-DD), with --from.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

SUGGEST_HELP = f"""Write rules that would map the unmapped entries, grouped by what they miss, largest first.

With --write FILE the rules are appended to FILE as a commented-out block, each with
`code: {mapping_unmapped.PLACEHOLDER_CODE}`: a code nobody chose would either be unknown (the document
becomes invalid and every run stops) or a guess (hours billed to the wrong client). So the file stays
valid and means exactly what it meant; to use a rule, put a code from `codes` in place of
{mapping_unmapped.PLACEHOLDER_CODE}, remove the leading '# ' of its lines, then `mappings check` and
`mappings apply`. The file is validated before and after, and replaced atomically.
Without --write the block is printed."""


def register(app: typer.Typer, mappings_app: typer.Typer) -> None:
    """Add the mapping commands to the `hourbridge` app and its `mappings` group."""
    mappings_app.info.help = "Check, apply and review the mapping document and its stored revisions."
    mappings_app.command("apply")(mappings_apply)
    mappings_app.command("history")(mappings_history)
    mappings_app.command("export")(mappings_export)
    mappings_app.command("diff")(mappings_diff)
    mappings_app.command("preview")(mappings_preview)
    mappings_app.command("explain")(mappings_explain)
    mappings_app.command("suggest", help=SUGGEST_HELP)(mappings_suggest)
    app.command("unmapped")(unmapped)


# sync.cli.app imports this module, so its helpers are looked up when a command runs, not at import.


def _engine() -> Engine:
    """The store, for commands that only read it: it must exist and be migrated."""
    from sync.cli.shared import command_settings as _settings
    from sync.store.db import make_engine, require_current

    engine = make_engine(_settings().database_url)
    require_current(engine)
    return engine


def _period(period: str | None, from_: str | None, to: str | None) -> Period | None:
    if period is None and from_ is None and to is None:
        return None
    return parse_period(period, from_, to)


def _json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, default=str, sort_keys=True, indent=2, ensure_ascii=False) + "\n")


def _say(text: str, style: str | None = None) -> None:
    # Markup off: rule ids, task names and YAML may contain square brackets.
    out.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value.tzinfo else f"{value:%Y-%m-%d %H:%M} UTC"


# --------------------------------------------------------------------------- commands


@_admin_errors
def mappings_apply(
    file: Annotated[Path, typer.Argument(help="The mapping document (YAML) to store as the new revision.")],
    comment: Annotated[str, typer.Option(help="Why this change, for `mappings history`.")] = "",
    author: Annotated[str | None, typer.Option(help="Who applies it (default: $USER, else the OS user).")] = None,
) -> None:
    """Validate FILE and store it as a new revision when its content changed; runs map with it from then on."""
    from sync.cli.shared import command_settings as _settings
    from sync.store.db import make_engine, upgrade

    settings = _settings()
    # Validate before touching the database: an invalid document writes nothing, not even the schema.
    mapping_revisions.read_document(file)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    outcome = mapping_revisions.apply_file(
        engine,
        file,
        author=author or mapping_revisions.default_author(),
        comment=comment,
        now=datetime.now(UTC),
    )
    revision = outcome.revision
    for warning in outcome.warnings:
        _say(f"warning {file} {warning}", "yellow")
    if not outcome.created:
        _say(
            f"unchanged, still revision {revision.id} (applied {_when(revision.created_at)} by {revision.author})",
            "green",
        )
    else:
        _say(f"revision {revision.id} stored ({outcome.summary}) by {revision.author}", "green")
        if outcome.diff is not None:
            _print_changes(outcome.diff)
    gitops = settings.mappings_file
    if gitops.is_file() and gitops.resolve() != file.resolve():
        _say(
            f"note: {mapping_revisions.SETTING} names {gitops}, which every run applies; the next run stores it as "
            f"a new revision and maps with it unless it has the same content. Unset {mapping_revisions.SETTING} "
            "(or point it at this file) to keep this revision.",
            "yellow",
        )


@_admin_errors
def mappings_history(
    limit: Annotated[int | None, typer.Option(min=1, help="Show only the newest N revisions.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Every stored revision, newest first: when, who, why, content hash."""
    found = mapping_revisions.history(_engine(), limit=limit)
    if json_output:
        _json(
            [
                {
                    "revision": r.id,
                    "parent": r.parent_id,
                    "created_at": r.created_at.isoformat(),
                    "author": r.author,
                    "comment": r.comment,
                    "content_hash": r.content_hash,
                }
                for r in found
            ]
        )
        return
    if not found:
        _say("no mapping revision is stored yet: run `hourbridge mappings apply FILE`")
        return
    table = Table(title="Mapping revisions")
    for column in ("revision", "created", "author", "comment", "hash"):
        table.add_column(column)
    for position, r in enumerate(found):
        current = " (current)" if position == 0 else ""
        table.add_row(f"{r.id}{current}", _when(r.created_at), r.author, r.comment, r.content_hash[:12])
    out.print(table)


@_admin_errors
def mappings_export(
    revision: Annotated[int | None, typer.Argument(help="Revision number (default: the current one).")] = None,
) -> None:
    """Print the YAML text a revision was applied from, byte for byte (redirect it to a file to edit it)."""
    sys.stdout.write(mapping_revisions.export(_engine(), revision))


@_admin_errors
def mappings_diff(
    old: Annotated[int, typer.Argument(help="The older revision.")],
    new: Annotated[int | None, typer.Argument(help="The newer revision (default: the current one).")] = None,
    json_output: JsonOption = False,
) -> None:
    """What changed between two revisions: codes, people and rules added, removed or changed, then the text."""
    result = mapping_revisions.diff(_engine(), old, new)
    if json_output:
        _json(result.as_dict())
        return
    if not result.changes:
        _say(f"revisions {result.old} and {result.new} map entries the same way (no code, person or rule differs)")
    else:
        _print_changes(result)
    for line in result.text.splitlines():
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        _say(line, style)


def _print_changes(result: mapping_diff.DocumentDiff) -> None:
    table = Table(title=f"Revision {result.old} → {result.new}")
    for column in ("part", "id", "change", "what"):
        table.add_column(column)
    for change in result.changes:
        table.add_row(change.part, change.key, change.change, ", ".join(change.fields))
    out.print(table)


@_admin_errors
def mappings_preview(
    file: Annotated[Path, typer.Argument(help="The draft mapping document to compare with the current revision.")],
    period: PeriodOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    json_output: JsonOption = False,
) -> None:
    """What applying FILE would change for live entries: hours moving between codes, newly (un)mapped. Read-only."""
    chosen = _period(period, from_, to)
    result = mapping_preview.preview(_engine(), file, chosen)
    if json_output:
        _json(result.as_dict())
        return
    against = f"revision {result.against}" if result.against is not None else "no stored revision (all unmapped)"
    scope = chosen.label if chosen is not None else "all periods"
    _say(
        f"{file} against {against}, {scope}: {result.changed_entries} of {result.entries} live entries "
        f"would change code; {result.rule_changes} keep their code under another rule"
    )
    if not result.moves:
        return
    table = Table(title="Entries that would change code")
    for column in ("change", "from", "to", "entries"):
        table.add_column(column)
    table.add_column("hours", justify="right")
    for move in result.moves:
        before, after = move.before or "(unmapped)", move.after or "(unmapped)"
        table.add_row(move.kind, before, after, str(move.entries), format_hours(move.seconds))
    out.print(table)


@_admin_errors
def mappings_explain(
    entry: Annotated[str, typer.Argument(help="source:account:external_id, or an external id that is unique.")],
    file: Annotated[
        Path | None, typer.Option("--file", help="Explain against this draft document instead of the current revision.")
    ] = None,
) -> None:
    """One entry's fields, which rule maps it and why, the rules that nearly applied, and which revision mapped it."""
    result = mapping_preview.explain(_engine(), entry, file)
    table = Table(title=f"Entry {result.ref}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for label, value in result.fields():
        table.add_row(label, value)
    table.add_row("stored result", result.stored())
    out.print(table)
    _say(f"against {result.against}: {result.explanation.describe().splitlines()[0]}", "bold")
    if result.against_revision is not None and result.stored_revision not in (None, result.against_revision):
        _say(f"(stored by revision {result.stored_revision}; the next run re-maps it with {result.against})")
    misses = result.explanation.near_misses
    if not misses:
        _say("no other rule came close")
        return
    near = Table(title="Rules that nearly applied (closest first)")
    for column in ("rule", "line", "priority", "key", "why not"):
        near.add_column(column)
    for miss in misses:
        near.add_row(miss.rule_id, str(miss.line or ""), str(miss.priority), miss.key, miss.reason)
    out.print(near)


@_admin_errors
def mappings_suggest(
    write: Annotated[
        Path | None, typer.Option("--write", help="Append the suggestions, commented out, to this mapping document.")
    ] = None,
    period: PeriodOption = None,
    from_: FromOption = None,
    to: ToOption = None,
) -> None:
    chosen = _period(period, from_, to)
    groups = mapping_unmapped.unmapped_queue(_engine(), chosen)
    if write is None:
        blocks = [group.suggestion() for group in groups if group.rule is not None]
        if not blocks:
            _say("nothing to suggest: no unmapped entry that a rule would map")
            return
        sys.stdout.write("\n".join(blocks))
        return
    written = mapping_unmapped.write_suggestions(write, groups, period=chosen, today=datetime.now(UTC).date())
    if written.rules == 0:
        _say(f"nothing to suggest: no unmapped entry that a rule would map; {write} is unchanged")
        return
    where = "at the end of its rules list" if written.appendable else "(move the ones you keep under 'rules:')"
    _say(
        f"{written.rules} suggested rule(s) appended to {write}, commented out {where}: replace "
        f"{mapping_unmapped.PLACEHOLDER_CODE}, uncomment, then `hourbridge mappings check` and `mappings apply`",
        "green",
    )


@_admin_errors
def unmapped(
    period: PeriodOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    json_output: JsonOption = False,
) -> None:
    """The exception queue: unmapped entries grouped by what they miss, largest hours first, with a rule for each."""
    chosen = _period(period, from_, to)
    groups = mapping_unmapped.unmapped_queue(_engine(), chosen)
    if json_output:
        _json([group.as_dict() for group in groups])
        return
    scope = chosen.label if chosen is not None else "all periods"
    if not groups:
        _say(f"nothing unmapped ({scope})", "green")
        return
    total = sum(group.seconds for group in groups)
    table = Table(title=f"Unmapped, {scope}: {format_hours(total)} h in {sum(g.entries for g in groups)} entries")
    table.add_column("#", justify="right")
    table.add_column("hours", justify="right")
    for column in ("entries", "people", "source", "reason", "what is missing"):
        table.add_column(column)
    for number, group in enumerate(groups, 1):
        table.add_row(
            str(number),
            format_hours(group.seconds),
            str(group.entries),
            str(group.people),
            group.source,
            group.reason,
            group.missing,
        )
    out.print(table)
    for number, group in enumerate(groups, 1):
        _say(f"\n#{number} {group.hint}", "bold")
        _say(f"   e.g. {', '.join(group.examples)}")
        snippet = group.suggestion()
        if snippet:
            _say(snippet.rstrip("\n"))
    _say(
        f"\nTo use a suggestion: add it under 'rules:' with a real code instead of "
        f"{mapping_unmapped.PLACEHOLDER_CODE}, then `hourbridge mappings preview FILE` and `mappings apply FILE` "
        "(`hourbridge mappings suggest --write FILE` appends them for you, commented out)."
    )
