"""The report's sections with pictures, built from a plan folder: per-persona gains of the
chosen (or best) candidate, the cluster picture with its silhouette and verdict, the training
curves, and the wall time of every step. Each says plainly when there is nothing to draw."""

from __future__ import annotations

import re
from typing import Any

from personalab.evaluate.figures import label as label_of
from personalab.report import plots
from personalab.report.document import Bullets, Figure, Paragraph, Section, Table, inline, strong
from personalab.report.folder import STEP_KINDS, PlanFolder, StepTime
from personalab.report.story import label, plan_metric
from personalab.report.table import duration


def gains_section(folder: PlanFolder) -> Section:
    entry, why = _gains_candidate(folder)
    title = "Per-persona gains"
    if entry is None:
        return Section("gains", title, (Paragraph(inline(why), "note"),))
    split = "test"
    personas = ((folder.comparison(entry["name"], split) or {}).get("per_persona") or {}).get("personas") or []
    if not personas:
        return Section("gains", title, (Paragraph(inline(
            f"The per-persona detail of {entry['name']} is missing (compare/{split}/{entry['name']}.json)."), "note"),))
    flagged = _flagged(folder, entry["name"])
    baseline = folder.baseline["name"]
    name = label_of(plan_metric(folder.plan))
    png = plots.persona_gains([p["persona_id"] for p in personas], [p["difference"] for p in personas],
                              [p["persona_id"] in flagged for p in personas],
                              f"{entry['name']} − {baseline}, per persona ({split} rows)", name)
    counts = (entry.get("comparisons") or {}).get(split, {}).get("per_persona") or _counts(personas)
    caption = inline(f"{name[:1].upper() + name[1:]} of {entry['name']} minus {baseline} on each persona's {split} "
                     f"rows, sorted. {why} ",
                     _counts_text(counts, len(flagged)))
    return Section("gains", title, (Figure("persona_gains", png, f"per-persona {name} differences of "
                                           f"{entry['name']} against {baseline}", caption),))


def _flagged(folder: PlanFolder, name: str) -> set[str]:
    """The personas worse under ``name`` on the validation rows: the harm check's flags."""
    personas = ((folder.comparison(name, "val") or {}).get("per_persona") or {}).get("personas") or []
    return {p["persona_id"] for p in personas if p["difference"] < 0}


def clusters_section(folder: PlanFolder) -> Section:
    blocks: list[Any] = []
    for index, (name, clustering) in enumerate((folder.plan.get("clustering") or {}).items()):
        picture = folder.picture(f"{clustering.get('folder') or 'cluster/' + name}/clusters.png")
        text = _cluster_text(folder, name, clustering)
        figure_name = f"clusters-{index + 1}-{_slug(name)}"  # numbered: two names may slug alike
        blocks.append(Figure(figure_name, picture, f"clusters {name}", text) if picture
                      else Paragraph(text))
    if not blocks:
        blocks = _run_cluster_picture(folder)
    return Section("clusters", "Clusters", tuple(blocks) or (Paragraph(inline(
        "No clustering in this plan: no gate asked for one and no run clustered its personas."), "note"),))


def training_section(folder: PlanFolder) -> Section:
    panels, notes = [], []
    for entry in folder.entries:
        records = folder.training(entry)
        curves = {name: (r.get("train_loss") or [], r.get("val_loss") or [])
                  for name, r in (records.get("training") or {}).items() if r.get("val_loss") or r.get("train_loss")}
        if curves:
            panels.append(plots.Curves(label(entry), curves))
        if records.get("reused"):
            notes.append(inline(strong(entry["name"]), " reused, not retrained: " + ", ".join(records["reused"])))
    if not panels:
        return Section("training", "Training curves", (Paragraph(inline("No learning curves were recorded."), "note"),))
    caption = inline("Loss per epoch, one colour per adapter: training loss solid with dots (from epoch 1), "
                     "validation loss dashed with squares (epoch 0 is before training). Runs with more than "
                     f"{plots.MAX_LINES} adapters show the median and the interquartile range over their adapters "
                     "instead (training blue, validation orange).")
    blocks: list[Any] = [Figure("training_curves", plots.training_curves(panels), "training and validation loss "
                                "per epoch", caption)]
    return Section("training", "Training curves", tuple(blocks + ([Bullets(tuple(notes))] if notes else [])))


def times_section(folder: PlanFolder) -> Section:
    groups = _time_groups(folder.step_times())
    plan = folder.plan
    total = inline(f"Steps took {duration(plan.get('compute_seconds'))} of compute in all; the last run of the "
                   f"command took {duration(plan.get('wall_seconds'))}. Steps an earlier run finished count with "
                   "the time they took then.")
    if not groups:
        return Section("times", "Wall times", (Paragraph(total),))
    header = ("steps of", *STEP_KINDS, "total", "notes")
    rows = tuple((name, *(duration(s.get(k)) if k in s else "–" for k in STEP_KINDS), duration(sum(s.values())), note)
                 for name, s, note in groups)
    table = Table(header, rows, (False, *(True,) * len(STEP_KINDS), True, False))
    png = plots.step_times([(name, seconds) for name, seconds, _ in groups])
    return Section("times", "Wall times", (Paragraph(total), Figure("step_times", png, "seconds per step", ()), table))


