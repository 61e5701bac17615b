"""``augment_dataset``: augmented copies of the train rows, and nothing else.

The rules that make augmentation safe to evaluate: only train rows are augmented and the new
rows are train rows; val and test rows are never changed; a new row is dropped when its input
equals (case-folded, whitespace collapsed) any val or test input, of any persona, since that
would teach the model an evaluation input; and when it equals a train input its persona
already has (original or augmented), since that adds nothing. Each row's randomness comes from
(seed, augmenter, persona, row key, copy), so the result never depends on row order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Sequence

from personalab.augment.base import Augmenter, row_rng, row_seed
from personalab.augment.registry import AugmenterSpec, build_augmenters
from personalab.augment.report import AugmentReport, AugmenterStats
from personalab.data.schema import Dataset, Example
from personalab.data.splits import split_key
from personalab.errors import PersonalabError

log = logging.getLogger(__name__)
EVAL_SPLITS = ("val", "test")


@dataclass(frozen=True)
class Job:
    """One augmented copy to make: row ``example``, copy number ``copy``, by ``augmenter``."""

    example: Example
    copy: int
    augmenter: Augmenter


def augment_dataset(
    dataset: Dataset, augmenters: Sequence[AugmenterSpec], copies: int = 2, seed: int = 0
) -> tuple[Dataset, AugmentReport]:
    """The dataset with up to ``copies`` augmented copies of every train row added (copies=2:
    up to 3× the train data), and the report of what was kept, dropped and skipped.

    Copy ``i`` of a row is made by the ``i``-th available augmenter after one picked per row,
    so each augmenter gets an equal share and two copies of a row differ in how they were
    made; augmenters that are unavailable are skipped and the others take their share."""
    if copies < 0:
        raise PersonalabError(f"copies must be >= 0, got {copies}")
    built = build_augmenters(augmenters)
    train = dataset.split("train")
    report = AugmentReport(seed, copies, len(train), len(dataset.examples))
    report.augmenters = {a.name: AugmenterStats(a.name) for a in built}
    available = _available(built, report)
    jobs = plan_jobs(train, available, copies, seed)
    texts = run_jobs(jobs, seed)
    new_rows = deduplicate(dataset, jobs, texts, report)
    return replace(dataset, examples=list(dataset.examples) + new_rows), report


def _available(augmenters: list[Augmenter], report: AugmentReport) -> list[Augmenter]:
    ready = []
    for augmenter in augmenters:
        reason = augmenter.unavailable()
        if reason is None:
            ready.append(augmenter)
        else:
            report.augmenters[augmenter.name].skipped = reason
            # The report carries the reason to the user (the CLI and plans print it): a
            # warning too would print the same long line twice.
            log.info("augmenter %r skipped: %s", augmenter.name, reason)
    return ready


def row_key(example: Example) -> str:
    return split_key(example.example_id, example.input)


def plan_jobs(
    train: Sequence[Example], available: Sequence[Augmenter], copies: int, seed: int
) -> list[Job]:
    if not available:
        return []
    jobs = []
    for example in train:
        start = row_seed(seed, "start", example.persona_id, row_key(example)) % len(available)
        for copy in range(copies):
            augmenter = available[(start + copy) % len(available)]
            jobs.append(Job(example, copy, augmenter))
    return jobs


def run_jobs(jobs: Sequence[Job], seed: int) -> list[str]:
    """Each job's new text; one ``augment`` call per augmenter (model-based ones batch)."""
    texts: list[str] = [""] * len(jobs)
    by_augmenter: dict[str, list[int]] = {}
    for i, job in enumerate(jobs):
        by_augmenter.setdefault(job.augmenter.name, []).append(i)
    for indices in by_augmenter.values():
        augmenter = jobs[indices[0]].augmenter
        rngs = [job_rng(jobs[i], seed) for i in indices]
        outputs = augmenter.augment([jobs[i].example.input for i in indices], rngs)
        for i, text in zip(indices, outputs, strict=True):
            texts[i] = text
    return texts


def job_rng(job: Job, seed: int):
    example = job.example
    return row_rng(seed, job.augmenter.name, example.persona_id, row_key(example), job.copy)


def normalize(text: str) -> str:
    """What 'the same input' means here: equal after case folding and collapsing whitespace."""
    return " ".join(text.casefold().split())


def deduplicate(
    dataset: Dataset, jobs: Sequence[Job], texts: Sequence[str], report: AugmentReport
) -> list[Example]:
    """The new train rows worth keeping, counting every drop in ``report``."""
    eval_inputs = {normalize(e.input) for e in dataset.examples if e.split in EVAL_SPLITS}
    seen: dict[str, set[str]] = {}
    for example in dataset.split("train"):
        seen.setdefault(example.persona_id, set()).add(normalize(example.input))
    kept = []
    for job, text in zip(jobs, texts):
        stats = report.augmenters[job.augmenter.name]
        stats.produced += 1
        verdict = _verdict(normalize(text), job.example, eval_inputs, seen[job.example.persona_id])
        if verdict is not None:
            setattr(stats, verdict, getattr(stats, verdict) + 1)
            continue
        stats.kept += 1
        seen[job.example.persona_id].add(normalize(text))
        kept.append(augmented_example(job, text))
    return kept


def _verdict(norm: str, original: Example, eval_inputs: set[str], seen: set[str]) -> str | None:
    """The report counter a drop goes to, or None to keep the text."""
    if not norm:
        return "empty"
    if norm == normalize(original.input):
        return "unchanged"
    if norm in eval_inputs:
        return "leaks"
    if norm in seen:
        return "duplicates"
    return None


def augmented_example(job: Job, text: str) -> Example:
    """A train row like the original (persona, output, label set) with the new input."""
    example_id = f"{row_key(job.example)}~aug:{job.augmenter.name}:{job.copy}"
    return replace(job.example, input=text, split="train", example_id=example_id)
