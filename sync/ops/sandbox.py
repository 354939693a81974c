"""`hourbridge sandbox`: the demo's emulators standing on their own, and the settings that point hourbridge at them."""

from __future__ import annotations

import dataclasses
import json
import shlex
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from connectors.clockify import ClockifyConfig
from connectors.errors import ConfigError
from connectors.harvest import HarvestConfig
from connectors.sandbox import toggl as toggl_sandbox
from connectors.sandbox._server import HostedSandbox
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.clickup import ClickUpSandbox
from connectors.sandbox.clockify import ClockifySandbox
from connectors.sandbox.dataset import Dataset, generate_dataset
from connectors.sandbox.harvest import HarvestSandbox
from connectors.sandbox.monday import MondaySandbox
from connectors.sandbox.toggl import TogglSandbox
from connectors.toggl import TogglConfig
from sync.admin.revisions import read_document
from sync.ops.demo import (
    EXAMPLE_MAPPINGS,
    database_url,
    demo_settings,
    quickbooks_sandbox,
    xero_sandbox,
)
from sync.settings import ENV_PREFIX, Settings

# Port offsets from --port: one emulator each, in this order.
EMULATORS = ("asana", "clickup", "monday", "quickbooks", "xero", "harvest", "toggl", "clockify")
# The tools the data set's projects are spread over: each project's time is in exactly one of them.
SOURCES = ("asana", "clickup", "monday", "harvest", "toggl", "clockify")


@dataclass(frozen=True, slots=True)
class SandboxSession:
    """The running emulators, their data set, and the variables that point hourbridge at them."""

    dataset: Dataset
    urls: dict[str, str]
    environment: dict[str, str]

    def exports(self) -> list[str]:
        """``export HOURBRIDGE_…=…`` lines a POSIX shell can paste or ``eval``."""
        return [f"export {name}={shlex.quote(value)}" for name, value in self.environment.items()]


