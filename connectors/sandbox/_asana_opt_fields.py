"""The ``opt_fields`` enum of each GET the Asana emulator serves, as ``asana_oas.yaml`` states it.

Built from the spec's repeated sub-field groups (a custom field, a user, a task's compact form) so
the emulator can refuse what the real API refuses without reading the spec at run time;
``tests/unit/test_sandbox_asana.py`` compares these sets with the spec whenever ``../shared/specs`` is present.
"""

from __future__ import annotations

from collections.abc import Iterable


def _with(prefix: str, fields: Iterable[str] = ()) -> set[str]:
    """``prefix`` itself and each of its sub-fields as ``prefix.field``."""
    return {prefix, *(f"{prefix}.{field}" for field in fields)}


def _named(*references: str) -> set[str]:
    """Each compact reference and its ``name`` (the spec offers both for most references)."""
    return {field for reference in references for field in _with(reference, ("name",))}


# A listing's ``next_page`` fields: list operations take them, single-object GETs do not.
NEXT_PAGE = {"offset", "path", "uri"}

_ENUM_OPTION = ("color", "enabled", "name")
# A custom field as users and projects carry it.
CUSTOM_FIELD_COMPACT = {
    *_with("date_value", ("date", "date_time")),
    "display_value",
    "enabled",
    *_with("enum_options", _ENUM_OPTION),
    *_with("enum_value", _ENUM_OPTION),
    "id_prefix",
    "input_restrictions",
    "is_formula_field",
    *_with("multi_enum_values", _ENUM_OPTION),
    "name",
    "number_value",
    "representation_type",
    "text_value",
    "type",
}
# A custom field in full, as tasks and a project's custom field settings carry it.
CUSTOM_FIELD = CUSTOM_FIELD_COMPACT | {
    "asana_created_field",
    *_named("created_by", "people_value", "reference_value"),
    "currency_code",
    "custom_label",
    "custom_label_position",
    "default_access_level",
    "description",
    "format",
    "has_notifications_enabled",
    "html_text_value",
    "is_global_to_workspace",
    "is_value_read_only",
    "precision",
    "privacy_setting",
    "resource_subtype",
}
# A task's compact form, as a subtask's parent and a time entry's task.
TASK_COMPACT = ("created_by", "name", "resource_subtype")

USER = frozenset(
    {
        *_with("custom_fields", CUSTOM_FIELD_COMPACT),
        "email",
        "name",
        *_with(
            "photo", ("image_1024x1024", "image_128x128", "image_21x21", "image_27x27", "image_36x36", "image_60x60")
        ),
        *_named("workspaces"),
    }
)

# A project's status update, as its ``current_status`` shows it.
_STATUS_UPDATE = {*_named("author", "created_by"), "color", "created_at", "html_text", "modified_at", "text", "title"}

PROJECT = {
    "archived",
    "color",
    "completed",
    "completed_at",
    *_named("completed_by", "created_from_template", "followers", "members", "team", "workspace"),
    "created_at",
    *_with("current_status", _STATUS_UPDATE),
    *_with("current_status_update", ("resource_subtype", "title")),
    *_with(
        "custom_field_settings", (*_with("custom_field", CUSTOM_FIELD), "is_important", *_named("parent", "project"))
    ),
    *_with("custom_fields", CUSTOM_FIELD_COMPACT),
    "default_access_level",
    "default_view",
    "due_date",
    "due_on",
    "html_notes",
    "icon",
    "minimum_access_level_for_customization",
    "minimum_access_level_for_sharing",
    "modified_at",
    "name",
    "notes",
    "owner",
    "permalink_url",
    "privacy_setting",
    "project_brief",
    "public",
    "start_on",
}

TASK = {
    "actual_time_minutes",
    "approval_status",
    *_named("assigned_by", "assignee", "assignee_section", "completed_by", "custom_type", "custom_type_status_option"),
    *_named("followers", "projects", "tags", "workspace"),
    "assignee_status",
    "completed",
    "completed_at",
    "created_at",
    "created_by",
    *_with("custom_fields", CUSTOM_FIELD),
    "dependencies",
    "dependents",
    "due_at",
    "due_on",
    *_with("external", ("data",)),
    "hearted",
    *_with("hearts", _with("user", ("name",))),
    "html_notes",
    "is_rendered_as_separator",
    "liked",
    *_with("likes", _with("user", ("name",))),
    *_with("memberships", _named("project", "section")),
    "modified_at",
    "name",
    "notes",
    "num_hearts",
    "num_likes",
    "num_subtasks",
    *_with("parent", TASK_COMPACT),
    "permalink_url",
    "resource_subtype",
    "start_at",
    "start_on",
}

TIME_ENTRY_COMPACT = {
    *_named("attributable_to", "created_by"),
    *_with("categories", ("color", "name")),
    "duration_minutes",
    "entered_on",
}
TIME_ENTRY = TIME_ENTRY_COMPACT | {
    "approval_status",
    "billable_status",
    "created_at",
    "description",
    *_with("task", TASK_COMPACT),
}

# Keyed by the spec path; the emulator maps its route names onto these.
OPT_FIELDS: dict[str, frozenset[str]] = {
    "/users/{user_gid}": USER,
    "/workspaces": frozenset({"email_domains", "is_organization", "name", *NEXT_PAGE}),
    "/workspaces/{workspace_gid}/users": USER,
    "/projects": frozenset(PROJECT | NEXT_PAGE),
    "/projects/{project_gid}": frozenset(PROJECT),
    "/tasks": frozenset(TASK | NEXT_PAGE),
    "/tasks/{task_gid}": frozenset(TASK),
    "/time_tracking_entries": frozenset(TIME_ENTRY_COMPACT | NEXT_PAGE),
    "/time_tracking_entries/{time_tracking_entry_gid}": frozenset(TIME_ENTRY),
    "/tasks/{task_gid}/time_tracking_entries": frozenset(TIME_ENTRY_COMPACT | NEXT_PAGE),
    "/timesheet_approval_statuses": frozenset(
        {"approval_status", "created_at", "end_date", "start_date", *_named("user", "workspace"), *NEXT_PAGE}
    ),
}
