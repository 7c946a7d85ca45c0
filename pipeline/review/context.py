"""What the review app's handlers share: the services, held in the aiohttp application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import jinja2
from aiohttp import web

from pipeline.budget.guards import StreamingBudget
from pipeline.config import Settings
from pipeline.review.accounts import Accounts, Session
from pipeline.review.audit_sample_view import AuditReader
from pipeline.review.cost import CostReader
from pipeline.review.gate import AnalysisGate
from pipeline.review.limits import ReviewLimits, Transport
from pipeline.review.metrics import ReviewMetrics
from pipeline.review.outage import Health
from pipeline.review.queue import ReviewQueue
from pipeline.review.throttle import LoginThrottle

AnalysisSource = Callable[[str], AsyncIterator[str]]
"""Streams an analysis of a post's text as text deltas (the frontier client's streaming path)."""


@dataclass(frozen=True)
class ReviewContext:
    settings: Settings
    queue: ReviewQueue
    accounts: Accounts
    metrics: ReviewMetrics
    templates: jinja2.Environment
    analysis: AnalysisSource | None
    limits: ReviewLimits
    transport: Transport
    throttle: LoginThrottle
    gate: AnalysisGate
    health: Health
    analysis_unavailable: str = ""
    budget: StreamingBudget | None = None
    """The daily cap of streamed analyses shared by replicas (None: no cap)."""
    cost: CostReader | None = None
    """The lead dashboard's cost panel (None: no panel, and ``/api/lead/cost`` answers 404)."""
    audit: AuditReader | None = None
    """The lead dashboard's audit panel (None: no panel, and ``/api/lead/audit`` answers 404)."""


CONTEXT = web.AppKey("review_context", ReviewContext)
SESSION = web.RequestKey("review_session", Session)
"""Request key of the signed-in :class:`~pipeline.review.accounts.Session` (absent when none)."""

__all__ = ["CONTEXT", "SESSION", "AnalysisSource", "ReviewContext", "Session"]
