"""The one strict way in: ``load_dataset`` returns a validated ``Dataset`` or raises.

Everything that reads a dataset folder goes through here, so nothing downstream ever sees a
dataset that breaks a rule of ``personalab.data.validate``.
"""

from __future__ import annotations

import os
from pathlib import Path

from personalab.data.schema import Dataset, DatasetSpec
from personalab.data.validate import read_spec, validate_dataset
from personalab.errors import DataError


def load_dataset(directory: str | os.PathLike) -> Dataset:
    """Load and validate a dataset folder; raises ``DataError`` listing every problem."""
    dataset, problems = validate_dataset(directory)
    if problems or dataset is None:
        raise DataError(problems)
    return dataset


def load_spec(directory: str | os.PathLike) -> DatasetSpec:
    """Only a dataset folder's ``dataset.yaml``, validated: what a plan checks itself against
    (the task) before anything loads the rows."""
    problems: list = []
    spec = read_spec(Path(directory), problems)
    if problems or spec is None:
        raise DataError(problems)
    return spec
