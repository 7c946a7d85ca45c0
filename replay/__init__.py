"""Nightly replay: re-score historical posts with the current classifier and policy.

``modstream replay`` (:mod:`replay.cli`) parses options; :mod:`replay.job` runs the replay:

- selection (:mod:`replay.selection`): time window, ``--since-last-run``, ``--stale``,
  ``--category``, ``--sample``, ``--shard i/n``, frozen when the run starts (stored in
  ``replay_runs.params``) and paged by ``post_id``;
- per chunk: classifier (same ``Classifier`` as real time, on its own thread) -> policy ->
  verdicts + review items + checkpoint + running tally in one transaction; changed decisions are
  published (stage ``batch``) before the commit, so a crash republishes, never loses;
- borderline posts (:mod:`replay.batches`) are recorded in the history and answered through the
  Message Batches API after the pass; unanswered records are retried by the next run;
- resume: the same command finds the unfinished run with the same options (or ``--resume ID``)
  and continues after its last checkpoint; a session advisory lock keeps one process per run.

The pure parts (selection SQL, shard math, decisions, reports, cost) have no I/O.
"""
