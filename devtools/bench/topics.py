"""Settings for a benchmark run on topics and consumer groups of its own."""

from __future__ import annotations

from typing import Any

from pipeline.config import Settings


def isolated(settings: Settings, suffix: str, **extra: Any) -> Settings:
    """``settings`` with every topic and the real-time group named after ``suffix``, plus
    ``extra`` settings; nothing else the stack holds is shared with other runs."""
    return settings.model_copy(
        update={
            "topic_posts": f"posts.ingest.{suffix}",
            "topic_decisions": f"moderation.decisions.{suffix}",
            "topic_borderline": f"moderation.borderline.{suffix}",
            "topic_review": f"moderation.review.{suffix}",
            "topic_dead_letter": f"posts.dead-letter.{suffix}",
            "realtime_group_id": f"realtime-{suffix}",
            **extra,
        }
    )
