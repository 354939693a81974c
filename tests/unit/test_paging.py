"""The paginators: tokens and page numbers followed to the end, a repeat and the page cap both stop."""

from __future__ import annotations

import pytest

from connectors._paging import PageNumbers, TokenPaging
from connectors.errors import PayloadError


def test_token_paging_follows_each_token_until_none() -> None:
    paging = TokenPaging("Asana", "time entries")
    asked: list[str | None] = []
    answers = iter(["t1", "t2", None])
    while not paging.done:
        asked.append(paging.token)
        paging.advance(next(answers))
    assert asked == [None, "t1", "t2"]
    assert paging.pages == 3 and paging.token is None


def test_an_empty_token_ends_token_paging() -> None:
    paging = TokenPaging("Asana", "workspaces")
    paging.advance("")
    assert paging.done


def test_a_repeated_token_is_detected_even_after_other_tokens() -> None:
    paging = TokenPaging("Asana", "time entries", kind="page offset")
    paging.advance("a")
    paging.advance("b")
    with pytest.raises(PayloadError, match="same page offset twice for time entries"):
        paging.advance("a")


def test_token_paging_stops_at_the_page_cap() -> None:
    paging = TokenPaging("monday.com", "board 1", kind="cursor", max_pages=3)
    paging.advance("c1")
    paging.advance("c2")
    with pytest.raises(PayloadError, match="did not end after 3 pages"):
        paging.advance("c3")


def test_a_cursor_restart_asks_for_the_first_page_and_forgets_the_cursors_seen() -> None:
    paging = TokenPaging("monday.com", "board 1", kind="cursor")
    paging.advance("c1")
    assert paging.started and paging.token == "c1"
    paging.restart()
    assert not paging.started and not paging.done and paging.token is None
    # The board is paged again from its first page: the cursors it hands out may repeat earlier ones.
    paging.advance("c1")
    paging.advance(None)
    assert paging.done


def test_page_numbers_count_from_first_by_step() -> None:
    rows = PageNumbers("QuickBooks", "a TimeActivity query", first=1, step=1000)
    starts = []
    for last in (False, False, True):
        starts.append(rows.number)
        rows.advance(last=last, signature=(str(rows.number),))
    assert starts == [1, 1001, 2001] and rows.done

    pages = PageNumbers("ClickUp", "tasks", first=0)
    pages.advance(last=False, signature="t1")
    assert pages.number == 1


def test_the_same_page_twice_in_a_row_is_detected() -> None:
    paging = PageNumbers("ClickUp", "the tasks of Workspace 9", first=0)
    paging.advance(last=False, signature="task-1")
    with pytest.raises(PayloadError, match="same page twice for the tasks of Workspace 9"):
        paging.advance(last=False, signature="task-1")


def test_pages_without_a_signature_are_never_taken_for_repeats() -> None:
    paging = PageNumbers("Xero", "/Projects")
    paging.advance(last=False, signature=None)
    paging.advance(last=True, signature=None)
    assert paging.done


def test_page_numbers_stop_at_the_page_cap() -> None:
    paging = PageNumbers("monday.com", "the board list", max_pages=2)
    paging.advance(last=False, signature=("1",))
    with pytest.raises(PayloadError, match="did not end after 2 pages"):
        paging.advance(last=False, signature=("2",))
