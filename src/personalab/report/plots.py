"""The report's pictures, drawn with matplotlib's Agg canvas (no display, no pyplot state) and
returned as PNG bytes: per-persona accuracy gains, training curves, and wall times per step.

Fleets of many adapters are drawn as a median line with an interquartile band per epoch
rather than hundreds of lines; a picture stays readable whatever the number of personas.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

MAX_LINES = 8  # adapters drawn one line each; more become a median and IQR band
MAX_PERSONA_LABELS = 60  # persona ids under the bars; more are unreadable
DPI = 100
COLORS = {"better": "#2e7d32", "better_light": "#a5d6a7", "worse": "#c62828", "worse_light": "#ef9a9a",
          "train": "#1f5fa8", "val": "#e07b00"}
STEP_COLORS = {"cluster": "#7b5ea7", "train": "#1f5fa8", "evaluate": "#3a9d8f", "compare": "#e0a100"}


@dataclass(frozen=True)
class Curves:
    """One run's learning curves: ``{adapter: (train_loss per epoch 1.., val_loss per epoch 0..)}``."""

    title: str
    adapters: dict[str, tuple[list[float], list[float]]]


def persona_gains(ids: list[str], differences: list[float], flagged: list[bool], title: str,
                  metric: str = "accuracy") -> bytes:
    """Bars of per-persona differences of ``metric`` (points), sorted; the ``flagged`` ones
    (worse on the validation rows: the harm check's personas) saturated and outlined."""
    order = sorted(range(len(ids)), key=lambda i: (-differences[i], ids[i]))
    values = np.array([differences[i] * 100 for i in order])
    colors = [_gain_color(values[j], flagged[i]) for j, i in enumerate(order)]
    figure, axes = _figure(9.6, 3.8)
    positions = np.arange(len(order))
    axes.bar(positions, values, color=colors, width=0.8,
             edgecolor=["#222" if flagged[i] else "none" for i in order], linewidth=0.8)
    axes.axhline(0, color="#444", linewidth=0.8)
    axes.set_ylabel(f"{metric} difference (pts)")
    axes.set_title(title, fontsize=11)
    if len(order) <= MAX_PERSONA_LABELS:
        axes.set_xticks(positions, [ids[i] for i in order], rotation=90, fontsize=7)
    else:
        axes.set_xticks([])
        axes.set_xlabel(f"{len(order)} personas, sorted by difference")
    axes.set_xlim(-0.7, len(order) - 0.3)
    _gain_legend(axes)
    return _png(figure)


def training_curves(panels: list[Curves]) -> bytes:
    """One small panel per run: a line per adapter, or a median and IQR band for a fleet."""
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = _new_figure(4.3 * columns, 3.1 * rows)
    for index, panel in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        if len(panel.adapters) <= MAX_LINES:
            _lines(axes, panel)
        else:
            _bands(axes, panel)
        axes.set_xlabel("epoch", fontsize=9)
        axes.set_ylabel("loss", fontsize=9)
        axes.tick_params(labelsize=8)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def step_times(groups: list[tuple[str, dict[str, float]]]) -> bytes:
    """Horizontal stacked bars: per strategy (or clustering), seconds per kind of step."""
    figure, axes = _figure(9.6, 0.42 * len(groups) + 1.4)
    positions = np.arange(len(groups))[::-1]
    left = np.zeros(len(groups))
    for kind, color in STEP_COLORS.items():
        widths = np.array([seconds.get(kind, 0.0) for _, seconds in groups])
        if widths.any():
            axes.barh(positions, widths, left=left, color=color, height=0.6, label=kind)
            left += widths
    for position, total in zip(positions, left):
        axes.text(total, position, f" {total:.1f} s", va="center", fontsize=8)
    axes.set_yticks(positions, [name for name, _ in groups], fontsize=8)
    axes.set_xlabel("seconds")
    axes.set_xlim(0, max(left.max(initial=0.0) * 1.15, 1.0))
    if axes.get_legend_handles_labels()[0]:  # no bars (nothing timed yet): no legend to draw
        axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(STEP_COLORS), fontsize=8, frameon=False)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return _png(figure)


# ----- pieces ---------------------------------------------------------------------------------


def _lines(axes, panel: Curves) -> None:
    """A colour per adapter: training loss solid with dots, validation loss dashed with squares."""
    for index, (name, (train, val)) in enumerate(panel.adapters.items()):
        color = f"C{index % 10}"
        axes.plot(range(1, len(train) + 1), train, "-o", color=color, markersize=4, linewidth=1.4, label=name)
        axes.plot(range(len(val)), val, "--s", color=color, markersize=3.5, linewidth=1.2)
    axes.set_title(panel.title, fontsize=10)
    axes.legend(fontsize=7, frameon=False, ncol=2 if len(panel.adapters) > 4 else 1)


def _bands(axes, panel: Curves) -> None:
    for which, start, color in (("train", 1, COLORS["train"]), ("val", 0, COLORS["val"])):
        curves = [train if which == "train" else val for train, val in panel.adapters.values()]
        epochs, low, median, high = _quartiles(curves)
        if len(epochs):
            axes.fill_between(epochs + start, low, high, color=color, alpha=0.25, linewidth=0)
            axes.plot(epochs + start, median, "-o", color=color, markersize=3, linewidth=1.4,
                      label=f"{which}: median, IQR")
    axes.set_title(f"{panel.title} — {len(panel.adapters)} adapters", fontsize=10)
    axes.legend(fontsize=7, frameon=False)


def _quartiles(curves: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per epoch, over the adapters that reached it (early stopping ends some sooner)."""
    length = max((len(c) for c in curves), default=0)
    columns = [[c[e] for c in curves if len(c) > e] for e in range(length)]
    stats = np.array([np.percentile(column, [25, 50, 75]) for column in columns]).reshape(-1, 3)
    return np.arange(length), stats[:, 0], stats[:, 1], stats[:, 2]


def _gain_color(value: float, flagged: bool) -> str:
    if value > 0:
        return COLORS["better"] if flagged else COLORS["better_light"]
    if value < 0:
        return COLORS["worse"] if flagged else COLORS["worse_light"]
    return "#bdbdbd"


def _gain_legend(axes) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=COLORS["better_light"], label="better"),
               Patch(color=COLORS["worse_light"], label="worse"),
               Patch(facecolor="white", edgecolor="#222", label="outlined, dark: worse on validation rows")]
    axes.legend(handles=handles, fontsize=7, frameon=False, loc="upper right")


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _figure(width: float, height: float):
    figure = _new_figure(width, height)
    return figure, figure.add_subplot(1, 1, 1)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()
