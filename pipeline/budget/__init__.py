"""Spend caps shared by every replica through Postgres: leased slices of a window's allowance.

:mod:`pipeline.core.budget` holds the arithmetic; here are the Postgres adapter (:mod:`.store`),
one process's leases of one scope (:mod:`.ledger`), the guards each caller uses (:mod:`.guards`:
the frontier's calls and account-wide request rate, the review app's streamed analyses, the
replay's Message Batches), their metrics and their slice of the settings.
"""
