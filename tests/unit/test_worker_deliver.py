"""The worker's delivery job: refused lines fail it (not retried), so `worker --once` exits 1 naming the sink."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sync.delivery.outbox import DeliveryResult
from sync.ops import worker as worker_module
from sync.ops.worker import DeliveryIncomplete, DeliveryRefused, WorkerApp
from sync.run.deliver import SinkDelivery
from sync.settings import Settings


@pytest.fixture
def worker_app() -> WorkerApp:
    # Nothing connects: the queue URL is only parsed, and the delivery stage is replaced below.
    return WorkerApp(Settings(database_url="postgresql+psycopg://hb@127.0.0.1:1/hourbridge"), periodic=False)


def _delivering(monkeypatch: pytest.MonkeyPatch, worker_app: WorkerApp, result: DeliveryResult) -> list[str]:
    checked: list[str] = []

    def check_invoices() -> int:
        checked.append("checked")
        return 0

    monkeypatch.setattr(worker_module, "deliver_open_months", lambda settings, engine, sink: SinkDelivery(sink, result))
    monkeypatch.setattr(worker_app, "check_invoices", check_invoices)
    return checked


def test_a_refused_line_fails_the_job_after_the_invoice_check(
    monkeypatch: pytest.MonkeyPatch, worker_app: WorkerApp
) -> None:
    checked = _delivering(monkeypatch, worker_app, DeliveryResult("quickbooks", planned=3, sent=3, ok=2, failed=1))
    job = SimpleNamespace(job=SimpleNamespace(id=7, task_name="hourbridge.deliver"))
    with pytest.raises(DeliveryRefused) as caught, worker_app._job(job):  # type: ignore[arg-type]
        worker_app.deliver("quickbooks")
    assert checked == ["checked"]
    assert not isinstance(caught.value, DeliveryIncomplete)  # not in the retried exceptions: a refusal repeats
    assert "quickbooks: 1 line failed" in caught.value.message and "hourbridge status" in caught.value.message
    assert worker_app.failures == [f"hourbridge.deliver (job 7): {caught.value.message}"]


def test_a_complete_delivery_passes(monkeypatch: pytest.MonkeyPatch, worker_app: WorkerApp) -> None:
    checked = _delivering(monkeypatch, worker_app, DeliveryResult("quickbooks", planned=3, sent=3, ok=3))
    worker_app.deliver("quickbooks")
    assert checked == ["checked"] and worker_app.failures == []
