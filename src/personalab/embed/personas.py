"""Persona embeddings: one L2-normalised vector per persona, from its profile, its train rows,
or both — the space in which personas are clustered, merged by similarity and routed.

Sources (``source=``):

- ``"profile"``: the embedding of the profile text. Cheap and available for a brand-new
  persona, but it only says who a persona *is*, not how it labels.
- ``"inputs"``: built from the persona's **train** rows only (never val/test: the vector feeds
  clustering and routing, which are then scored on those splits).
  * with outputs and a closed label set (classification): a *label contrast*. For each label
    ``c`` of the set, the mean embedding of the inputs the persona gave ``c`` minus the mean of
    all its inputs; the blocks are concatenated ([n_labels * d]). Why not the mean of
    ``"input => output"`` texts: the label word moves a sentence embedding very little, so
    that mean mostly says *which* inputs a persona happened to see (on synthetic data with
    clear groups its silhouette stayed near 0); the contrast says what it likes versus
    dislikes, and subtracting its own mean cancels which inputs it saw.
    A persona whose rows carry one label has no contrast: its block holds the plain mean of
    its inputs ("gives c to things like these"), the only thing the rows say.
  * with outputs and no label set (generation): the mean of ``"input => output"`` embeddings.
  * without outputs: the mean of the input embeddings (what the persona chose to rate).
  A persona with no usable train rows falls back to its profile embedding (repeated over the
  label blocks, so the width matches); that is all there is to say about it.
- ``"both"``: the concatenation ``[profile, inputs] / sqrt(2)``. Concatenation rather than the
  mean of the two vectors: the widths may differ (label blocks), the coordinates of two
  different constructions should not be added, and the cosine of two concatenations is
  exactly the mean of the profile cosine and the inputs cosine — each source counts equally.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from personalab.data.schema import Dataset, Example
from personalab.embed.encoder import embed_texts, resolve_encoder
from personalab.errors import PersonalabError

SOURCES = ("profile", "inputs", "both")
DEFAULT_SOURCE = "inputs"
Lookup = Callable[[str], np.ndarray]


@dataclass
class PersonaEmbeddings:
    """One row per persona, in the order of ``ids``."""

    ids: list[str]
    matrix: np.ndarray
    """[n_personas, d] float32, rows L2-normalised."""
    source: str
    """"profile", "inputs" or "both"."""
    model: str
    """The embedding model's name (e.g. all-MiniLM-L6-v2)."""
    with_outputs: bool = True
    """Whether the train outputs shaped the "inputs" part."""
    labels: tuple[str, ...] | None = None
    """The label blocks of a label-contrast "inputs" part; None when there are none."""
    encoder: str | None = None
    """The ``model`` argument they were built with (None: the embedded default), so that new
    personas are embedded by the same model."""

    def row(self, persona_id: str) -> np.ndarray:
        try:
            return self.matrix[self.ids.index(persona_id)]
        except ValueError:
            raise PersonalabError(f"no embedding for persona {persona_id!r}") from None

    def embed_new(self, profile: str, examples: Sequence[Example] = ()) -> np.ndarray:
        """A persona outside the set, embedded exactly as these were (cold-start routing)."""
        return embed_persona(
            profile, examples, source=self.source, with_outputs=self.with_outputs,
            labels=self.labels, model=self.encoder,
        )


