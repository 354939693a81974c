"""Lint of deploy/: files parse, every variable is a setting, no sandbox ids, the three PM tokens everywhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.sandbox.quickbooks import DEFAULT_REALM
from connectors.sandbox.xero import DEFAULT_TENANT
from sync.settings_env import EXTRA_VARIABLES, setting_fields

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
PM_TOOLS = ("asana", "clickup", "monday")
# Settings naming an account of the admin's: in deploy/ only as marked placeholders.
ACCOUNT_IDS = (
    "HOURBRIDGE_ASANA__WORKSPACES",
    "HOURBRIDGE_CLICKUP__TEAM_IDS",
    "HOURBRIDGE_MONDAY__BOARD_IDS",
    "HOURBRIDGE_QUICKBOOKS__REALM_ID",
    "HOURBRIDGE_XERO__TENANT_ID",
)
VARIABLE = re.compile(r"\bHOURBRIDGE_[A-Z0-9_]*[A-Z0-9]")
SECRET_FILE = re.compile(r"\bhourbridge_[a-z0-9_]*[a-z0-9]")
LONG_NUMBER = re.compile(r"(?<![\d.])\d{7,}(?![\d.])")
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)


def deploy_files() -> Iterator[Path]:
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and "secrets" not in path.relative_to(DEPLOY).parts:
            yield path


def known_variables() -> frozenset[str]:
    return frozenset({f.env for f in setting_fields()} | EXTRA_VARIABLES)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def projected_paths(pod: dict[str, Any]) -> dict[str, str]:
    """Secret file name → Secret key, over every projected secret of a pod spec."""
    found: dict[str, str] = {}
    for volume in pod.get("volumes", []):
        for source in volume.get("projected", {}).get("sources", []):
            for item in source.get("secret", {}).get("items", []):
                found[item["path"]] = item["key"]
    return found


def test_the_deploy_folder_has_the_three_kinds_of_deployment() -> None:
    names = {path.relative_to(DEPLOY).as_posix() for path in deploy_files()}
    assert {"compose.yaml", "kubernetes/kustomization.yaml", "systemd/hourbridge.service"} <= names
    assert "systemd/hourbridge.env" in names


def test_every_yaml_file_parses_to_a_mapping() -> None:
    files = [path for path in deploy_files() if path.suffix in (".yaml", ".yml")]
    assert len(files) >= 7
    for path in files:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        assert documents and all(isinstance(doc, dict) for doc in documents), path


def test_every_hourbridge_variable_and_secret_file_is_a_known_setting() -> None:
    known = known_variables()
    unknown: list[str] = []
    for path in deploy_files():
        text = path.read_text(encoding="utf-8")
        names = set(VARIABLE.findall(text))
        # Secret files are named like their variable in lower case. The README also names metrics
        # (hourbridge_api_calls_total), which are not settings, so it is checked for variables only.
        if path.name != "README.md":
            names |= {name.upper() for name in SECRET_FILE.findall(text)}
        unknown += [f"{path.relative_to(DEPLOY)}: {name}" for name in sorted(names - known)]
    assert unknown == []


def test_the_lint_catches_a_misspelt_variable() -> None:
    # The check above is only worth something if it would see a typo.
    known = known_variables()
    assert set(VARIABLE.findall("HOURBRIDGE_ASANA_TOKEN=x HOURBRIDGE_ASANA__TOKEN=y")) - known == {
        "HOURBRIDGE_ASANA_TOKEN"
    }
    assert {n.upper() for n in SECRET_FILE.findall("/run/secrets/hourbridge_clickup_token")} - known


def test_no_sandbox_or_other_hard_coded_account_ids() -> None:
    for path in deploy_files():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(DEPLOY)
        assert DEFAULT_REALM not in text and DEFAULT_TENANT not in text, where
        assert LONG_NUMBER.findall(text) == [], f"{where}: a numeric id (use a <PLACEHOLDER>)"
        assert UUID.findall(text) == [], f"{where}: an id (use a <PLACEHOLDER>)"
        for number, line in enumerate(text.splitlines(), start=1):
            for setting in ACCOUNT_IDS:
                if setting in line and "=" in line.replace(":", "="):
                    assert re.search(r"<[A-Z_]+>", line), f"{where}:{number}: {setting} without a <PLACEHOLDER>"


@pytest.mark.parametrize("tool", PM_TOOLS)
def test_each_pm_token_is_wired_in_compose(tool: str) -> None:
    compose = load_yaml(DEPLOY / "compose.yaml")
    secret = f"hourbridge_{tool}__token"
    assert compose["secrets"][secret] == {"file": f"./secrets/{secret}.txt"}
    for name, service in compose["services"].items():
        if name in ("postgres",):
            continue
        assert secret in service["secrets"], f"{name} does not mount {secret}"
    # Every secret a service mounts is defined, and every defined one is used.
    mounted = {s for service in compose["services"].values() for s in service.get("secrets", [])}
    assert mounted == set(compose["secrets"])


@pytest.mark.parametrize("tool", PM_TOOLS)
def test_each_pm_token_is_wired_in_kubernetes(tool: str) -> None:
    secret_file = f"hourbridge_{tool}__token"
    for name in ("sync-cronjob.yaml", "worker-deployment.yaml"):
        doc = load_yaml(K8S / name)
        pod = (
            doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            if doc["kind"] == "CronJob"
            else doc["spec"]["template"]["spec"]
        )
        paths = projected_paths(pod)
        assert paths.get(secret_file) == f"{tool}-token", f"{name}: {secret_file}"
        # A tool that is not used has no key in the Secret: its source must be optional.
        (source,) = [
            s["secret"]
            for v in pod["volumes"]
            for s in v.get("projected", {}).get("sources", [])
            if any(i["path"] == secret_file for i in s.get("secret", {}).get("items", []))
        ]
        assert source["name"] == "hourbridge" and source.get("optional") is True, name
        assert paths["hourbridge_database_url"] == "database-url"
    assert f"--from-literal={tool}-token=" in (DEPLOY / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("tool", PM_TOOLS)
def test_each_pm_token_is_wired_in_systemd(tool: str) -> None:
    secret_file = f"hourbridge_{tool}__token"
    for unit in ("hourbridge.service", "hourbridge-worker.service"):
        text = (SYSTEMD / unit).read_text(encoding="utf-8")
        assert "EnvironmentFile=/etc/hourbridge/hourbridge.env" in text.splitlines()
        assert "Environment=HOURBRIDGE_SECRETS_DIR=/etc/hourbridge/secrets" in text.splitlines()
        assert secret_file in text, unit
    assert secret_file in (SYSTEMD / "hourbridge.env").read_text(encoding="utf-8")
    assert f"/etc/hourbridge/secrets/{secret_file}" in (DEPLOY / "README.md").read_text(encoding="utf-8")


def test_the_systemd_environment_file_holds_settings_and_no_secrets() -> None:
    known = known_variables()
    for line in (SYSTEMD / "hourbridge.env").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, _ = line.partition("=")
        assert sep and key in known, line
        assert "TOKEN" not in key and "SECRET" not in key, line


def test_the_systemd_install_includes_the_postgres_extra() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    installs = [line for line in readme.splitlines() if "pip install" in line and "/opt/hourbridge" in line]
    assert installs and all("[postgres]" in line for line in installs)


def test_connect_from_a_container_or_a_headless_server_is_documented() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert "connect quickbooks --paste" in readme
    assert "--bind 0.0.0.0" in readme and "-p 127.0.0.1:8765:8765" in readme
