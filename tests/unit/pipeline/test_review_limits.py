"""Pure rules of the review app's protections: windows, buckets, throttles, gates, redirects."""

from __future__ import annotations

import asyncio
from urllib.parse import urljoin, urlsplit

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from pipeline.review.errors import BusyError, TooManyRequestsError
from pipeline.review.gate import AnalysisGate
from pipeline.review.inputs import is_clean
from pipeline.review.limits import ReviewLimits, Transport, is_loopback
from pipeline.review.passwords import PasswordPool
from pipeline.review.ratelimit import KeyedTokenBuckets, SlidingWindow, TokenBucket
from pipeline.review.security import safe_next
from pipeline.review.throttle import LoginThrottle, Scope


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_fills_and_drains() -> None:
    clock = Clock()
    window = SlidingWindow(3, 60.0, clock=clock)
    for _ in range(3):
        assert window.retry_after("k") == 0.0
        window.add("k")
        clock.now += 10
    assert window.retry_after("k") == pytest.approx(30.0)  # the first event leaves at 1060
    assert window.retry_after("other") == 0.0
    clock.now += 30
    assert window.retry_after("k") == 0.0
    window.discard_latest("k")
    window.add("k")
    window.add("k")
    assert window.retry_after("k") > 0
    window.clear("k")
    assert window.retry_after("k") == 0.0


def test_sliding_window_keeps_at_most_max_keys() -> None:
    window = SlidingWindow(1, 60.0, clock=Clock(), max_keys=2)
    for key in ("a", "b", "c"):
        window.add(key)
    assert window.retry_after("a") == 0.0, "the least recently used key was dropped"
    assert window.retry_after("c") > 0


def test_token_bucket_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1.0, capacity=2, clock=clock)
    assert bucket.take() == 0.0 and bucket.take() == 0.0
    assert bucket.take() == pytest.approx(1.0)
    clock.now += 1.0
    assert bucket.take() == 0.0
    assert bucket.take(5) == pytest.approx(2.0), "a cost above capacity is charged as capacity"
    buckets = KeyedTokenBuckets(0.5, 1, clock=clock)
    assert buckets.take("a") == 0.0 and buckets.take("b") == 0.0
    assert buckets.take("a") == pytest.approx(2.0)


def test_login_throttle_counts_attempts_up_front_and_forgives_success() -> None:
    clock = Clock()
    throttle = LoginThrottle(
        ReviewLimits(login_max_failures=2, login_max_failures_per_address=3, login_window_s=60),
        clock=clock,
    )
    assert throttle.admit("10.0.0.1", "alice") is None
    assert throttle.admit("10.0.0.1", "alice") is None
    refused = throttle.admit("10.0.0.2", "alice")
    assert refused is not None and refused.scope is Scope.USERNAME
    assert 0 < refused.retry_after_s <= 60
    assert throttle.admit("10.0.0.1", "bob") is None  # third attempt from this address
    refused = throttle.admit("10.0.0.1", "carol")
    assert refused is not None and refused.scope is Scope.ADDRESS
    throttle.succeeded("10.0.0.1", "bob")
    assert throttle.admit("10.0.0.1", "dave") is None, "a success takes its attempt back"
    clock.now += 61
    assert throttle.admit("10.0.0.2", "alice") is None


def test_analysis_gate_limits_sessions_users_and_the_shared_budget() -> None:
    clock = Clock()
    limits = ReviewLimits(
        analysis_per_session=1,
        analysis_per_user_per_minute=1.0,
        analysis_burst=2,
        analysis_tokens_per_minute=3000,
        analysis_max_tokens=1000,
    )
    gate = AnalysisGate(limits, clock=clock)
    with gate.admit("s1", "alice", "text"):
        assert gate.active("s1") == 1
        with (
            pytest.raises(TooManyRequestsError, match="already running"),
            gate.admit("s1", "alice", "text"),
        ):
            pass
    assert gate.active("s1") == 0
    with gate.admit("s1", "alice", "text"):
        pass
    with (
        pytest.raises(TooManyRequestsError, match="many analyses") as exc,
        gate.admit("s2", "alice", "text"),
    ):
        pass
    assert exc.value.retry_after == pytest.approx(60.0)
    with pytest.raises(TooManyRequestsError, match="budget"), gate.admit("s3", "bob", "x" * 900):
        pass
    clock.now += 60
    with gate.admit("s3", "bob", "text"):
        pass


async def test_password_pool_refuses_beyond_its_waiting_room() -> None:
    pool = PasswordPool(workers=1, queue=1)
    try:
        checks = [asyncio.ensure_future(pool.verify(None, "guess")) for _ in range(3)]
        results = await asyncio.gather(*checks, return_exceptions=True)
        assert sum(isinstance(r, BusyError) for r in results) == 1
        assert [r for r in results if not isinstance(r, BaseException)] == [False, False]
        assert pool.admitted == 0
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("review.example", False),
        ("::", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    transport = Transport.for_host(host)
    assert transport.secure_cookies is (not loopback) and transport.hsts is (not loopback)
    assert transport.session_cookie.startswith("__Host-") is (not loopback)


def test_the_cookie_setting_overrides_the_default_both_ways() -> None:
    assert Transport.for_host("127.0.0.1", True).session_cookie == "__Host-modstream_review_session"
    insecure = Transport.for_host("0.0.0.0", False)
    assert insecure.session_cookie == "modstream_review_session" and insecure.hsts


@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r/evil.example",
        "/%09/evil.example",
        "/%250a/evil.example",
        "//evil.example",
        "/\\evil.example",
        "/%2F/evil.example",
        "/%5Cevil.example",
        "/..//evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        " /x",
        "",
        None,
    ],
)
def test_hostile_next_targets_fall_back_to_the_queue(target: str | None) -> None:
    assert safe_next(target) == "/"


@pytest.mark.parametrize("target", ["/", "/items/abc", "/?post=x&state=all", "/lead#top"])
def test_same_site_next_targets_are_kept(target: str) -> None:
    assert safe_next(target) == target


_HOSTILE = st.text(
    alphabet=st.sampled_from(list("/\\\t\r\n\x00\x0b\x7f\x85\u2028%09aAe.:@?#")) | st.characters(),
    max_size=30,
)


@given(st.one_of(_HOSTILE, _HOSTILE.map(lambda s: "/" + s), _HOSTILE.map(lambda s: "/%" + s)))
def test_the_location_of_any_next_stays_on_the_site(target: str) -> None:
    location = web.HTTPFound(safe_next(target)).headers["Location"]
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert location.isprintable() and location.isascii()
    assert urlsplit(urljoin("https://review.example/x/", location)).netloc == "review.example"


@pytest.mark.parametrize(("text", "clean"), [("ok é", True), ("a\x00b", False), ("\ud800", False)])
def test_clean_text_has_no_nul_or_lone_surrogates(text: str, clean: bool) -> None:
    assert is_clean(text) is clean
