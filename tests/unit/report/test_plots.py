"""The pictures: valid PNGs whatever their size, and the fleet summary's quartiles."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.image import imread

from personalab.report import plots


def size(png: bytes) -> tuple[int, int]:
    image = imread(io.BytesIO(png), format="png")
    return image.shape[1], image.shape[0]


def test_persona_gains_for_few_and_many_personas():
    few = plots.persona_gains(["b", "a"], [0.1, -0.2], [False, True], "x − y")
    many = plots.persona_gains([f"p{i}" for i in range(300)], list(np.linspace(-0.3, 0.3, 300)), [False] * 300, "t")
    assert few.startswith(b"\x89PNG") and many.startswith(b"\x89PNG")
    assert size(many)[0] < 1200  # many personas do not make a wider picture


def test_quartiles_over_adapters_that_stopped_at_different_epochs():
    epochs, low, median, high = plots._quartiles([[1.0, 0.8, 0.6], [1.0, 0.6], [1.0]])
    assert list(epochs) == [0, 1, 2]
    assert median[0] == 1.0 and median[1] == 0.7 and median[2] == 0.6  # epoch 2: the one adapter that got there
    assert low[1] == 0.65 and high[1] == 0.75


def test_training_curves_draw_lines_or_a_band():
    lines = plots.Curves("unified", {"unified": ([0.9, 0.8], [1.0, 0.85, 0.8])})
    fleet = plots.Curves("fleet", {f"p{i}": ([0.9 - i / 100], [1.0, 0.9]) for i in range(200)})
    png = plots.training_curves([lines, fleet])
    width, height = size(png)
    assert png.startswith(b"\x89PNG") and width > height


def test_step_times():
    png = plots.step_times([("unified", {"train": 10.0, "evaluate": 1.0}), ("cluster k", {"cluster": 2.0})])
    assert png.startswith(b"\x89PNG")