# ----- pieces ---------------------------------------------------------------------------------


def _gains_candidate(folder: PlanFolder) -> tuple[dict[str, Any] | None, str]:
    """The chosen candidate; else the one picked but not confirmed; else the one with the largest
    selection gain among those whose predictions differ from the baseline's somewhere (one that
    predicts exactly alike has nothing to show)."""
    split = folder.select_on
    compared = [c for c in folder.candidates if ((c.get("comparisons") or {}).get(split) or {}).get("overall")]
    picked = (folder.plan.get("decision") or {}).get("picked")
    chosen = next((c for c in compared if c["name"] in (folder.chosen, picked)), None)
    if chosen is not None:
        state = "the chosen strategy" if chosen["name"] == folder.chosen else "picked, but not confirmed on test"
        return chosen, f"{chosen['name']} is {state}."
    if not compared:
        return None, "No candidate was compared with the baseline."
    differing = [c for c in compared if _disagreements(c["comparisons"][split]["overall"])]
    if not differing:
        return None, "Every candidate predicted exactly like the baseline: no persona gained or lost."
    best = max(differing, key=lambda c: c["comparisons"][split]["overall"]["difference"])  # ties: the first tried
    alike = [c["name"] for c in compared if c not in differing]
    same = f" ({', '.join(alike)} predicted exactly like the baseline.)" if alike else ""
    return best, (f"No candidate was chosen; shown is the one with the largest {label_of(plan_metric(folder.plan))} "
                  f"gain, {best['name']}.{same}")


def _disagreements(overall: dict[str, Any]) -> int:
    if "b_better" in overall and "a_better" in overall:
        return int(overall["b_better"]) + int(overall["a_better"])
    return int(overall.get("difference") != 0)


def _counts(personas: list[dict[str, Any]]) -> dict[str, int]:
    better = [p for p in personas if p["difference"] > 0]
    worse = [p for p in personas if p["difference"] < 0]
    return {"improved": len(better), "equal": len(personas) - len(better) - len(worse), "worse": len(worse)}


def _counts_text(counts: dict[str, Any], flagged: int) -> str:
    return (f"{counts['improved']} better, {counts['equal']} equal, {counts['worse']} worse. Outlined dark bars: "
            f"the {flagged} personas that were worse on the validation rows, whom the harm check tests on these rows.")


def _cluster_text(folder: PlanFolder, name: str, clustering: dict[str, Any]):
    silhouette = clustering.get("silhouette")
    sizes = clustering.get("sizes")
    head = inline(strong(name), f": k = {clustering.get('k')}",
                  f" (sizes {', '.join(map(str, sizes))})" if sizes else "",
                  ", silhouette ", strong(f"{silhouette:.3f}") if silhouette is not None else strong("?"),
                  f" — {clustering['quality']} clusters. " if clustering.get("quality") else ". ")
    return head + inline(_gate_verdict(folder, silhouette))


def _gate_verdict(folder: PlanFolder, silhouette: float | None) -> str:
    gated = [c for c in folder.candidates if (c.get("gate") or {}).get("min_silhouette") is not None]
    if not gated or silhouette is None:
        return "No gate used it."
    skipped = [c["name"] for c in gated if c["status"] == "skipped" and (c.get("reason") or "").startswith(
        f"gate: silhouette {silhouette:.3f} <")]
    thresholds = sorted({c["gate"]["min_silhouette"] for c in gated})
    verdicts = [f"{'passes' if silhouette >= t else 'fails'} the gate min_silhouette {t:g}" for t in thresholds]
    text = "Verdict: it " + " and ".join(verdicts) + "; "
    return text + (f"skipped by it: {', '.join(skipped)}." if skipped else "the gated candidates were tried.")


def _run_cluster_picture(folder: PlanFolder) -> list[Any]:
    """No gate clustered: the picture of the first run that clustered, the chosen one first."""
    entries = sorted(folder.entries, key=lambda e: e["name"] != folder.chosen)
    for entry in entries:
        picture = folder.run_picture(entry)
        if picture:
            clustering = folder.training(entry).get("clustering") or {}
            silhouette = clustering.get("silhouette")
            text = inline("The clustering of the run ", strong(entry["name"]),
                          f" (k = {clustering.get('k')}, silhouette ",
                          strong("?" if silhouette is None else f"{silhouette:.3f}"), "). No gate looked at it.")
            return [Figure(f"clusters-{_slug(entry['name'])}", picture, f"clusters of {entry['name']}", text)]
    return []


def _time_groups(steps: list[StepTime]) -> list[tuple[str, dict[str, float], str]]:
    """``(who, {kind: seconds}, notes)`` in the order the steps ran; clusterings on their own line."""
    groups: dict[str, tuple[dict[str, float], list[str]]] = {}
    for step in steps:
        who = f"cluster {step.name}" if step.kind == "cluster" else step.name.partition("@")[0]
        seconds, notes = groups.setdefault(who, ({}, []))
        seconds[step.kind] = seconds.get(step.kind, 0.0) + (step.seconds or 0.0)
        if step.status != "done":
            notes.append(f"{step.kind} {step.status}")
        if step.attempts > 1:
            notes.append(f"{step.kind}: {step.attempts} attempts")
    return [(who, seconds, "; ".join(notes)) for who, (seconds, notes) in groups.items()]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "x"
