"""One exception tree for every connector, and the table that says who must act on a failure."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.Enum):
    """What to do about a failure, and who does it."""

    CONFIG = "config"  # an admin must change a setting or a permission; retrying will not help
    TRANSIENT = "transient"  # wait and retry (rate limit, 5xx, network)
    PAYLOAD = "payload"  # the vendor sent something we cannot read; the record is skipped and reported
    BUG = "bug"  # our request was wrong; a developer must look


class HourbridgeError(Exception):
    """Root of every error hourbridge raises on purpose.

    ``message`` is written for the person who must act (an admin, usually) and never holds a secret.
    """

    action: Action = Action.BUG

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(HourbridgeError):
    """An admin must fix a setting, a credential or a plan; the message names what to fix."""

    action = Action.CONFIG


class TransientError(HourbridgeError):
    """Worth retrying after ``retry_after`` seconds (when the vendor said how long)."""

    action = Action.TRANSIENT

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class PayloadError(HourbridgeError):
    """The vendor answered with data we cannot interpret."""

    action = Action.PAYLOAD


class RequestBugError(HourbridgeError):
    """The vendor rejected our request as malformed (4xx other than auth and rate limits)."""

    action = Action.BUG


@dataclass(frozen=True, slots=True)
class Classification:
    action: Action
    reason: str


def classify_status(status: int) -> Classification:
    """Map an HTTP status to an action; the one place that decides this for every vendor."""
    if status in (401, 403):
        return Classification(Action.CONFIG, "the credential was refused")
    if status == 402:
        return Classification(Action.CONFIG, "the plan does not include this feature")
    if status == 404:
        return Classification(Action.CONFIG, "the configured resource was not found")
    if status in (408, 409, 423, 425, 429) or status >= 500:
        return Classification(Action.TRANSIENT, f"HTTP {status}")
    if 400 <= status < 500:
        return Classification(Action.BUG, f"HTTP {status}")
    return Classification(Action.PAYLOAD, f"unexpected HTTP {status}")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds; HTTP dates are ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)