def section_environment(name: str, section: BaseModel) -> dict[str, str]:
    """``HOURBRIDGE_<NAME>__<FIELD>`` for every field of a settings section that is not its default.

    Secrets are written out (they are the emulators' fixed fake tokens); lists as JSON, which is
    how pydantic-settings reads them back.
    """
    values: dict[str, str] = {}
    for field_name, field in type(section).model_fields.items():
        value = getattr(section, field_name)
        if not field.is_required() and value == field.get_default(call_default_factory=True):
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, list | tuple | dict):
            text = json.dumps(list(value) if isinstance(value, tuple) else value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        values[f"{ENV_PREFIX}{name.upper()}__{field_name.upper()}"] = text
    return values


def sandbox_environment(settings: Settings, mappings_file: Path, workdir: Path) -> dict[str, str]:
    """Every variable a `hourbridge sync` needs to pull from and deliver to the emulators."""
    environment = {
        f"{ENV_PREFIX}DATABASE_URL": database_url(workdir / "hourbridge-sandbox.db"),
        f"{ENV_PREFIX}OUTPUT_DIR": str((workdir / "hourbridge-sandbox-out").resolve()),
        f"{ENV_PREFIX}MAPPINGS_FILE": str(mappings_file.resolve()),
        # The data set starts here: the first run pulls all of it, not only the look-back.
        f"{ENV_PREFIX}START_DATE": str(settings.start_date),
    }
    for name in (*settings.enabled_sources(), *settings.enabled_sinks()):
        section = getattr(settings, name)
        environment.update(section_environment(name, section))
    return environment


@contextmanager
def run_sandboxes(
    *, port: int = 0, seed: int = 7, today: date, mappings_file: Path | None = None, workdir: Path
) -> Iterator[SandboxSession]:
    """Start every emulator on 127.0.0.1 (``port``, ``port+1``, … or free ports with 0) until the block ends.

    The data set ends yesterday; its projects are spread over the three PM tools and the three
    trackers (Harvest, Toggl Track, Clockify), so a sync pulls every entry exactly once. QuickBooks
    and Xero know every vendor, customer, item, class, account and cost center ``mappings_file``
    names (default: the demo's document), so the time it maps can be delivered there.
    """
    if port and not 1024 <= port <= 65535 - len(EMULATORS):
        raise ConfigError(
            f"--port {port}: choose a base port from 1024 to {65535 - len(EMULATORS)} (or 0 for free ports)"
        )
    chosen = mappings_file or EXAMPLE_MAPPINGS
    if not chosen.is_file():
        raise ConfigError(f"--mappings {chosen} does not exist; give your mapping document, or leave it out")
    document = read_document(chosen).document  # an invalid document is refused here, naming its line
    dataset = generate_dataset(seed, anchor=today - timedelta(days=1))
    projects = spread_projects(dataset)
    # The trackers serve every entry of the data set they are given: only their projects' time.
    harvest = HarvestSandbox(only_projects(dataset, projects["harvest"]))
    toggl = TogglSandbox(only_projects(dataset, projects["toggl"]))
    clockify = ClockifySandbox(only_projects(dataset, projects["clockify"]))
    emulators: dict[str, HostedSandbox] = {
        "asana": AsanaSandbox(dataset, projects=projects["asana"]),
        "clickup": ClickUpSandbox(dataset, projects=projects["clickup"]),
        "monday": MondaySandbox(dataset, projects=projects["monday"]),
        "quickbooks": quickbooks_sandbox(dataset, document),
        "xero": xero_sandbox(dataset, document),
        "harvest": harvest,
        "toggl": toggl,
        "clockify": clockify,
    }
    if port:
        for offset, name in enumerate(EMULATORS):
            _require_free(port, offset, name)
    with ExitStack() as stack:
        for offset, name in enumerate(EMULATORS):
            emulators[name].start(port + offset if port else 0)
            stack.callback(emulators[name].stop)
        settings = demo_settings(
            dataset,
            workdir / "hourbridge-sandbox.db",
            workdir / "hourbridge-sandbox-out",
            **_by_role(emulators),
        ).model_copy(update=tracker_sections(harvest, toggl, clockify))
        yield SandboxSession(
            dataset=dataset,
            urls={name: emulator.base_url for name, emulator in emulators.items()},
            environment=sandbox_environment(settings, chosen, workdir),
        )


def spread_projects(dataset: Dataset) -> dict[str, list[str]]:
    """The data set's projects dealt over the PM tools and the trackers, as one agency's teams might use them."""
    ids = [project.id for project in dataset.projects]
    return {tool: ids[offset :: len(SOURCES)] for offset, tool in enumerate(SOURCES)}


def only_projects(dataset: Dataset, projects: list[str]) -> Dataset:
    """``dataset`` with only the entries of ``projects`` (its people, clients and projects all kept)."""
    chosen = set(projects)
    return dataclasses.replace(dataset, entries=tuple(e for e in dataset.entries if e.project_id in chosen))


def tracker_sections(harvest: HarvestSandbox, toggl: TogglSandbox, clockify: ClockifySandbox) -> dict[str, Any]:
    """The settings of the three trackers, each with its administrator's token (everyone's time)."""
    return {
        "harvest": HarvestConfig(
            token=SecretStr(harvest.token),
            account_id=harvest.account_id,
            contact_email="sandbox@example.com",
            base_url=harvest.base_url,
        ),
        "toggl": TogglConfig(
            token=SecretStr(toggl.token),
            feed="workspace",
            workspace_ids=[str(toggl_sandbox.WORKSPACE_ID)],
            plan="premium",  # the emulator's plan: its hourly quota of workspace calls
            base_url=toggl.base_url,
        ),
        "clockify": ClockifyConfig(
            token=SecretStr(clockify.token), base_url=clockify.api_url, reports_url=clockify.reports_url
        ),
    }


def _require_free(port: int, offset: int, name: str) -> None:
    # werkzeug would print its own advice and exit the process; say which option to change instead.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port + offset))
        except OSError as exc:
            raise ConfigError(
                f"--port {port}: the {name} emulator cannot listen on 127.0.0.1:{port + offset} ({exc.strerror}); "
                "choose another base port, or 0 for free ports"
            ) from None


def _by_role(emulators: dict[str, HostedSandbox]) -> dict[str, Any]:
    return {
        "asana": emulators["asana"],
        "clickup": emulators["clickup"],
        "monday": emulators["monday"],
        "qbo": emulators["quickbooks"],
        "xero": emulators["xero"],
    }
