"""Human review queue: a Postgres-backed queue with leases, a web UI/JSON API and appeals.

Producers (fallback, frontier escalations, batch flips) enqueue with
:meth:`pipeline.store.pg.PostgresStore.enqueue_review`; this package owns what happens next.
Modules: ``rules`` (pure rules), ``filters``/``cursor`` (input validation, keyset cursors),
``queue`` (Postgres queue: ``claims``, ``decisions``, ``appeals``, ``views``, ``stats``, ``aging``),
``accounts`` (users, sessions), ``web``/``pages``/``api``/``analysis``/``security`` (aiohttp app),
``labels`` (JSONL export), ``service`` (composition root). Nothing here is imported eagerly.
"""
