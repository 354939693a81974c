"""Asana's wire conventions the emulator follows: error bodies, ``opt_fields`` projection, signed offset tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from typing import Any

from connectors.sandbox._http import Request, Response, json_response

HELP = (
    "For more information on API status codes and how to handle them, "
    "read the docs on errors: https://developers.asana.com/docs/errors"
)

# The spec's ``opt_fields`` enum for the two list endpoints. ``offset``/``path``/``uri`` name the
# next_page members, which are always returned, so they select nothing on an item.
LIST_OPT_FIELDS = frozenset(
    {
        "attributable_to",
        "attributable_to.name",
        "categories",
        "categories.color",
        "categories.name",
        "created_by",
        "created_by.name",
        "duration_minutes",
        "entered_on",
    }
)
GET_OPT_FIELDS = LIST_OPT_FIELDS | {
    "approval_status",
    "billable_status",
    "created_at",
    "description",
    "task",
    "task.created_by",
    "task.name",
    "task.resource_subtype",
}
_PHRASE_WORDS = (("sad", "shy", "bold", "calm"), ("squid", "otter", "heron", "lynx"), ("snuggle", "drift"))
_NON_FILTER_PARAMS = frozenset({"limit", "offset", "opt_fields", "opt_pretty"})

Json = dict[str, Any]
Tree = dict[str, "Tree"]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def asana_error(status: int, message: str) -> Response:
    """An error in Asana's shape: ``{"errors": [{"message", "help"[, "phrase"]}]}``."""
    error: Json = {"message": message, "help": HELP}
    if status == 429:
        # Asana's own wording for the standard rate limiter.
        error["message"] = "You have made too many requests recently. Please, be chill."
    if status >= 500:
        # Asana attaches a generated phrase to server errors only, for support look-ups.
        digest = hashlib.sha256(message.encode("utf-8")).digest()
        words = [pool[digest[i] % len(pool)] for i, pool in enumerate(_PHRASE_WORDS)]
        error["message"] = "Server Error"
        error["phrase"] = f"{digest[3] % 9 + 1} {' '.join(words)} softly"
    return json_response({"errors": [error]}, status)


def parse_tree(fields: set[str]) -> Tree:
    tree: Tree = {}
    for dotted in sorted(fields):
        node = tree
        for part in dotted.split("."):
            node = node.setdefault(part, {})
    return tree


def pick_fields(obj: Json, tree: Tree) -> Json:
    """Keep ``gid``/``resource_type`` plus the requested fields; a bare nested field becomes a reference."""
    out: Json = {key: obj[key] for key in ("gid", "resource_type") if key in obj}
    for key, sub in tree.items():
        if key in obj:
            out[key] = _select(obj[key], sub)
    return out


def _select(value: Any, tree: Tree) -> Any:
    if isinstance(value, dict):
        return pick_fields(value, tree)
    if isinstance(value, list):
        return [_select(item, tree) for item in value]
    return value


ENTRY_COMPACT = parse_tree(
    {"duration_minutes", "entered_on", "attributable_to.name", "created_by.name", "categories.name", "categories.color"}
)
ENTRY_FULL = parse_tree(
    {
        "duration_minutes",
        "entered_on",
        "attributable_to.name",
        "created_by.name",
        "categories.name",
        "categories.color",
        "task.name",
        "task.resource_subtype",
        "task.created_by",
        "created_at",
        "approval_status",
        "billable_status",
        "description",
    }
)
NAMED_COMPACT = parse_tree({"name"})
TASK_COMPACT = parse_tree({"name", "resource_subtype", "created_by"})
USER_FULL = parse_tree({"name", "email", "photo", "workspaces.name"})


# Asana's offsets are JWTs whose ``exp`` is 15 minutes after ``iat`` (seen in a live token quoted in a
# third-party write-up; the spec only says "an offset token will expire after some time").
OFFSET_TTL_SECONDS = 900.0


class OffsetTokens:
    """Asana's opaque ``offset``: signed, valid only for the query (route and filters) that issued it, and
    only for ``ttl`` seconds of the emulator's clock (``None``: never expires)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl: float | None = OFFSET_TTL_SECONDS) -> None:
        self._secret = os.urandom(32)
        self._clock = clock
        self.ttl = ttl

    @staticmethod
    def query_hash(request: Request) -> str:
        filters = sorted(
            (name, value) for name, values in request.args.lists() if name not in _NON_FILTER_PARAMS for value in values
        )
        blob = json.dumps([request.route, filters], separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def _sign(self, payload: bytes) -> str:
        digest = hmac.new(self._secret, payload, hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def encode(self, key: list[int], query_hash: str) -> str:
        payload = json.dumps(
            {"border_rank": key, "q": query_hash, "iat": self._clock()}, separators=(",", ":")
        ).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._sign(payload)}"

    def decode(self, token: str, query_hash: str) -> list[int]:
        invalid = ApiError(
            400,
            "offset: Invalid offset token. You can only pass in an offset that was returned to you "
            "via a previously paginated request for the same query.",
        )
        body, _, signature = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError:
            raise invalid from None
        if not signature or not hmac.compare_digest(signature, self._sign(payload)):
            raise invalid
        data = json.loads(payload)
        if data.get("q") != query_hash:
            raise invalid
        if self.ttl is not None and self._clock() - float(data.get("iat", 0.0)) > self.ttl:
            # The status and wording of Asana's answer to an expired offset are unconfirmed; a 400
            # naming ``offset``, like the invalid-token answer, is the strict reading.
            raise ApiError(
                400,
                "offset: This offset token has expired. Request the first page again to get a fresh one.",
            )
        return [int(part) for part in data["border_rank"]]
