"""Turn Asana time-tracking payloads into normalized ``TimeEntry`` values."""

from __future__ import annotations

from datetime import UTC

from connectors.asana.schema import AsanaRef, AsanaTask, AsanaTimeEntry, AsanaUser
from connectors.model import Container, Person, Scope, TaskRef, TimeEntry, normalize_custom_fields

# Asana: billable_status is billable | nonBillable | notApplicable; "not applicable" means the
# project does not track billability, which we keep as unknown so the code's default applies.
_BILLABLE = {"billable": True, "nonBillable": False}


def normalize_entry(
    payload: AsanaTimeEntry,
    *,
    scope: Scope,
    users: dict[str, AsanaUser],
    task: AsanaTask | None,
) -> TimeEntry:
    creator = payload.created_by
    user = users.get(creator.gid) if creator else None
    person = Person(
        id=creator.gid if creator else "",
        name=(user.name if user and user.name else None) or (creator.name if creator else None) or "",
        email=(user.email.lower() if user and user.email else None),
    )
    # When the list left ``task`` out, the task recovered from a per-task listing stands in for it.
    task_ref = payload.task or (AsanaRef(gid=task.gid, name=task.name) if task is not None else None)
    task_name = (task.name if task and task.name else None) or (task_ref.name if task_ref else None) or ""
    containers = [Container("workspace", scope.account, scope.name)]
    if payload.attributable_to is not None:
        containers.append(Container("project", payload.attributable_to.gid, payload.attributable_to.name or ""))
    custom: dict[str, str | None] = {}
    tags: tuple[str, ...] = ()
    if task is not None:
        custom = {f.name: f.display_value for f in task.custom_fields or () if f.name}
        tags = tuple(sorted({t.name for t in task.tags or () if t.name}))
    created_at = payload.created_at
    if created_at is not None:
        created_at = created_at.astimezone(UTC) if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    return TimeEntry(
        source="asana",
        account=scope.account,
        external_id=payload.gid,
        work_date=payload.entered_on,
        # Asana: duration_minutes is whole minutes; a missing value is a zero-length entry.
        duration_seconds=max(0, int(payload.duration_minutes or 0)) * 60,
        person=person,
        task=TaskRef(task_ref.gid, task_name) if task_ref is not None else None,
        containers=tuple(containers),
        tags=tags,
        categories=tuple(sorted(c.name for c in payload.categories or () if c.name)),
        custom_fields=normalize_custom_fields(custom),
        billable=_BILLABLE.get(payload.billable_status or ""),
        approval_status=payload.approval_status,
        description=payload.description or None,
        recorded_at=created_at,
    )


def listing_unchanged(payload: AsanaTimeEntry, stored: TimeEntry) -> bool:
    """Whether everything the list said about an entry matches what the ledger stored for it.

    Only the fields the list returned are compared, so a compact listing (duration, day, project,
    person, categories) leaves task, billability and approval to the stored entry. A stored entry
    without a description is not compared on it: the ledger drops descriptions when told to.
    """
    project = stored.container("project")
    listed_project = payload.attributable_to
    fields = payload.model_fields_set
    checks = [
        max(0, int(payload.duration_minutes or 0)) * 60 == stored.duration_seconds,
        payload.entered_on == stored.work_date,
        (listed_project.gid if listed_project else None) == (project.id if project else None),
        (listed_project.name or "" if listed_project else "") == (project.name if project else ""),
        (payload.created_by.gid if payload.created_by else "") == stored.person.id,
        tuple(sorted(c.name for c in payload.categories or () if c.name)) == stored.categories,
    ]
    if "task" in fields:
        checks.append((payload.task.gid if payload.task else None) == (stored.task.id if stored.task else None))
    if "billable_status" in fields:
        checks.append(_BILLABLE.get(payload.billable_status or "") == stored.billable)
    if "approval_status" in fields:
        checks.append(payload.approval_status == stored.approval_status)
    if "description" in fields and stored.description is not None:
        checks.append((payload.description or None) == stored.description)
    return all(checks)
