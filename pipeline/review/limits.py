"""Typed settings of the review app's protections, built once in the composition root.

:class:`ReviewLimits` holds the throttles, pools and session timeouts; :class:`Transport` what
depends on whether the app is reachable beyond this machine (Secure ``__Host-`` cookies, HSTS).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pipeline.config import Settings

COOKIE_NAME = "modstream_review_session"
LOGIN_CSRF_NAME = "modstream_review_login_csrf"
SECURE_PREFIX = "__Host-"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost`` (the app is reachable from this machine only)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Transport:
    """Cookie names and flags, and whether to send HSTS."""

    secure_cookies: bool
    hsts: bool

    @property
    def session_cookie(self) -> str:
        return SECURE_PREFIX + COOKIE_NAME if self.secure_cookies else COOKIE_NAME

    @property
    def login_csrf_cookie(self) -> str:
        return SECURE_PREFIX + LOGIN_CSRF_NAME if self.secure_cookies else LOGIN_CSRF_NAME

    @classmethod
    def for_host(cls, host: str, cookie_secure: bool | None = None) -> Transport:
        """Secure cookies and HSTS unless bound to loopback; ``cookie_secure`` overrides cookies."""
        remote = not is_loopback(host)
        return cls(secure_cookies=remote if cookie_secure is None else cookie_secure, hsts=remote)


@dataclass(frozen=True, slots=True)
class ReviewLimits:
    """Login throttles, the password pool, session timeouts and analysis limits."""

    session_ttl_s: float = 8 * 3600.0
    session_idle_s: float = 1800.0
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_window_s: float = 900.0
    password_workers: int = 2
    password_queue: int = 32
    analysis_per_session: int = 1
    analysis_max_s: float = 120.0
    analysis_per_user_per_minute: float = 1.0
    analysis_burst: int = 5
    analysis_tokens_per_minute: int = 20000
    analysis_max_tokens: int = 2048

    @classmethod
    def from_settings(cls, settings: Settings) -> ReviewLimits:
        return cls(
            session_ttl_s=settings.review_session_ttl_seconds,
            session_idle_s=settings.review_session_idle_seconds,
            login_max_failures=settings.review_login_max_failures,
            login_max_failures_per_address=settings.review_login_max_failures_per_address,
            login_window_s=settings.review_login_window_seconds,
            password_workers=settings.review_password_workers,
            password_queue=settings.review_password_queue,
            analysis_per_session=settings.review_analysis_per_session,
            analysis_max_s=settings.review_analysis_max_seconds,
            analysis_per_user_per_minute=settings.review_analysis_per_user_per_minute,
            analysis_burst=settings.review_analysis_burst,
            analysis_tokens_per_minute=settings.review_analysis_tokens_per_minute,
            analysis_max_tokens=settings.anthropic_analysis_max_tokens,
        )
