"""HarvestClient: API v2 calls under the shared session, following each answer's ``links.next``."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from connectors._http import make_client
from connectors._paging import TokenPaging
from connectors._ratelimit import RateLimiter, limiter_for
from connectors._retry import RetryPolicy, Sleep
from connectors._session import ApiSession
from connectors.errors import ConfigError, PayloadError
from connectors.harvest.config import ENV_PREFIX, HarvestConfig
from connectors.harvest.schema import HarvestPage, HarvestTimeEntries, HarvestTimeEntry, HarvestUser, HarvestUsers

SETTING_TOKEN = f"{ENV_PREFIX}TOKEN"
SETTING_ACCOUNT_ID = f"{ENV_PREFIX}ACCOUNT_ID"
SETTING_CONTACT_EMAIL = f"{ENV_PREFIX}CONTACT_EMAIL"
VENDOR = "Harvest"

# Harvest: a token that is valid but not a member of the named account is refused as forbidden
# (unconfirmed: 403 or 404), so the account id is what to check first.
ACCOUNT_ADVICE = f"Check {SETTING_ACCOUNT_ID}: it must be an account the token's user belongs to."

P = TypeVar("P", bound=HarvestPage)


def user_agent(contact_email: str) -> str:
    # Harvest: "Requests without a valid User-Agent header are rejected"; it names the application
    # and a way to reach its operator, as "MyApp (yourname@example.com)" (https://docs.nango.dev/integrations/all/harvest).
    return f"hourbridge ({contact_email.strip()})"


class HarvestClient:
    """The Harvest calls a source makes; one session per token's limiter."""

    def __init__(
        self,
        config: HarvestConfig,
        token: str,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not config.account_id.strip():
            raise ConfigError(
                f"Harvest is enabled but no account id is set: set {SETTING_ACCOUNT_ID} to the account id "
                "shown beside the token on Harvest ID → Developers."
            )
        if not config.contact_email.strip():
            raise ConfigError(
                f"Harvest requires a User-Agent naming a contact: set {SETTING_CONTACT_EMAIL} to an e-mail "
                "address that reaches whoever runs hourbridge."
            )
        self._base = config.base_url.rstrip("/")
        # Harvest: a personal access token goes as "Bearer", and every request names the account.
        http = make_client(
            self._base,
            headers={
                "Authorization": f"Bearer {token}",
                "Harvest-Account-Id": config.account_id.strip(),
                "User-Agent": user_agent(config.contact_email),
                "Accept": "application/json",
            },
            timeout=config.timeout_seconds,
            transport=transport,
        )
        self.session = ApiSession(
            vendor=VENDOR,
            setting=SETTING_TOKEN,
            policy=RetryPolicy(max_attempts=config.max_attempts),
            limiter=limiter or limiter_for("harvest", token, config.rate_limit_per_minute),
            http=http,
            sleep=sleep,
        )
        self.per_page = config.per_page

    def close(self) -> None:
        self.session.close()

    def _get(self, url: str, params: Mapping[str, str] | None = None) -> Any:
        return self.session.send_json("GET", url, params=params, forbidden=ACCOUNT_ADVICE)

    def _next_url(self, link: str | None) -> str | None:
        """The next page's address, kept on Harvest's own host (the token travels with it)."""
        if not link:
            return None
        base, nxt = urlsplit(self._base), urlsplit(link)
        if nxt.scheme and (nxt.scheme, nxt.netloc) != (base.scheme, base.netloc):
            raise PayloadError(f"Harvest named a next page on another host ({nxt.netloc}); stopped paging")
        return link

    def me(self) -> HarvestUser:
        return self.session.parse(HarvestUser, self._get("/users/me"), "current user")

    def users(self) -> list[HarvestUser]:
        """Every user of the account (Administrators only), page by page."""
        found: list[HarvestUser] = []
        for item in self._pages("/users", {"per_page": str(self.per_page)}, HarvestUsers, "user list", "users"):
            found.append(
                self.session.parse(HarvestUser, item, f"user {item.get('id')!r}" if isinstance(item, dict) else "user")
            )
        return found

    def time_entries(self, params: Mapping[str, str]) -> Iterator[HarvestTimeEntry]:
        """Every time entry the filters select, page by page as ``links.next`` names them."""
        query = {**params, "per_page": str(self.per_page)}
        for item in self._pages("/time_entries", query, HarvestTimeEntries, "time entry list", "time_entries"):
            what = f"time entry {item.get('id')!r}" if isinstance(item, dict) else "time entry"
            yield self.session.parse(HarvestTimeEntry, item, what)

    def _pages(
        self, path: str, params: Mapping[str, str], model: type[P], what: str, key: str
    ) -> Iterator[dict[str, Any]]:
        # Harvest v2 lists page with cursors: each answer names the next page in ``links.next``
        # (the ``page`` parameter is deprecated: https://help.getharvest.com/api-v2/roles-api/roles/roles/).
        paging = TokenPaging(VENDOR, what, kind="next link")
        url: str | None = path
        first = True
        while url is not None:
            payload = self._get(url, params if first else None)
            first = False
            page = self.session.parse(model, payload, what)
            yield from getattr(page, key)
            paging.advance(self._next_url(page.links.next))
            url = paging.token
