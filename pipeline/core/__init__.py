"""Pure core: plain functions and small state machines over typed events, no I/O.

Modules here (policy, deadlines, cost, fallback, ...) import only ``schemas``, ``classifiers.base``,
``pipeline.errors`` and the standard library, never an adapter, so they are tested without services
and reused unchanged by the stream processor and the replay job.
"""
