"""A real (tiny) plan end to end: resuming without redoing work, re-running exactly what a
change touches, surviving ``kill -9`` in the middle of training and of writing an artifact,
refusing a second plan on the same folder, and the ``personalab plan`` command.

Tiny classifier, one epoch, six synthetic personas: every strategy trains in a second or two.
The kill tests run the plan in a child process and stop it at a known point (a marker file
it writes, then waits) before killing it, so nothing depends on timing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from personalab.bank import AdapterBank
from personalab.data import write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.errors import PersonalabError
from personalab.plan import parse_plan, run_plan
from personalab.plan.ledger import Ledger

CHILD = """\
import json, signal, sys
from pathlib import Path
from personalab.data.faults import set_fault_hook
from personalab.plan import parse_plan, run_plan

plan, out, stop_at = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]), sys.argv[3]
kind, _, where = stop_at.partition("=")


def wait_to_be_killed(why):
    (out / ".paused").write_text(why)
    while True:
        signal.pause()


def stop_at_fault_point(name, **details):
    if kind == "step" and name == "plan.step_started" and details["step"] == where:
        wait_to_be_killed(f"step {where} started")  # its ledger row says running, no work done
    if kind == "write" and name == "atomic.written" and details["target"].resolve() == (out / where).resolve():
        wait_to_be_killed(f"{where} written, not renamed")


if kind == "bank":
    # Stop in the middle of a training step: right after its first fleet shard was saved.
    from personalab.bank.store import AdapterBank
    save_many_weights = AdapterBank.save_many_weights

    def pausing(self, *args, **kwargs):
        result = save_many_weights(self, *args, **kwargs)
        if Path(self.root).parent.name == where:
            wait_to_be_killed("fleet shard saved")
        return result

    AdapterBank.save_many_weights = pausing
else:
    set_fault_hook(stop_at_fault_point)
