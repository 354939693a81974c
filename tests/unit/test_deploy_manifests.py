"""Dockerfile, compose and Kubernetes manifests: pinned image, non-root, secrets by reference, probes, order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sync.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "kubernetes"


def docker_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    joined: list[str] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            joined.append(pending)
            pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def manifests() -> dict[str, dict[str, Any]]:
    return {path.name: yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(K8S.glob("*.yaml"))}


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def workloads() -> dict[str, dict[str, Any]]:
    return {name: doc for name, doc in manifests().items() if doc["kind"] in ("Deployment", "Job", "CronJob")}


def test_dockerfile_is_multi_stage_pinned_non_root_with_a_health_check() -> None:
    steps = docker_instructions()
    froms = [args for op, args in steps if op == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    for base in froms:
        image = base.split()[0]
        assert image.startswith("python:3.11.") and "-slim" in image, f"pinned slim Python 3.11 base: {image}"
    assert any(op == "COPY" and "--from=build" in args for op, args in steps)
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(op == "RUN" and "pip install" in args for op, args in steps)
    health = [args for op, args in steps if op == "HEALTHCHECK"]
    assert health and '"hourbridge", "health"' in health[0]
    cmd = " ".join(args for op, args in steps if op in ("CMD", "ENTRYPOINT"))
    assert "upgrade" not in cmd, "migrations are an explicit step, not hidden in CMD"
    assert not any("TOKEN" in args for op, args in steps if op in ("ENV", "ARG")), "no secrets baked in"


def test_compose_runs_workers_on_postgres_after_migrations_with_secrets_as_files() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    postgres = services["postgres"]
    assert "healthcheck" in postgres and postgres["volumes"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    worker = services["worker"]
    assert worker["command"] == ["worker"]
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert worker["depends_on"]["migrate-queue"]["condition"] == "service_completed_successfully"
    assert services["migrate-queue"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate-queue"]["command"] == ["db", "queue-upgrade"]
    sqlite = services["hourbridge-schedule"]
    assert sqlite["profiles"] == ["sqlite"]
    assert "db upgrade && exec hourbridge schedule" in " ".join(sqlite["entrypoint"])
    assert sqlite["environment"]["HOURBRIDGE_DATABASE_URL"].startswith("sqlite:")
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"}, f"secret {name} must come from a file, never inline"
    for name, service in services.items():
        env = service.get("environment", {})
        assert not any("TOKEN" in k or k.rsplit("_", 1)[-1] == "PASSWORD" for k in env), f"{name}: secret inline"
        assert "DATABASE_URL" not in env or env["DATABASE_URL"].startswith("sqlite:")


def test_every_workload_runs_non_root_with_limits_and_secrets_by_reference() -> None:
    found = workloads()
    assert {doc["kind"] for doc in found.values()} == {"Deployment", "Job", "CronJob"}
    for name, doc in found.items():
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name}/{container['name']}"
            assert container["image"] == "hourbridge", where  # tag pinned once, in kustomization.yaml
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert {"requests", "limits"} <= set(container["resources"]), where
            for env in container.get("env", []):
                assert "value" not in env or "TOKEN" not in env["name"], f"{where}: secret value inline"
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                assert "secretName" in volume["secret"], name
            for source in volume.get("projected", {}).get("sources", []):
                assert set(source) == {"secret"} and source["secret"]["name"] in {
                    "hourbridge",
                    "hourbridge-accounting",
                }, name
    assert not any(doc["kind"] == "Secret" for doc in manifests().values()), "Secrets are created, never committed"


def test_kustomization_lists_every_manifest_and_pins_the_image() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization["resources"])
    assert listed == {name for name in manifests() if name != "kustomization.yaml"}
    image = kustomization["images"][0]
    assert image["name"] == "hourbridge" and image["newTag"] not in ("", "latest")


def test_migrations_run_before_the_app() -> None:
    found = workloads()
    migrate = pod_spec(found["migrate-job.yaml"])
    assert [c["args"] for c in migrate["initContainers"]] == [["db", "upgrade"]]
    assert [c["args"] for c in migrate["containers"]] == [["db", "queue-upgrade"]]
    worker = pod_spec(found["worker-deployment.yaml"])
    assert worker["initContainers"][0]["args"][:2] == ["health", "--database-only"]
    assert "--queue" in worker["initContainers"][0]["args"]
    cron = pod_spec(found["sync-cronjob.yaml"])
    assert cron["initContainers"][0]["args"] == ["db", "upgrade"]
    assert cron["containers"][0]["args"] == ["sync"]


def test_worker_probes_use_health_and_shutdown_outlasts_the_graceful_timeout() -> None:
    deployment = workloads()["worker-deployment.yaml"]
    spec = pod_spec(deployment)
    worker = spec["containers"][0]
    assert worker["args"] == ["worker"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert worker[probe]["exec"]["command"][:2] == ["hourbridge", "health"], probe
    assert spec["terminationGracePeriodSeconds"] > Settings.model_fields["worker_shutdown_seconds"].default


def test_cronjob_follows_the_default_schedule_and_never_overlaps() -> None:
    cron = workloads()["sync-cronjob.yaml"]
    assert cron["spec"]["schedule"] == Settings.model_fields["schedule"].default
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    config = manifests()["configmap.yaml"]
    assert config["data"]["HOURBRIDGE_SCHEDULE"] == cron["spec"]["schedule"]
    assert "mappings.yaml" in config["data"]
    assert not any("TOKEN" in key for key in config["data"]), "tokens belong in the Secret"


def test_systemd_worker_unit_migrates_first_and_stops_gracefully() -> None:
    text = (DEPLOY / "systemd" / "hourbridge-worker.service").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines()]
    pre = [line for line in lines if line.startswith("ExecStartPre=")]
    assert pre[0].endswith("hourbridge db upgrade") and pre[1].endswith("hourbridge db queue-upgrade")
    assert any(line.startswith("ExecStart=") and line.endswith("hourbridge worker") for line in lines)
    assert "KillSignal=SIGTERM" in lines
    assert "User=hourbridge" in lines


def test_console_is_deployed_behind_a_service_with_an_http_probe() -> None:
    found = manifests()
    deployment = found["console-deployment.yaml"]
    spec = pod_spec(deployment)
    console = spec["containers"][0]
    assert console["args"][:3] == ["console", "--host", "0.0.0.0"]  # noqa: S104 - a container listens on every interface
    for probe in ("readinessProbe", "livenessProbe"):
        assert console[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    assert spec["initContainers"][0]["args"][:2] == ["health", "--database-only"]
    service = found["console-service.yaml"]
    assert service["kind"] == "Service" and service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))["services"]["console"]
    assert compose["command"][0] == "console" and compose["ports"] == ["127.0.0.1:8080:8080"]
    assert compose["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
