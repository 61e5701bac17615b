"""The application layer: run directories (``rundir``: a strategy trained into a folder, opened
again, evaluated), executors (``executor``: where a run's independent jobs — fleet shards,
plan candidates — execute: in this process, or as Ray tasks) and whole runs as tasks
(``step_tasks``: trained and evaluated in a worker, sent back as files). It composes everything below it (data,
engine, models, bank, train, strategies, evaluate); plans, reports, export and the CLI build
on it."""
