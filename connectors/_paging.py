"""Paging as small state machines: a token each answer names, or page numbers; a repeat and a page cap both stop.

A client asks for the page the machine names (``token`` / ``number``), then hands the answer's
verdict to ``advance``; it stops when ``done``. The machines do no I/O, so every paging loop in the
connectors runs the same loop detection and the same cap, and a test drives them without a server.
"""

from __future__ import annotations

from collections.abc import Hashable

from connectors.errors import PayloadError

# Far beyond any real listing: only a vendor that never says "last" reaches it.
MAX_PAGES = 100_000


class TokenPaging:
    """Follow the token each answer names until there is none: an offset token (Asana) or a cursor (monday).

    A token that comes back a second time means the vendor is sending us round in circles, so paging
    stops with ``PayloadError`` instead of looping for ever.
    """

    def __init__(self, vendor: str, what: str, *, kind: str = "page token", max_pages: int = MAX_PAGES) -> None:
        self.vendor = vendor
        self.what = what
        self.kind = kind  # what the vendor calls its token, for the message
        self.max_pages = max_pages
        self.token: str | None = None  # what the next request carries; None asks for the first page
        self.started = False
        self.done = False
        self.pages = 0
        self._seen: set[str] = set()

    def advance(self, next_token: str | None) -> None:
        """Record one answer by the token it names for the next page (None or empty: it was the last)."""
        self.started = True
        self.pages += 1
        if not next_token:
            self.token, self.done = None, True
            return
        if next_token in self._seen:
            raise PayloadError(
                f"{self.vendor} returned the same {self.kind} twice for {self.what}; stopped to avoid a loop"
            )
        if self.pages >= self.max_pages:
            raise PayloadError(f"{self.vendor} paging for {self.what} did not end after {self.max_pages} pages")
        self._seen.add(next_token)
        self.token = next_token

    def restart(self) -> None:
        """Page again from the first page (monday: the cursor expired), forgetting the tokens seen."""
        self.token, self.started, self.done = None, False, False
        self._seen.clear()


class PageNumbers:
    """Ask page after page by number until an answer is the last; a page that repeats the one before stops.

    ``first`` and ``step`` cover every vendor: ClickUp counts pages from 0, Xero and monday from 1,
    QuickBooks counts rows (STARTPOSITION 1, 1001, ...). Page-numbered APIs name no token to compare,
    so the caller hands each page's ``signature`` (its ids, say); the same signature twice in a row
    means the vendor ignored the page number.
    """

    def __init__(self, vendor: str, what: str, *, first: int = 1, step: int = 1, max_pages: int = MAX_PAGES) -> None:
        self.vendor = vendor
        self.what = what
        self.max_pages = max_pages
        self.step = step
        self.number = first  # what the next request asks for
        self.done = False
        self.pages = 0
        self._previous: Hashable | None = None

    def advance(self, *, last: bool, signature: Hashable | None = None) -> None:
        """Record one answer: whether it was the last page, and what it held (None: nothing to compare)."""
        self.pages += 1
        if signature is not None and signature == self._previous:
            raise PayloadError(
                f"{self.vendor} returned the same page twice for {self.what} (page {self.number}); "
                "stopped to avoid a loop"
            )
        self._previous = signature
        if last:
            self.done = True
            return
        if self.pages >= self.max_pages:
            raise PayloadError(f"{self.vendor} paging for {self.what} did not end after {self.max_pages} pages")
        self.number += self.step
