"""Shipped policy files (package data), loaded with :func:`pipeline.core.policy.load_policy`."""