run_plan(parse_plan(plan, "child-plan"), out, progress=False)
"""


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> dict:
    data = tmp_path_factory.mktemp("data")
    write_dataset(data, *synthesize(SynthConfig(n_personas=6, n_groups=2, examples_per_persona=20, seed=7)))
    return {
        "data": str(data), "model": {"name": "tiny-classifier", "max_length": 32}, "settings": {"epochs": 1},
        "baseline": {"strategy": "unified"},
        "candidates": [
            {"name": "constrained", "strategy": "unified", "preset": "constrained"},
            {"name": "personas", "strategy": "per_persona", "options": {"min_train_rows": 4, "batch_size": 8}},
        ],
        # Six personas: the exact persona-level test's smallest two-sided p is 2/2**6 = 0.031, above
        # this alpha, so no candidate can be accepted and the decision is determined: keep unified.
        "acceptance": {"n_resamples": 999, "alpha": 0.03}, "stop": "all",
        "fleet_shard": 2,  # the personas' fleet trains in three shards
    }


@pytest.fixture(scope="module")
def reference(plan, tmp_path_factory) -> Path:
    """The plan run once, uninterrupted."""
    out = tmp_path_factory.mktemp("reference") / "out"
    run_plan(parse_plan(plan), out, progress=False)
    return out


def ledger_rows(out: Path) -> dict:
    ledger = Ledger(out / "ledger.sqlite")
    try:
        return {row.step: row for row in ledger.rows()}
    finally:
        ledger.close()


def results(out: Path) -> dict:
    """Every number the plan decided on (times left out: they differ from run to run)."""
    plan = json.loads((out / "plan.json").read_text())
    entries = [plan["baseline"], *plan["candidates"]]
    return {"decision": plan["decision"]["chosen"], "confirmation": plan["confirmation"],
            "references": plan["references"],
            **{e["name"]: (e["status"], e["metrics"], e["comparisons"]) for e in entries}}


def copy(reference: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    return out


def test_the_reference_plan_ran_every_step(reference):
    rows = ledger_rows(reference)
    names, splits = ("unified", "constrained", "personas"), ("val", "test")
    expected = {f"train:{name}" for name in names} | {f"evaluate:{n}@{s}" for n in names for s in splits}
    expected |= {f"compare:{n}@{s}" for n in names[1:] for s in splits} | {"references:all"}
    expected |= {f"compare:reference-{r}@{s}" for r in ("majority", "persona_majority", "logreg_text",
                                                         "logreg_text_persona") for s in splits}
    plan = json.loads((reference / "plan.json").read_text())
    chosen, best = plan["decision"]["chosen"], plan["decision"]["reference"]["name"]
    assert set(rows) == expected | {f"compare:{chosen}-against-{best}@test"}
    assert all(row.status == "done" and row.attempts == 1 for row in rows.values())
    assert plan["status"] == "done" and plan["candidates"][1]["training"]["reused"] == ["unified"]
    assert (reference / "report.md").exists() and (reference / "compare" / "test" / "personas.json").exists()
    assert (reference / "references" / "logreg_text_persona" / "eval" / "test" / "predictions.jsonl").exists()


def test_running_it_again_redoes_nothing(plan, reference, tmp_path, capsys):
    out = copy(reference, tmp_path)
    before = ledger_rows(out)
    run_plan(parse_plan(plan), out)
    assert ledger_rows(out) == before  # same keys, start times, attempts
    assert capsys.readouterr().err.count("already done") == len(before)
    assert results(out) == results(reference)


def test_a_changed_option_reruns_only_that_candidate(plan, reference, tmp_path):
    out = copy(reference, tmp_path)
    before = ledger_rows(out)
    changed = json.loads(json.dumps(plan))
    changed["candidates"][1]["options"]["batch_size"] = 4
    run_plan(parse_plan(changed), out, progress=False)
    after = ledger_rows(out)
    redone = {step for step in after if step not in before or after[step].started != before[step].started}
    redone_allowed = {"train:personas", "evaluate:personas@val", "evaluate:personas@test", "compare:personas@val",
                      "compare:personas@test"}
    # Its comparisons re-run too unless its predictions came out byte-identical; and the choice
    # meets the best reference again if the choice changed.
    assert {"train:personas", "evaluate:personas@val", "evaluate:personas@test"} <= redone
    assert {step for step in redone if "-against-" not in step} <= redone_allowed
    assert after["train:personas"].key != before["train:personas"].key and after["train:personas"].attempts == 2


def test_repeats_train_the_baseline_and_the_pick_again_under_another_seed(tmp_path):
    # Six personas give the sign-flip test too few signs to pick anything; sixteen, with a
    # candidate trained hard enough to change predictions and a rule it passes on validation
    # rows, give the plan a pick to repeat.
    write_dataset(tmp_path / "data", *synthesize(SynthConfig(n_personas=16, n_groups=2, seed=7)))
    loud = {"name": "loud", "strategy": "per_persona", "options": {"min_train_rows": 4, "batch_size": 8},
            "settings": {"epochs": 6, "lr": 0.05, "head_lr": 0.05}}
    plan = {"data": str(tmp_path / "data"), "model": {"name": "tiny-classifier", "max_length": 32},
            "settings": {"epochs": 1}, "baseline": {"strategy": "unified"}, "candidates": [loud], "repeats": 2,
            "acceptance": {"n_resamples": 999, "alpha": 0.999, "min_gain": -1.0}}
    out = tmp_path / "out"
    confirmation = run_plan(parse_plan(plan), out, progress=False).plan["confirmation"]
    assert confirmation["candidate"] == "loud"
    assert [r["seed"] for r in confirmation["repeats"]] == [0, 1]
    rows = ledger_rows(out)
    for step in ("train:unified.seed1", "train:loud.seed1", "compare:loud.seed1@test"):
        assert rows[step].status == "done"
    assert "evaluate:unified.seed1@val" not in rows  # a repeat is measured on the test rows only
    assert (out / "runs" / "loud.seed1" / "personalizer.json").exists()
    assert rows["train:unified"].attempts == 1  # the plan seed's runs are not redone


def start_child(plan: dict, out: Path, tmp_path: Path, stop_at: str):
    """Run the plan in a child process until it stops at ``stop_at`` (``step=<step id>``: the
    step has started; ``write=<path under out>``: that file is written but not renamed into
    place; ``bank=<run>``: the run's first adapter is saved); it waits there to be killed."""
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / "child.py").write_text(CHILD)
    out.mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(tmp_path / "plan.json"), str(out),
                              stop_at], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out / ".paused").exists():
        if child.poll() is not None:
            pytest.fail(f"the plan process ended (exit {child.returncode}) before pausing:\n{child.stderr.read()}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("the plan process never reached its pause point")
        time.sleep(0.1)
    return child


def kill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stderr.close()


def test_kill_9_in_the_middle_of_training_loses_no_finished_work(plan, reference, tmp_path):
    out = tmp_path / "out"
    child = start_child(plan, out, tmp_path, stop_at="bank=personas")
    kill(child)
    killed = ledger_rows(out)
    assert killed["train:personas"].status == "running"
    half_trained = out / "runs" / "personas"
    assert not (half_trained / "personalizer.json").exists()
    saved = [name for name in AdapterBank(half_trained / "bank").names() if name.startswith("persona/")]
    assert len(saved) == 2  # one shard of two persona adapters out of six: killed in the middle of the step
    run_plan(parse_plan(plan), out, progress=False)
    after = ledger_rows(out)
    for step in ("train:unified", "evaluate:unified@val", "train:constrained", "compare:constrained@val"):
        assert after[step].started == killed[step].started and after[step].attempts == 1  # not redone
    assert after["train:personas"].attempts == 2 and after["train:personas"].status == "done"
    # The second attempt resumed at the second shard: it trained only the four others.
    retrained = json.loads((half_trained / "training.json").read_text())["training"]
    persona_adapters = {name for name in AdapterBank(half_trained / "bank").names() if name.startswith("persona/")}
    assert len(persona_adapters) == 6 and set(retrained) == persona_adapters - set(saved)
    assert results(out) == results(reference)


def test_kill_9_while_writing_an_artifact_never_leaves_it_half_read(plan, reference, tmp_path):
    out = tmp_path / "out"
    child = start_child(plan, out, tmp_path, stop_at="write=compare/val/constrained.json")
    kill(child)
    assert ledger_rows(out)["compare:constrained@val"].status == "running"
    assert not (out / "compare" / "val" / "constrained.json").exists()
    assert list((out / "compare" / "val").glob(".constrained.json.*tmp"))  # the half-written file
    killed = ledger_rows(out)
    run_plan(parse_plan(plan), out, progress=False)
    after = ledger_rows(out)
    assert not list((out / "compare").rglob(".*tmp"))
    assert after["train:constrained"].started == killed["train:constrained"].started
    assert after["compare:constrained@val"].attempts == 2
    assert results(out) == results(reference)


def test_a_second_plan_on_the_same_folder_is_refused(plan, tmp_path):
    out = tmp_path / "out"
    child = start_child(plan, out, tmp_path, stop_at="step=train:unified")
    try:
        with pytest.raises(PersonalabError, match=rf"in use by another `personalab plan` \(process {child.pid}\)"):
            run_plan(parse_plan(plan), out, progress=False)
    finally:
        kill(child)


def test_the_plan_command(plan, reference, tmp_path, capsys):
    from personalab.cli.plan import register

    parser = argparse.ArgumentParser(prog="personalab")
    register(parser.add_subparsers())
    help_text = parser._subparsers._group_actions[0].choices["plan"].format_help()
    assert "resuming:" in help_text and "first_win" in help_text
    config = tmp_path / "plan.yaml"
    config.write_text(json.dumps(plan))  # JSON is valid YAML
    out = copy(reference, tmp_path)
    args = parser.parse_args(["plan", str(config), "--out", str(out), "--quiet"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "decision: unified (unified) - fallback: keep the baseline" in printed
    assert "p (persona)" in printed and "personas (per_persona)" in printed and "baseline" in printed
    assert "selection (val rows):" in printed and "test rows (not used for the decision)" in printed
    assert "logistic regression on text embeddings + persona id" in printed
    args = parser.parse_args(["plan", str(config), "--out", str(out), "--data", str(tmp_path / "none")])
    with pytest.raises(PersonalabError, match="does not exist"):
        args.func(args)
