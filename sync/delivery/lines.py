"""Delivery lines as stored values: their JSON form, content hash and deterministic keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from connectors.delivery import Line
from sync.store.outbox import ADJUSTMENT_PREFIX

__all__ = [
    "ADJUSTMENT_PREFIX",
    "DEFAULT_CURRENCY",
    "MAX_DESCRIPTION",
    "adjustment_key",
    "content_hash",
    "digest",
    "line_from_json",
    "line_to_json",
    "short_key",
]

DEFAULT_CURRENCY = "USD"
_MAX_KEY = 255
# Longest description a line carries (the sinks' memo fields are short).
MAX_DESCRIPTION = 400


def line_to_json(line: Line, *, adjusts: str | None = None, adjusts_period: str | None = None) -> dict[str, Any]:
    """A line as JSON (money as text, dates ISO); ``adjusts`` names the closed line an adjustment corrects."""
    data: dict[str, Any] = {
        "sink": line.sink,
        "line_key": line.line_key,
        "version": line.version,
        "work_date": line.work_date.isoformat(),
        "period_end": line.period_end.isoformat(),
        "person": line.person,
        "payee": line.payee,
        "code": line.code,
        "client": line.client,
        "seconds": line.seconds,
        "currency": line.currency,
        "billable": line.billable,
        "hourly_rate": None if line.hourly_rate is None else format(line.hourly_rate, "f"),
        "cost_center": line.cost_center,
        "refs": [list(pair) for pair in line.refs],
        "description": line.description,
    }
    if adjusts is not None:
        data["adjusts"] = adjusts
        data["adjusts_period"] = adjusts_period
    return data


def line_from_json(data: Mapping[str, Any]) -> Line:
    rate = data.get("hourly_rate")
    return Line(
        sink=data["sink"],
        line_key=data["line_key"],
        version=int(data["version"]),
        work_date=date.fromisoformat(data["work_date"]),
        period_end=date.fromisoformat(data["period_end"]),
        person=data["person"],
        payee=data["payee"],
        code=data["code"],
        client=data["client"],
        seconds=int(data["seconds"]),
        currency=data.get("currency") or DEFAULT_CURRENCY,
        billable=bool(data.get("billable")),
        hourly_rate=None if rate is None else Decimal(rate),
        cost_center=data.get("cost_center"),
        refs=tuple((str(k), str(v)) for k, v in data.get("refs") or ()),
        description=data.get("description"),
    )


def content_hash(line: Line) -> str:
    """What makes two versions of a line the same content (the version number itself does not)."""
    data = line_to_json(line)
    data.pop("version")
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def short_key(prefix: str, natural: str) -> str:
    return natural if len(natural) <= _MAX_KEY else f"{prefix}{digest(natural)[:40]}"


def adjustment_key(target_period: str, line_key: str) -> str:
    return f"{ADJUSTMENT_PREFIX}{target_period}:{digest(line_key)[:32]}"