def persona_embeddings(
    dataset: Dataset,
    source: str = DEFAULT_SOURCE,
    with_outputs: bool = True,
    model: str | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> PersonaEmbeddings:
    """Embed every persona of ``dataset.personas`` (see the module docstring for sources)."""
    _check_source(source)
    labels = label_set(dataset) if with_outputs else None
    train = _train_rows_by_persona(dataset.split("train"))
    ids = list(dataset.personas)
    profiles = [dataset.personas[pid].profile for pid in ids]
    texts = _texts_needed(profiles, [train.get(pid, []) for pid in ids], source, with_outputs,
                          labels)
    vectors = embed_texts(texts, model=model, batch_size=batch_size, progress=progress)
    lookup = dict(zip(texts, vectors)).__getitem__
    matrix = np.stack([
        _persona_vector(profile, train.get(pid, []), source, with_outputs, labels, lookup)
        for pid, profile in zip(ids, profiles)
    ])
    name = resolve_encoder(model).name
    return PersonaEmbeddings(ids, matrix.astype(np.float32), source, name, with_outputs,
                             labels, model)


def embed_persona(
    profile: str,
    examples: Sequence[Example] = (),
    source: str = DEFAULT_SOURCE,
    with_outputs: bool = True,
    labels: Sequence[str] | None = None,
    model: str | None = None,
) -> np.ndarray:
    """One persona's vector, built as ``persona_embeddings`` builds them; only its examples
    with split "train" are used. Give the ``labels`` of the embeddings it is compared with
    (``PersonaEmbeddings.embed_new`` does)."""
    _check_source(source)
    labels = tuple(labels) if labels and with_outputs else None
    rows = [e for e in examples if e.split == "train"]
    texts = _texts_needed([profile], [rows], source, with_outputs, labels)
    lookup = dict(zip(texts, embed_texts(texts, model=model))).__getitem__
    return _persona_vector(profile, rows, source, with_outputs, labels, lookup)


def label_set(dataset: Dataset) -> tuple[str, ...] | None:
    """The closed label set of a classification dataset (from its train rows when labels are
    given per row); None for generation."""
    if dataset.spec.task == "generation":
        return None
    if dataset.spec.choices:
        return tuple(dataset.spec.choices)
    labels = {c for e in dataset.split("train") for c in dataset.choices_for(e)}
    return tuple(sorted(labels)) or None


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise PersonalabError(f"unknown embedding source {source!r}; choose one of {SOURCES}")


def _train_rows_by_persona(rows: Iterable[Example]) -> dict[str, list[Example]]:
    grouped: dict[str, list[Example]] = {}
    for row in rows:
        if row.split == "train":  # the one guard against val/test leaking into a vector
            grouped.setdefault(row.persona_id, []).append(row)
    return grouped


def _row_text(row: Example, with_outputs: bool, labels: tuple[str, ...] | None) -> str:
    # Label contrast groups plain inputs by label; only the text-mean mode embeds the output.
    return f"{row.input} => {row.output}" if with_outputs and not labels else row.input


def _usable(rows: Sequence[Example], labels: tuple[str, ...] | None) -> list[Example]:
    return [r for r in rows if r.output in labels] if labels else list(rows)


def _texts_needed(profiles, rows_per_persona, source, with_outputs, labels) -> list[str]:
    texts: list[str] = []
    for profile, rows in zip(profiles, rows_per_persona):
        usable = _usable(rows, labels)
        if source != "profile":
            texts += [_row_text(r, with_outputs, labels) for r in usable]
        if source != "inputs" or not usable:
            texts.append(profile)  # the "inputs" fallback needs it too
    return list(dict.fromkeys(texts))


def _persona_vector(profile, rows, source, with_outputs, labels, lookup: Lookup) -> np.ndarray:
    if source == "profile":
        return lookup(profile)
    inputs = _inputs_vector(profile, _usable(rows, labels), with_outputs, labels, lookup)
    if source == "inputs":
        return inputs
    return (np.concatenate([lookup(profile), inputs]) / np.sqrt(2)).astype(np.float32)


def _inputs_vector(profile, rows, with_outputs, labels, lookup: Lookup) -> np.ndarray:
    if not rows:
        blocks = len(labels) if labels else 1
        return _unit(np.tile(lookup(profile), blocks))
    vectors = np.stack([lookup(_row_text(r, with_outputs, labels)) for r in rows])
    if not labels:
        return _unit(vectors.mean(axis=0))
    return _label_contrast(vectors, [r.output for r in rows], labels)


def _label_contrast(vectors: np.ndarray, outputs: list[str], labels) -> np.ndarray:
    """[mean(inputs given c) - mean(all inputs) for c in labels], normalised; a single label
    gives the plain mean in its block (no contrast exists)."""
    given = [np.array([o == label for o in outputs]) for label in labels]
    centre = vectors.mean(axis=0) if sum(g.any() for g in given) > 1 else 0.0
    blocks = [vectors[g].mean(axis=0) - centre if g.any() else np.zeros(vectors.shape[1])
              for g in given]
    return _unit(np.concatenate(blocks))


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    # Zero only if every input of two labels embeds identically: keep the first axis then,
    # so that no row is ever a zero vector (cosine and Ward need a direction).
    if norm < 1e-12:
        vector = np.eye(1, len(vector), dtype=np.float32)[0]
        norm = 1.0
    return (vector / norm).astype(np.float32)
