"""Nightly replay: re-score historical posts with the current classifier and policy.

``modstream replay`` (:mod:`modstream.commands.replay`) parses options;
:mod:`modstream.roots.replay` builds the collaborators from settings and runs a
:class:`replay.job.ReplayJob`, which sequences:

- selection (:mod:`replay.selection`): time window, ``--since-last-run``, ``--stale``,
  ``--category``, ``--sample``, ``--shard i/n``, frozen when the run starts (stored in
  ``replay_runs.params``) and paged by ``post_id``;
- run bookkeeping (:mod:`replay.runs`, :mod:`replay.run_state`, :mod:`replay.runlock`): open or
  resume the run, its typed state, checkpoints, the advisory lock that keeps one process per run;
- the scoring pass (:mod:`replay.scoring`): classifier (same ``Classifier`` as real time, on its
  own thread) -> policy (:mod:`replay.decide`) -> verdicts + review items + checkpoint + running
  tally in one transaction (:mod:`replay.commit`); changed decisions are published (stage
  ``batch`` on the wire) before the commit, so a crash republishes, never loses;
- borderline posts (:mod:`replay.message_batches`) are recorded in the history and answered
  through the Message Batches API after the pass; unanswered records are retried by the next
  run; a dry run estimates their cost instead (:mod:`replay.dry_run`);
- the report (:mod:`replay.report`), stored with the run and POSTed (:mod:`replay.webhook`);
- outages (:mod:`replay.outage`) pause the run instead of ending it.

The pure parts (selection SQL, shard math, decisions, reports, cost, run state) have no I/O.
"""
