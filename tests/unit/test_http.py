"""The one retry policy, the per-credential limiter, error classification and secret redaction."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx

from connectors._http import error_from_status, make_client, send
from connectors._ratelimit import RateLimiter
from connectors._redact import redact, register_secret
from connectors._retry import CallStats, RetryPolicy, backoff_seconds, call_with_retry
from connectors._session import ApiSession
from connectors.errors import ConfigError, PayloadError, RequestBugError, TransientError, classify_status
from tests.fakes import FakeClock


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url="https://api.test", assert_all_called=True, assert_all_mocked=True) as router:
        yield router


def test_limiter_allows_burst_then_paces_to_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst_seconds=2, clock=clock)  # 1/s, burst of 2
    for _ in range(12):
        limiter.acquire()
    # 2 from the burst, then 10 more at one per second.
    assert clock.now - 1000.0 == pytest.approx(10.0)


def test_limiter_pause_holds_every_caller() -> None:
    clock = FakeClock()
    limiter = RateLimiter(600, clock=clock)
    limiter.pause_for(30)
    limiter.acquire()
    assert clock.now - 1000.0 >= 30.0


def test_limiter_observes_remaining_quota() -> None:
    clock = FakeClock()
    limiter = RateLimiter(6000, clock=clock)
    limiter.observe_remaining(0, 12.0)
    limiter.acquire()
    assert clock.now - 1000.0 == pytest.approx(12.0, abs=0.1)


def test_an_exhausted_window_we_filled_ourselves_reopens_with_our_oldest_grant() -> None:
    # Xero says "0 left this minute" without a reset time. When our own grants fill the minute, the
    # first slot opens as the oldest of them leaves the window: no need to wait a full minute more.
    clock = FakeClock()
    limiter = RateLimiter(60, burst_seconds=10, clock=clock)
    for _ in range(60):
        limiter.acquire()
    filled_at = clock.now - 1000.0
    assert filled_at == pytest.approx(50.0)  # a burst of 10, then one a second
    limiter.observe_remaining(0, 60.0)
    limiter.acquire()
    assert clock.now - 1000.0 == pytest.approx(60.0, abs=0.01)  # the first grant (t=0) left at t=60


def test_an_exhausted_window_someone_else_filled_waits_the_full_reset() -> None:
    # Fewer grants of ours than the limit: another process spends the same quota, so wait it out.
    clock = FakeClock()
    limiter = RateLimiter(60, burst_seconds=10, clock=clock)
    for _ in range(5):
        limiter.acquire()
    limiter.observe_remaining(0, 60.0)
    limiter.acquire()
    assert clock.now - 1000.0 == pytest.approx(60.0, abs=0.01)


def test_retry_after_is_honoured_and_counted() -> None:
    clock = FakeClock()
    limiter = RateLimiter(6000, clock=clock)
    stats = CallStats()
    attempts = iter([TransientError("slow down", retry_after=7, status=429), None])

    def call() -> str:
        exc = next(attempts)
        if exc:
            raise exc
        return "ok"

    result = call_with_retry(call, policy=RetryPolicy(), limiter=limiter, stats=stats, sleep=clock.sleep)
    assert result == "ok"
    assert clock.now - 1000.0 >= 7.0
    assert stats.as_dict() == {"api_calls": 2, "retries": 1, "throttled": 1}


def test_retry_is_bounded_and_reraises() -> None:
    clock = FakeClock()
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1
        raise TransientError("HTTP 503", status=503)

    with pytest.raises(TransientError):
        call_with_retry(call, policy=RetryPolicy(max_attempts=4), sleep=clock.sleep)
    assert calls == 4
    assert len(clock.sleeps) == 3
    assert all(0 <= s <= RetryPolicy().cap_seconds for s in clock.sleeps)


def test_config_errors_are_not_retried() -> None:
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1
        raise ConfigError("bad token")

    with pytest.raises(ConfigError):
        call_with_retry(call, policy=RetryPolicy(), sleep=lambda _: None)
    assert calls == 1


def test_backoff_grows_and_is_capped() -> None:
    import random

    policy = RetryPolicy(base_seconds=1, cap_seconds=8)
    rng = random.Random(1)
    ceilings = [max(backoff_seconds(policy, attempt, rng) for _ in range(200)) for attempt in (1, 2, 3, 6)]
    assert ceilings[0] <= 1 and ceilings[1] <= 2 and ceilings[2] <= 4 and ceilings[3] <= 8
    assert ceilings[3] > 4  # jitter still reaches near the cap


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, ConfigError),
        (403, ConfigError),
        (402, ConfigError),
        (404, ConfigError),
        (429, TransientError),
        (500, TransientError),
        (503, TransientError),
        (400, RequestBugError),
        (302, PayloadError),
    ],
)
def test_error_from_status_classifies(status: int, kind: type[Exception]) -> None:
    error = error_from_status(status, vendor="Asana", setting="HOURBRIDGE_ASANA__TOKEN")
    assert isinstance(error, kind)
    assert classify_status(status).action is error.action


def test_config_errors_name_the_setting() -> None:
    assert (
        "HOURBRIDGE_ASANA__TOKEN" in error_from_status(401, vendor="Asana", setting="HOURBRIDGE_ASANA__TOKEN").message
    )
    message = error_from_status(402, vendor="Asana", setting="HOURBRIDGE_ASANA__WORKSPACES").message
    assert "plan" in message and "HOURBRIDGE_ASANA__WORKSPACES" in message


def test_redaction_of_registered_secrets_and_credential_shapes() -> None:
    register_secret("pk_live_0123456789")
    text = redact("token pk_live_0123456789 Authorization: Bearer abc.def refresh_token=xyz&x=1")
    assert "pk_live_0123456789" not in text
    assert "abc.def" not in text
    assert "xyz" not in text


def test_send_retries_429_with_retry_after(mock: respx.MockRouter) -> None:
    route = mock.get("/items").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200, json={"ok": True})]
    )
    clock = FakeClock()
    limiter = RateLimiter(6000, clock=clock)
    with make_client("https://api.test") as client:
        response = send(
            client,
            "GET",
            "/items",
            vendor="Test",
            setting="X",
            policy=RetryPolicy(),
            limiter=limiter,
            sleep=clock.sleep,
        )
    assert response.json() == {"ok": True}
    assert route.call_count == 2
    assert clock.now - 1000.0 >= 3.0


def test_send_turns_401_into_config_error_without_the_token(mock: respx.MockRouter) -> None:
    mock.get("/items").mock(return_value=httpx.Response(401, text="token pk_secret_999 is invalid"))
    register_secret("pk_secret_999")
    with (
        make_client("https://api.test", headers={"Authorization": "pk_secret_999"}) as client,
        pytest.raises(ConfigError) as info,
    ):
        send(client, "GET", "/items", vendor="Test", setting="HOURBRIDGE_TEST__TOKEN", policy=RetryPolicy())
    assert "HOURBRIDGE_TEST__TOKEN" in info.value.message
    assert "pk_secret_999" not in info.value.message


def test_send_retries_timeouts_then_gives_up(mock: respx.MockRouter) -> None:
    route = mock.get("/items").mock(side_effect=httpx.ReadTimeout("slow"))
    with make_client("https://api.test") as client, pytest.raises(TransientError, match="timed out"):
        send(
            client,
            "GET",
            "/items",
            vendor="Test",
            setting="X",
            policy=RetryPolicy(max_attempts=3),
            sleep=lambda _: None,
        )
    assert route.call_count == 3


def test_send_check_hook_sees_errors_inside_a_200(mock: respx.MockRouter) -> None:
    mock.post("/graphql").mock(
        side_effect=[
            httpx.Response(200, json={"errors": [{"message": "budget", "extensions": {"retry_in_seconds": 2}}]}),
            httpx.Response(200, json={"data": {}}),
        ]
    )

    def check(response: httpx.Response) -> None:
        errors = response.json().get("errors")
        if errors:
            raise TransientError("complexity", retry_after=errors[0]["extensions"]["retry_in_seconds"])

    slept: list[float] = []
    with make_client("https://api.test") as client:
        response = send(
            client, "POST", "/graphql", vendor="T", setting="X", policy=RetryPolicy(), check=check, sleep=slept.append
        )
    assert response.json() == {"data": {}}
    assert slept == [2]


def test_limiter_never_grants_more_than_the_limit_in_any_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter(120, burst_seconds=10, clock=clock)
    grants: list[float] = []
    for _ in range(600):
        limiter.acquire()
        grants.append(clock.now)
    # Slide a 60 s window over every grant: never more than 120 inside it.
    j = 0
    for i, start in enumerate(grants):
        while grants[j] < start - 60.0 + 1e-9:
            j += 1
        assert i - j + 1 <= 120
    # And the pace is still the configured rate overall (no needless waiting).
    assert (grants[-1] - grants[0]) / 60.0 == pytest.approx(600 / 120, rel=0.05)


def test_permits_taken_together_are_logged_at_one_instant_and_keep_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst_seconds=2, clock=clock)  # 1/s, burst of 2
    limiter.acquire(5)  # one request counted as five: more than the burst, so the bucket owes 3
    assert clock.now == 1000.0
    limiter.acquire()
    assert clock.now - 1000.0 == pytest.approx(4.0)  # the debt (3) and this permit (1), at 1/s
    with pytest.raises(ValueError, match="exceed the limit"):
        limiter.acquire(61)


def test_many_permits_wait_for_room_in_the_sliding_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst_seconds=60, clock=clock)  # the whole minute as burst
    limiter.acquire(50)
    clock.sleep(10.0)
    limiter.acquire(10)  # 60 in the minute: still allowed
    start = clock.now
    limiter.acquire(30)  # needs the first 50 to leave the window, at 1000 + 60
    assert clock.now == pytest.approx(1060.0) and clock.now > start


def test_a_longer_window_keeps_each_grant_counted_past_the_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst_seconds=60, window_seconds=62, clock=clock)
    limiter.acquire(60)
    limiter.acquire()
    assert clock.now - 1000.0 == pytest.approx(62.0)  # not 60: the vendor counts from the arrival
    with pytest.raises(ValueError, match="at least"):
        RateLimiter(60, window_seconds=30)


def test_the_limiter_waits_on_its_injected_time_source_without_spinning() -> None:
    time_source = FakeClock(50.0)  # records every wait and read; moves only by the waits
    limiter = RateLimiter(60, burst_seconds=1, clock=time_source)  # one a second, no burst to speak of
    for _ in range(3):
        limiter.acquire()
    # The first call is free; each later one waits exactly once for a full second, on the injected
    # source: a limiter reading a real clock while sleeping on a fake one would loop many times here.
    assert time_source.sleeps == pytest.approx([1.0, 1.0])
    assert time_source.reads <= 6
    assert limiter.waited == pytest.approx(2.0)


def test_a_pause_is_waited_out_on_the_injected_time_source() -> None:
    time_source = FakeClock(50.0)  # records every wait and read; moves only by the waits
    limiter = RateLimiter(6000, clock=time_source)
    limiter.pause_for(12.5)
    limiter.acquire()
    # The pause itself, then one token's refill (100 a second): the burst was drained by the pause.
    assert time_source.sleeps == [pytest.approx(12.5), pytest.approx(0.01)]


def test_the_session_counts_calls_and_retries_through_its_policy_and_limiter(mock: respx.MockRouter) -> None:
    from connectors._session import ApiSession

    clock = FakeClock()
    mock.get("/thing").mock(side_effect=[httpx.Response(503), httpx.Response(200, json={"ok": True})])
    session = ApiSession(
        vendor="Test",
        setting="HOURBRIDGE_TEST__TOKEN",
        policy=RetryPolicy(max_attempts=3),
        limiter=RateLimiter(6000, clock=clock),
        http=make_client("https://api.test"),
        sleep=clock.sleep,
    )
    with session:
        assert session.send("GET", "/thing").json() == {"ok": True}
    assert session.stats.as_dict() == {"api_calls": 2, "retries": 1, "throttled": 0}
    assert session.http.is_closed


def test_a_session_without_httpx_runs_sdk_calls_under_the_same_policy() -> None:
    from connectors._session import ApiSession

    closed: list[bool] = []
    session = ApiSession(
        vendor="Test",
        setting="HOURBRIDGE_TEST__TOKEN",
        policy=RetryPolicy(max_attempts=2),
        limiter=RateLimiter(6000, clock=FakeClock()),
        sleep=lambda _: None,
        on_close=lambda: closed.append(True),
    )
    attempts = iter([TransientError("HTTP 502", status=502), None])

    def sdk_call() -> str:
        exc = next(attempts)
        if exc:
            raise exc
        return "ok"

    assert session.call(sdk_call, what="sdk") == "ok"
    with pytest.raises(RuntimeError, match="SDK"):
        _ = session.http
    session.close()
    assert closed == [True] and session.stats.as_dict()["retries"] == 1


def test_error_from_status_keeps_the_status_for_callers_to_tell_errors_apart() -> None:
    assert error_from_status(404, vendor="ClickUp", setting="X").status == 404
    assert error_from_status(401, vendor="ClickUp", setting="X").status == 401
    assert error_from_status(503, vendor="ClickUp", setting="X").status == 503


# -- garbled answers: the one place that decides -----------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "described"),
    [
        (b'{"data": [1, 2', "application/json", "a truncated or malformed JSON body"),
        (b"<!DOCTYPE html><html><body>Bad Gateway</body></html>", "text/html", "an HTML page instead of JSON"),
        (b"<html>maintenance</html>", "application/json", "an HTML page instead of JSON"),
        (b"null", "text/html; charset=utf-8", "an HTML page instead of JSON"),  # parses, still a page
        (b"upstream reset", "text/plain", "a body that is not JSON"),
        (b"", "application/json", "an empty body instead of JSON"),
    ],
)
def test_garbage_is_a_transient_garbled_answer_for_reads_and_outcome_unknown_for_writes(
    content: bytes, content_type: str, described: str
) -> None:
    from connectors._http import decode_json
    from connectors.errors import GarbledAnswer, OutcomeUnknown

    response = httpx.Response(200, content=content, headers={"Content-Type": content_type})
    with pytest.raises(GarbledAnswer) as read:
        decode_json(response, vendor="Test")
    assert read.value.message.startswith(f"Test answered HTTP 200 with {described}")
    assert isinstance(read.value, TransientError) and read.value.status == 200
    with pytest.raises(OutcomeUnknown, match="may have landed"):
        decode_json(response, vendor="Test", write=True)


def test_send_json_retries_one_garbled_answer_then_gives_up_after_the_bound(mock: respx.MockRouter) -> None:
    from connectors._http import send_json
    from connectors.errors import GarbledAnswer

    html = httpx.Response(200, content=b"<html>gateway</html>", headers={"Content-Type": "text/html"})
    route = mock.get("https://api.example.test/ok").mock(side_effect=[html, httpx.Response(200, json={"ok": True})])
    stats = CallStats()
    with make_client("https://api.example.test") as client:
        payload = send_json(
            client,
            "GET",
            "/ok",
            vendor="Test",
            setting="S",
            policy=RetryPolicy(max_attempts=3),
            stats=stats,
            sleep=lambda _: None,
        )
        assert payload == {"ok": True} and route.call_count == 2 and stats.retries == 1
        route.mock(side_effect=None, return_value=html)
        with pytest.raises(GarbledAnswer):
            send_json(
                client,
                "GET",
                "/ok",
                vendor="Test",
                setting="S",
                policy=RetryPolicy(max_attempts=3),
                sleep=lambda _: None,
            )
    assert route.call_count == 5


def test_an_sdk_session_retries_raw_bytes_the_sdk_could_not_decode() -> None:
    from connectors._session import ApiSession

    session = ApiSession(
        vendor="Test",
        setting="HOURBRIDGE_TEST__TOKEN",
        policy=RetryPolicy(max_attempts=3),
        limiter=RateLimiter(6000, clock=FakeClock()),
        sleep=lambda _: None,
    )
    answers = iter([b"<html>gateway</html>", {"data": []}])
    assert session.call(lambda: next(answers), what="list") == {"data": []}
    assert session.stats.as_dict()["retries"] == 1


def test_limiter_for_shares_one_limiter_per_credential_and_rebuilds_it_on_new_settings() -> None:
    from connectors._ratelimit import limiter_for

    first = limiter_for("bench-vendor", "tok_limiter_for_aaaa", 60, burst_seconds=10)
    assert first.capacity == pytest.approx(10.0) and first.window == 60.0
    assert limiter_for("bench-vendor", "tok_limiter_for_aaaa", 60, burst_seconds=10) is first
    other = limiter_for("bench-vendor", "tok_limiter_for_aaaa", 60, window_seconds=62)
    assert other is not first and other.capacity == pytest.approx(2.0) and other.window == 62.0


def _test_session() -> ApiSession:
    from connectors._session import ApiSession

    clock = FakeClock()
    return ApiSession(
        vendor="Test",
        setting="HOURBRIDGE_TEST__TOKEN",
        policy=RetryPolicy(max_attempts=1),
        limiter=RateLimiter(6000, clock=clock),
        http=make_client("https://api.test"),
        sleep=clock.sleep,
    )


@pytest.mark.parametrize("status", [403, 404])
def test_a_refusal_names_what_to_check_when_the_caller_says(mock: respx.MockRouter, status: int) -> None:
    mock.get("/team").mock(return_value=httpx.Response(status, json={"err": "no"}))
    with _test_session() as session, pytest.raises(ConfigError) as caught:
        session.send_json("GET", "/team", forbidden="Check HOURBRIDGE_TEST__TEAM_IDS: the token's user must be in it.")
    assert caught.value.status == status
    assert caught.value.message.endswith(". Check HOURBRIDGE_TEST__TEAM_IDS: the token's user must be in it.")


def test_a_refused_credential_is_not_blamed_on_the_forbidden_advice(mock: respx.MockRouter) -> None:
    mock.get("/team").mock(return_value=httpx.Response(401))
    with _test_session() as session, pytest.raises(ConfigError) as caught:
        session.send("GET", "/team", forbidden="Check HOURBRIDGE_TEST__TEAM_IDS")
    assert caught.value.status == 401 and "TEAM_IDS" not in caught.value.message


def test_the_session_reads_wire_models_naming_the_field_that_did_not_fit() -> None:
    from pydantic import BaseModel

    class Item(BaseModel):
        id: int

    class Page(BaseModel):
        items: list[Item]

    session = _test_session()
    assert session.parse(Page, {"items": [{"id": 1}]}, "page").items[0].id == 1
    with pytest.raises(PayloadError, match=r"^Test item list could not be read: items\.0\.id: "):
        session.parse(Page, {"items": [{"id": "x"}]}, "item list")
    session.close()


def test_once_keeps_the_first_answer_and_retries_after_a_failure() -> None:
    from connectors._source import Once

    answers: Iterator[TransientError | str] = iter([TransientError("HTTP 502", status=502), "me", "someone else"])

    def fetch() -> str:
        answer = next(answers)
        if isinstance(answer, TransientError):
            raise answer
        return answer

    once = Once(fetch)
    with pytest.raises(TransientError):
        once.get()
    assert once.get() == "me"
    assert once.get() == "me"
