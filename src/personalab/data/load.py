"""The one strict way in: ``load_dataset`` returns a validated ``Dataset`` or raises.

Everything that reads a dataset folder goes through here, so nothing downstream ever sees a
dataset that breaks a rule of ``personalab.data.validate``.
"""

from __future__ import annotations

import os

from personalab.data.schema import Dataset
from personalab.data.validate import validate_dataset
from personalab.errors import DataError


def load_dataset(directory: str | os.PathLike) -> Dataset:
    """Load and validate a dataset folder; raises ``DataError`` listing every problem."""
    dataset, problems = validate_dataset(directory)
    if problems or dataset is None:
        raise DataError(problems)
    return dataset
