"""The report end to end: written by the plan runner itself (scripted steps, every candidate
status), on a real tiny plan (tiny classifier, trained for real), by ``personalab report``
(and its refusal of a folder that is no plan), and rendered by headless Chromium when there is
one on PATH (``scripts/render_report.py``)."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from personalab.data import write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.plan import Steps, parse_plan, run_plan
from personalab.report import FILES, REPORT_HTML, REPORT_MD

ROOT = Path(__file__).resolve().parents[2]


# ----- a plan run by the real runner on scripted steps: every status, in milliseconds ----------


class Script:
    """Steps that train nothing: ``results[name] = (difference, p)``; ``fail``: names that raise."""

    def __init__(self, results: dict, fail: tuple = (), silhouette: float = 0.05):
        self.results, self.fail, self.silhouette = results, fail, silhouette

    def steps(self) -> Steps:
        return Steps(cluster=self.cluster, train=self.train, evaluate=self.evaluate, compare=self.compare,
                     references=self.references)

    def cluster(self, config, grouping, folder: Path) -> dict:
        return {"silhouette": self.silhouette, "quality": "poor", "k": 3, "sizes": [3, 3, 4], "grouping": grouping}

    def train(self, config, run_dir: Path, reuse, progress) -> dict:
        from personalab.errors import PersonalabError

        if run_dir.name in self.fail:
            raise PersonalabError("too few personas to cluster")
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "personalizer.json").write_text(json.dumps({"name": run_dir.name}))
        return {"reused": []}

    def evaluate(self, run_dir: Path, split: str, progress) -> dict:
        (run_dir / "eval" / split).mkdir(parents=True, exist_ok=True)
        (run_dir / "eval" / split / "metrics.json").write_text("{}")
        return {"n": 100, "accuracy": 0.6 + self.results.get(run_dir.name, (0.0, 1.0))[0], "macro_f1": 0.5}

    def compare(self, baseline: Path, candidate: Path, split: str, rule, flag_split, metric) -> dict:
        difference, p = self.results.get(candidate.name, (-0.05, 0.01))  # a reference: worse than unified
        personas = [{"persona_id": f"p{i}", "n": 10, "score_a": 0.6, "score_b": 0.6 + d, "difference": d,
                     "b_better": int(d > 0), "a_better": int(d < 0)} for i, d in enumerate([0.1, 0.0, -0.1, 0.2, 0.1])]
        harm = None if flag_split is None else {"flag_split": flag_split, "n_flagged": 1, "n_tested": 1,
                                                 "flagged_difference": -0.1, "p_value": 0.5, "alpha": 0.05,
                                                 "harmful": False}
        return {"split": split,
                "overall": {"n": 100, "n_personas": 5, "score_a": 0.6, "score_b": 0.6 + difference,
                            "difference": difference, "p_value": p, "ci_low": difference - 0.02,
                            "ci_high": difference + 0.02, "confidence": 0.95, "b_better": 12, "a_better": 4,
                            "mcnemar_p": p},
                "per_persona": {"n_personas": 5, "improved": 3, "equal": 1, "worse": 1, "personas": personas},
                "harm": harm}

    def references(self, config, folder: Path, splits) -> dict:
        for split in splits:
            (folder / "majority" / "eval" / split).mkdir(parents=True, exist_ok=True)
        return {"majority": {split: {"n": 100, "accuracy": 0.55, "macro_f1": 0.35} for split in splits}}


@pytest.fixture
def scripted_plan(tmp_path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset.yaml").write_text("name: scripted\n")
    spec = parse_plan({
        "data": str(data), "model": {"name": "tiny-classifier"}, "baseline": {"strategy": "unified"},
        "candidates": [{"name": "rejected", "strategy": "per_persona"},
                       {"name": "gated", "strategy": "per_cluster", "gate": {"min_silhouette": 0.1}},
                       {"name": "broken", "strategy": "per_persona"},
                       {"name": "winner", "strategy": "per_persona"},
                       {"name": "later", "strategy": "per_persona"}],
        "stop": "first_win"}, "scripted.yaml")
    script = Script({"rejected": (-0.01, 0.5), "winner": (0.08, 0.001)}, fail=("broken",))
    run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    return tmp_path / "out"


def test_the_runner_writes_the_report_with_every_status(scripted_plan):
    page = (scripted_plan / REPORT_HTML).read_text()
    for status in ("rejected", "skipped", "failed", "accepted, chosen", "not run"):
        assert f">{status}</span>" in page
    assert "Chosen: <strong>winner</strong>" in page
    assert "Skipped by its gate: silhouette 0.050 &lt; 0.1" in page and "too few personas to cluster" in page
    markdown = (scripted_plan / REPORT_MD).read_text()
    assert "| winner (per_persona) | 68.00% |" in markdown
    assert (scripted_plan / FILES / "persona_gains.png").exists()


# ----- the command -------------------------------------------------------------------------------


def personalab(*args: str) -> int:
    from personalab.cli import main as cli

    subcommands = cli.SUBCOMMANDS if "report" in cli.SUBCOMMANDS else (*cli.SUBCOMMANDS, "report")
    with pytest.MonkeyPatch.context() as patch:  # until cli/main.py registers it
        patch.setattr(cli, "SUBCOMMANDS", subcommands)
        return cli.main(list(args))


def test_the_command_refuses_a_folder_that_is_no_plan(tmp_path, capsys):
    assert personalab("report", str(tmp_path)) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "is not a plan run folder: it has no plan.json" in error
    assert "Traceback" not in error and not (tmp_path / REPORT_HTML).exists()


def test_the_command_rewrites_the_report_and_says_where(scripted_plan, capsys):
    (scripted_plan / REPORT_HTML).unlink()
    assert personalab("report", str(scripted_plan)) == 0
    printed = capsys.readouterr().out
    assert f"wrote {scripted_plan / REPORT_HTML}" in printed and "file://" in printed
    assert (scripted_plan / REPORT_HTML).exists()


# ----- a real tiny plan ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_plan(tmp_path_factory) -> Path:
    """Tiny classifier, 2 epochs, 6 personas; per_cluster is skipped by a gate it cannot pass.
    (A learning rate at which the persona adapters do change some predictions.)"""
    data = tmp_path_factory.mktemp("data")
    write_dataset(data, *synthesize(SynthConfig(n_personas=6, n_groups=2, examples_per_persona=16, seed=3)))
    plan = {"data": str(data), "model": {"name": "tiny-classifier", "max_length": 32}, "settings": {"epochs": 2, "lr": 0.01},
            "baseline": {"strategy": "unified"},
            "candidates": [{"name": "personas", "strategy": "per_persona",
                            "options": {"min_train_rows": 4, "batch_size": 8}},
                           {"name": "clusters", "strategy": "per_cluster", "gate": {"min_silhouette": 0.99}}],
            "acceptance": {"n_resamples": 199}, "stop": "all"}
    out = tmp_path_factory.mktemp("real") / "out"
    run_plan(parse_plan(plan), out, progress=False)
    return out


@pytest.mark.slow
def test_a_real_plan_gets_every_part_of_the_report(real_plan):
    page = (real_plan / REPORT_HTML).read_text()
    plan = json.loads((real_plan / "plan.json").read_text())
    assert plan["candidates"][1]["status"] == "skipped"
    accuracy = f"{plan['candidates'][0]['metrics']['val']['accuracy']:.2%}"
    assert f"<td class=\"num\">{accuracy}</td>" in page
    pictures = {p.name for p in (real_plan / FILES).iterdir()}
    assert {"training_curves.png", "step_times.png"} <= pictures
    assert any(name.startswith("clusters-") for name in pictures)  # the gate's clustering, drawn
    overall = plan["candidates"][0]["comparisons"]["val"]["overall"]
    differs = overall["b_better"] + overall["a_better"] > 0  # at this seed it does; if not, the report says so
    assert ("persona_gains.png" in pictures) == differs
    markdown = (real_plan / REPORT_MD).read_text()
    assert differs or "Every candidate predicted exactly like the baseline" in markdown
    assert "personas (per_persona)" in markdown and "Skipped by its gate: silhouette" in markdown


# ----- headless Chromium -----------------------------------------------------------------------------


def render_script():
    spec = importlib.util.spec_from_file_location("render_report", ROOT / "scripts" / "render_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="needs Debian's chromium on PATH (apt-get install chromium) to render the HTML report")
def test_chromium_renders_the_report(scripted_plan, tmp_path):
    from matplotlib.image import imread

    png = render_script().screenshot(scripted_plan / REPORT_HTML, tmp_path / "shot.png", size="1280,1600")
    image = imread(io.BytesIO(png.read_bytes()), format="png")
    assert image.shape[:2] == (1600, 1280)
    rows = image[:, :, :3].mean(axis=(1, 2))
    assert np.std(rows) > 0.01 and (rows < 0.97).sum() > 200  # text and pictures drawn, not a blank page
