"""Postgres adapters: migrations and the verdict store."""
