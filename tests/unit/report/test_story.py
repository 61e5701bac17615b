"""The decision and each candidate's evidence in words, and the strategy table's cells — from
plan.json alone, for every status a candidate can end in."""

from __future__ import annotations

import json

from personalab.report.document import Paragraph
from personalab.report.story import decision_paragraphs, evidence
from personalab.report.table import duration, p_value, strategy_table


def load(plan_dir) -> dict:
    return json.loads((plan_dir / "plan.json").read_text())


def text(paragraph: Paragraph) -> str:
    return "".join(span.text for span in paragraph.spans)


def test_each_status_is_explained_in_words(plan_dir):
    items = {item.name: item for item in evidence(load(plan_dir))}
    rejected = items["per_cluster"]
    assert rejected.status == "rejected"
    assert rejected.text.startswith("Failed on the val rows: persona-level p = 0.3 >= alpha 0.05; gain -2.00 pts < "
                                    "minimum +0.00 pts.")
    assert "Accuracy 58.00% against the baseline's 60.00%: -2.00 pts, 95% CI [-5.00, +1.00]." in rejected.text
    skipped = items["<script>alert(1)</script>"]
    assert skipped.status == "skipped" and skipped.text.startswith("Skipped by its gate: silhouette 0.022 < 0.1")
    assert items["fleet"].text.startswith("Every condition held on the val rows: persona-level p = 0.001 < alpha 0.05")
    assert items["ensemble"].status == "not run" and "fleet was accepted first" in items["ensemble"].text
    assert items["broken"].status == "failed" and items["broken"].text == "too few personas to cluster."
    assert items["broken"].label == "broken (moe)" and items["per_cluster"].label == "per_cluster"


def test_a_plan_that_stopped_early_says_which_candidates_it_never_reached(plan_dir):
    plan = load(plan_dir)
    plan.update(status="failed", decision=None, error="RuntimeError: disk full")
    plan["candidates"][3].update(status="pending", reason=None)
    items = evidence(plan)
    assert items[3].status == "not reached" and "the plan is failed" in items[3].text
    lead = text(decision_paragraphs(plan)[0])
    assert lead == "No decision yet: the plan is failed."


def test_the_fallback_says_the_baseline_was_kept(plan_dir):
    plan = load(plan_dir)
    plan["decision"] = {"chosen": "unified", "strategy": "unified", "branch": "fallback: keep the baseline",
                        "accepted": False, "why": "no candidate met the acceptance rule (2 rejected)", "trail": []}
    paragraphs = decision_paragraphs(plan)
    assert paragraphs[0].kind == "lead" and "Kept the baseline unified" in text(paragraphs[0])
    assert text(paragraphs[1]) == "Why: no candidate met the acceptance rule (2 rejected)."
    assert ("scored accuracy 60.00%, macro-F1 0.5500 on 200 val rows and accuracy 60.00%, macro-F1 0.5500 on 200 "
            "test rows") in text(paragraphs[2])


def test_a_pick_not_confirmed_says_so(plan_dir):
    plan = load(plan_dir)
    plan["decision"] = {"chosen": "unified", "strategy": "unified", "branch": "fallback: keep the baseline",
                        "accepted": False, "picked": "fleet", "why": "It was NOT confirmed", "trail": []}
    lead = text(decision_paragraphs(plan)[0])
    assert lead == "Kept the baseline unified: fleet was picked on the val rows but not confirmed on the test rows."


def test_the_table_rows(plan_dir):
    table = strategy_table(load(plan_dir), "val")
    assert table.header[4] == "95% CI" and table.status_column == 9
    assert table.row_kinds == ("baseline", "", "", "chosen", "", "", "reference")
    baseline, rejected = table.rows[0], table.rows[1]
    assert baseline == ("unified", "60.00%", "0.5500", "–", "–", "–", "–", "–", "4.6 s", "baseline")
    assert rejected == ("per_cluster", "58.00%", "0.5000", "-2.00", "[-5.00, +1.00]", "0.3000", "2/3/3", "–",
                        "3.7 s", "rejected")
    assert table.rows[4][-2:] == ("–", "not run")
    assert table.rows[6][0] == "logistic regression on text embeddings + persona id"
    assert strategy_table(load(plan_dir), "test").rows[1][7] == "ok (p 0.4000)"  # the harm check, on test only
    assert len(strategy_table(load(plan_dir), "test", references=False).rows) == 6


def test_small_formats():
    assert p_value(0.04999) == "0.0500" and p_value(3e-7) == "3.0e-07"
    assert duration(5.04) == "5.0 s" and duration(90) == "1.5 min" and duration(5400) == "1.5 h"
    assert duration(None) == "–" and duration(0.0, empty=True) == "–"
