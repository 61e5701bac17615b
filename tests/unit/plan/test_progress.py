"""Progress lines and the estimate of the time left."""

from __future__ import annotations

import io

from personalab.plan.progress import Progress

PLANNED = [("train:u", "train"), ("evaluate:u", "evaluate"), ("train:a", "train"), ("evaluate:a", "evaluate"),
           ("compare:a", "compare"), ("train:b", "train"), ("evaluate:b", "evaluate"), ("compare:b", "compare")]


def test_the_estimate_uses_each_kinds_mean_and_skips_done_steps():
    progress = Progress(PLANNED, done_before={"train:b"}, enabled=False)
    assert progress.estimate_left() is None  # nothing timed yet
    progress.begin("train:u")
    progress.done("train:u", "train", 100.0)
    progress.begin("evaluate:u")
    progress.done("evaluate:u", "evaluate", 10.0)
    # train:a 100, evaluate:a 10, compare:a (no compare timed: the overall mean 55), train:b done
    # before (0), evaluate:b 10, compare:b 55.
    assert progress.estimate_left() == 100 + 10 + 55 + 10 + 55


def test_lines_show_position_elapsed_and_left():
    stream = io.StringIO()
    progress = Progress(PLANNED[:2], enabled=True, upper_bound=True, stream=stream)
    progress.begin("train:u")
    progress.done("train:u", "train", 41.0)
    progress.reused("evaluate:u", "evaluate", 3.0)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[1/2] train u ..."
    assert lines[1].startswith("[1/2] train u ... done in 41 s (elapsed 0:00, up to 0:41 left)")
    assert lines[2] == "[2/2] evaluate u ... already done (took 3.0 s), not redone"


def test_a_step_looked_up_twice_is_counted_once():
    stream = io.StringIO()
    progress = Progress([("cluster:x", "cluster"), ("train:a", "train")], stream=stream)
    progress.reused("cluster:x", "cluster", 1.0)
    progress.reused("cluster:x", "cluster", 1.0)
    progress.begin("train:a")
    # the estimate counts the step just begun (nothing trained yet: the mean of what was timed)
    assert stream.getvalue().splitlines()[-1] == "[2/2] train a ... (elapsed 0:00, about 0:01 left)"
