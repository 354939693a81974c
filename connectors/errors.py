"""One exception tree for every connector, and the table that says who must act on a failure.

::

    HourbridgeError                  action BUG   .message (for whoever must act), .status (HTTP, if any)
    ├── ConfigError                  CONFIG       an admin changes a setting, a credential, a plan
    │   ├── CredentialRefused        CONFIG       a sink's credential or tenant was refused: stop the push
    │   └── InvalidGrantError        CONFIG       OAuth code or refresh token refused: connect again
    ├── TransientError               TRANSIENT    retried per request (.retry_after); 5xx, 429, network
    │   └── GarbledAnswer            TRANSIENT    an answer that could not be read (truncated, not JSON, an
    │                                             HTML page with 200, a vendor's internal error in a 200)
    ├── DailyLimitError              TRANSIENT    a daily call cap is spent: NOT retried per request
    │                                             (retries count against the cap); the job runs later
    ├── OutcomeUnknown               TRANSIENT    a write was sent, no answer came: look it up first
    ├── PayloadError                 PAYLOAD      the vendor sent something we cannot read
    │   ├── CursorExpired            PAYLOAD      a page cursor the vendor no longer accepts
    │   └── ImportRejected           PAYLOAD      an import file with any problem, rejected whole
    │                                             (.problems: every one, by line and column)
    └── RequestBugError              BUG          the vendor rejected our request as malformed
        ├── QuickBooksFault          BUG          a QuickBooks Fault (.codes: its error codes)
        └── XeroRefused              BUG          a Xero validation answer (400, or 404 on a record)

Errors are told apart by type and by attributes (``status``, ``codes``), never by their text: the
text is for people.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class Action(enum.Enum):
    """What to do about a failure, and who does it."""

    CONFIG = "config"  # an admin must change a setting or a permission; retrying will not help
    TRANSIENT = "transient"  # wait and retry (rate limit, 5xx, network)
    PAYLOAD = "payload"  # the vendor sent something we cannot read; the record is skipped and reported
    BUG = "bug"  # our request was wrong; a developer must look


class HourbridgeError(Exception):
    """Root of every error hourbridge raises on purpose.

    ``message`` is written for the person who must act (an admin, usually) and never holds a secret;
    ``status`` is the HTTP status behind the error, when there was one.
    """

    action: Action = Action.BUG

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ConfigError(HourbridgeError):
    """An admin must fix a setting, a credential or a plan; the message names what to fix."""

    action = Action.CONFIG


class CredentialRefused(ConfigError):
    """The credential or the tenant was refused: nothing a sink sends can succeed until an admin acts."""


class InvalidGrantError(ConfigError):
    """The vendor refused the code or refresh token (``invalid_grant``): only a new connection helps."""


class TransientError(HourbridgeError):
    """Worth retrying after ``retry_after`` seconds (when the vendor said how long)."""

    action = Action.TRANSIENT

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class GarbledAnswer(TransientError):
    """An answer that could not be read: a truncated or non-JSON body, an HTML page sent with 200, or a
    vendor's own internal error inside a 200 (monday). Proxies, gateways and overloaded backends send
    these for a moment, so a read is retried under the same bounded policy as a 5xx; a write that got
    one may have landed and becomes ``OutcomeUnknown`` instead.
    """


class DailyLimitError(HourbridgeError):
    """A vendor's daily call cap is spent (monday, Xero); the job should run again after it resets.

    Not a ``TransientError`` on purpose: per-request retries would burn calls that count against the
    same cap (failed calls count too). The caller reads ``action`` and ``retry_after`` (seconds until
    the cap resets, when known) and reschedules.
    """

    action = Action.TRANSIENT

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutcomeUnknown(HourbridgeError):
    """A write was sent but no answer came back (a timeout or a dropped connection after sending).

    Not retried in place: the write may have landed. The op's receipt says ``unknown`` and the
    caller looks the record up (``Sink.find``) before sending it again.
    """

    action = Action.TRANSIENT


class PayloadError(HourbridgeError):
    """The vendor answered with data we cannot interpret."""

    action = Action.PAYLOAD


class CursorExpired(PayloadError):
    """A page cursor the vendor no longer accepts (monday's live about 60 minutes); the caller re-pages."""


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing to fix in an import file: ``line`` 1-based (the header is line 1; 0 = the whole file),
    ``column`` its header and letter."""

    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = "file" if self.line == 0 else f"line {self.line}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}"


class ImportRejected(PayloadError):
    """A file to import with any problem is rejected whole: nothing of it is written.

    The message lists every problem found, one per line, so one correction fixes them all.
    """

    def __init__(self, file: str, problems: Sequence[Problem]) -> None:
        self.file = file
        self.problems = tuple(sorted(problems))
        listed = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(
            f"{file}: rejected, nothing of it was imported ({len(self.problems)} problem(s)); fix and import again:\n"
            + listed
        )


class RequestBugError(HourbridgeError):
    """The vendor rejected our request as malformed (4xx other than auth and rate limits)."""

    action = Action.BUG


class QuickBooksFault(RequestBugError):
    """QuickBooks refused a request with a Fault (validation, stale SyncToken, missing object)."""

    def __init__(self, message: str, codes: tuple[str, ...]) -> None:
        super().__init__(message, status=400)
        self.codes = codes


class XeroRefused(RequestBugError):
    """Xero refused one request with a validation message (HTTP 400, or 404 on a record)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, status=status)


def action_of(exc: BaseException) -> Action:
    """The action a failure calls for: an ``HourbridgeError`` says so itself; anything else is a bug."""
    return exc.action if isinstance(exc, HourbridgeError) else Action.BUG


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
