"""What API sources share: closing their vendor client, its call stats, and a look-up made once per source."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, Self, TypeVar

from connectors._session import ApiSession

T = TypeVar("T")


class VendorClient(Protocol):
    """A vendor client as a source holds it: one session, closed with the source."""

    session: ApiSession

    def close(self) -> None: ...


C = TypeVar("C", bound=VendorClient)


class ClientSource(Generic[C]):
    """A source that reads through one vendor client (``self.client``): its close, ``with`` and stats."""

    client: C

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        return self.client.session.stats.as_dict()


class Once(Generic[T]):
    """A look-up kept for the source's life once it succeeds; threads share it (two first callers may both ask)."""

    def __init__(self, fetch: Callable[[], T]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        with self._lock:
            if self._value is not None:
                return self._value
        value = self._fetch()
        with self._lock:
            self._value = value
        return value
