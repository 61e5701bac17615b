"""The application layer: run directories (``rundir``: a strategy trained into a folder, opened
again, evaluated) and executors (``executor``: where a run's independent jobs — fleet shards,
plan steps — execute: in this process, or as Ray tasks). It composes everything below it (data,
engine, models, bank, train, strategies, evaluate); plans, reports, export and the CLI build
on it."""
