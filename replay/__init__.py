"""Nightly replay: re-score historical posts with the current classifier and policy.

``replay.cli`` parses arguments, ``replay.job`` runs a replay; the pure parts (selection SQL,
shard math, reports, cost) live in their own modules and are tested without services.
"""
