"""The ``Batcher`` with a stand-in answer function (no model): concurrent questions share
calls, each caller gets its own answer, the row limit closes a batch, one failing question
fails alone, a cancelled one is never answered, and a full queue refuses more."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from personalab.export.serve.batcher import Batcher, BatchSettings, Busy


class Recorder:
    """Answers each question (a list of texts) with the texts upper-cased; records each call."""

    def __init__(self, fail_on: str | None = None, gate: threading.Event | None = None):
        self.calls: list[list[list[str]]] = []
        self.fail_on, self.gate = fail_on, gate
        self.entered = threading.Event()  # set once the worker is inside a call

    def __call__(self, questions):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append(questions)
        if self.fail_on is not None and any(self.fail_on in q for q in questions):
            raise ValueError(f"cannot answer {self.fail_on}")
        return [[text.upper() for text in q] for q in questions]


def batcher(recorder, **settings) -> Batcher:
    return Batcher(recorder, len, BatchSettings(**settings))


def test_concurrent_questions_share_calls_and_each_gets_its_own_answer():
    recorder = Recorder()
    served = batcher(recorder, max_wait_ms=200)
    questions = [[f"q{i}", f"r{i}"] for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda q: served.submit(q).result(5), questions))
    served.stop()
    assert answers == [[t.upper() for t in q] for q in questions]
    assert len(recorder.calls) < len(questions)  # batched: fewer calls than questions
    assert served.stats.batches == len(recorder.calls) and served.stats.requests == 12
    assert served.stats.rows == 24 and served.stats.largest_batch == max(len(c) for c in recorder.calls)


def test_a_batch_closes_at_the_row_limit():
    gate = threading.Event()
    recorder = Recorder(gate=gate)
    served = batcher(recorder, max_wait_ms=0, max_batch_rows=4)
    blocker = served.submit(["first"])  # the worker holds it at the gate while the rest queue up
    assert recorder.entered.wait(5)
    served.settings = BatchSettings(max_wait_ms=1000, max_batch_rows=4)  # now gather whatever waits
    futures = [served.submit(["a", "b"]) for _ in range(4)]
    gate.set()
    assert blocker.result(5) == ["FIRST"] and all(f.result(5) == ["A", "B"] for f in futures)
    served.stop()
    assert [sum(len(q) for q in call) for call in recorder.calls] == [1, 4, 4]


def test_one_failing_question_fails_alone_and_the_worker_goes_on():
    gate = threading.Event()
    recorder = Recorder(fail_on="boom", gate=gate)
    served = batcher(recorder, max_wait_ms=200)
    good, bad, other = served.submit(["ok"]), served.submit(["boom"]), served.submit(["fine"])
    gate.set()
    assert good.result(5) == ["OK"] and other.result(5) == ["FINE"]
    with pytest.raises(ValueError, match="cannot answer boom"):
        bad.result(5)
    assert served.stats.failed_batches == 1
    assert served.submit(["later"]).result(5) == ["LATER"]
    served.stop()


def test_a_cancelled_question_is_never_answered():
    gate = threading.Event()
    recorder = Recorder(gate=gate)
    served = batcher(recorder, max_wait_ms=0)
    served.submit(["hold"])  # keeps the worker busy while the next one waits in the queue
    assert recorder.entered.wait(5)
    gone = served.submit(["gone"])
    assert gone.cancel()
    gate.set()
    assert served.submit(["after"]).result(5) == ["AFTER"]
    served.stop()
    assert all(["gone"] not in call for call in recorder.calls)


def test_a_full_queue_refuses_more_until_it_drains():
    gate = threading.Event()
    recorder = Recorder(gate=gate)
    served = batcher(recorder, max_wait_ms=0, max_queue=1)
    first = served.submit(["one"])
    assert recorder.entered.wait(5)  # the worker holds "one": the queue is empty again
    second = served.submit(["two"])
    with pytest.raises(Busy, match="1 requests are already waiting"):
        served.submit(["more"])
    gate.set()
    assert first.result(5) == ["ONE"] and second.result(5) == ["TWO"]
    served.stop()


def test_settings_are_checked():
    with pytest.raises(ValueError):
        BatchSettings(max_batch_rows=0)
