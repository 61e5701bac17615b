"""``persona_bias``: a per-persona calibration layer over the choice scores of a strategy that
routes by persona (``unified`` by default; ``per_persona``, ``per_cluster``, ... with ``over``).

For persona ``p`` and choice ``c`` an offset ``b[p, c]`` is added to the choice log-scores of
``p``'s rows. The offsets of all personas are fit at once on the train rows, minimising

    sum over rows i of  -log softmax(s_i + b[p_i])[y_i]   +   penalty * sum of b^2

(a Gaussian prior toward zero: a persona with few rows stays near the inner strategy's scores,
one with many rows moves further) with scipy's L-BFGS. The penalty is chosen once, on the
validation rows, from ``PENALTIES`` and "no offsets": the one with the highest validation
accuracy, ties going to the stronger penalty (the smaller change). It is the classic per-
annotator bias term on a shared model (Kocoń et al., HuBi); it costs seconds once the inner
strategy's scores are known.

The inner model was trained on the same train rows, so its train scores are somewhat
over-confident and the offsets fit on them are, if anything, too small; choosing the penalty
on validation rows is what keeps the layer honest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

from personalab.data.schema import Example
from personalab.errors import PersonalabError
from personalab.routing import PersonaBias, RoutingTable
from personalab.strategies.base import FitContext
from personalab.strategies.registry import get_strategy, register
from personalab.strategies.validation import label_indices, score_rows_by_tables

# A penalty of 1 is a prior of standard deviation 1/sqrt(2) logits on each offset.
PENALTIES = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
NOT_CALIBRATABLE = ("ensemble", "persona_bias")


@register
class PersonaBiasStrategy:
    name = "persona_bias"
    summary = "per-persona offsets on the choice scores of another strategy (default unified), fit in seconds"

    def __init__(self, over: str = "unified", over_options: dict[str, Any] | None = None, penalty: float | None = None):
        if not isinstance(over, str) or over in NOT_CALIBRATABLE:
            raise PersonalabError(f"persona_bias: `over` must name a strategy that routes by persona "
                                  f"(unified, per_persona, per_cluster, ...), not {over!r}")
        if over_options is not None and not isinstance(over_options, dict):
            raise PersonalabError(f"persona_bias: `over_options` must be a mapping of {over}'s options, not {over_options!r}")
        if penalty is not None and (isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or not penalty > 0):
            raise PersonalabError(f"persona_bias: `penalty` must be a number > 0 (or left out to choose it on "
                                  f"validation rows), not {penalty!r}")
        self.inner = get_strategy(over, **(over_options or {}))  # the inner strategy's bad options fail here too
        self.over, self.penalty = over, penalty

    def fit(self, context: FitContext) -> PersonaBias:
        inner = self.inner.fit(context)
        if not isinstance(inner, RoutingTable):
            raise PersonalabError(f"persona_bias: {self.over} does not route by persona, so it cannot be calibrated")
        train, val = (_scored(context, inner, context.dataset.split(split)) for split in ("train", "val"))
        personas = sorted({row.persona_id for row in train.rows})
        by_penalty = {None: np.zeros((len(personas), len(context.backend.choices)))}
        for penalty in [self.penalty] if self.penalty is not None else PENALTIES:
            by_penalty[penalty] = fit_offsets(train.scores, train.labels, train.persona_index(personas), len(personas), penalty)
        accuracy = {p: val.accuracy(offsets, personas) for p, offsets in by_penalty.items()}
        chosen = self.penalty if self.penalty is not None else _strongest_best(accuracy)
        offsets = by_penalty[chosen]
        context.records["persona_bias"] = {
            "over": self.over, "penalty": chosen, "val_accuracy_by_penalty": {str(p): a for p, a in accuracy.items()},
            "mean_abs_offset": float(np.abs(offsets).mean()) if offsets.size else 0.0,
        }
        table = {pid: tuple(float(v) for v in row) for pid, row in zip(personas, offsets)} if chosen is not None else {}
        return PersonaBias(inner, tuple(context.backend.choices), table, chosen)


def fit_offsets(scores: np.ndarray, labels: np.ndarray, persona_index: np.ndarray, n_personas: int,
                penalty: float) -> np.ndarray:
    """``[n_personas, n_choices]`` offsets minimising the penalised cross-entropy of ``labels``
    under ``scores + offsets[persona_index]`` (log-scores; ``-inf`` marks a choice a row does
    not allow, which then takes no part)."""
    n_choices = scores.shape[1]
    onehot = np.zeros_like(scores)
    onehot[np.arange(len(labels)), labels] = 1.0

    def loss_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        offsets = flat.reshape(n_personas, n_choices)
        shifted = scores + offsets[persona_index]
        log_probs = log_softmax(shifted, axis=1)
        gradient = np.zeros_like(offsets)
        np.add.at(gradient, persona_index, softmax(shifted, axis=1) - onehot)
        loss = -log_probs[np.arange(len(labels)), labels].sum() + penalty * np.square(offsets).sum()
        return float(loss), (gradient + 2 * penalty * offsets).ravel()

    result = minimize(loss_and_gradient, np.zeros(n_personas * n_choices), jac=True, method="L-BFGS-B")
    if not np.all(np.isfinite(result.x)):
        raise PersonalabError(f"persona_bias: the offsets did not converge ({result.message})")
    return result.x.reshape(n_personas, n_choices)


class _Scored:
    """Rows with their inner-strategy log-scores and label indices."""

    def __init__(self, rows: list[Example], scores: np.ndarray, labels: np.ndarray):
        self.rows, self.scores, self.labels = rows, scores, labels

    def persona_index(self, personas: list[str]) -> np.ndarray:
        index = {pid: i for i, pid in enumerate(personas)}
        return np.array([index[row.persona_id] for row in self.rows], dtype=np.int64)

    def accuracy(self, offsets: np.ndarray, personas: list[str]) -> float:
        """Accuracy with the offsets of ``personas`` added (zero for anyone else)."""
        index = {pid: i for i, pid in enumerate(personas)}
        padded = np.vstack([offsets, np.zeros((1, offsets.shape[1]))])  # last row: no offsets
        rows = np.array([index.get(row.persona_id, len(personas)) for row in self.rows], dtype=np.int64)
        return float(((self.scores + padded[rows]).argmax(axis=1) == self.labels).mean())


def _scored(context: FitContext, table: RoutingTable, rows: list[Example]) -> _Scored:
    if not rows:
        raise PersonalabError("persona_bias needs train and validation rows (fit on train, penalty chosen on val)")
    [scores] = score_rows_by_tables(context, [table], rows)  # behind their identifiers (persona_token)
    return _Scored(rows, scores, label_indices(context, rows))


def _strongest_best(accuracy: dict[float | None, float]) -> float | None:
    """The penalty with the best accuracy; ties to no offsets (None), then the strongest."""
    top = max(accuracy.values())
    best = [p for p, a in accuracy.items() if a == top]
    return None if None in best else max(best)
