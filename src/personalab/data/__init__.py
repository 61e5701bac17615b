"""Persona datasets: the schema, loading with validation, the split rule, writing, importers
(``personalab.data.importers``) and the synthetic generator (``personalab.data.synth``).

Also the project's one atomic writer (``personalab.data.atomic``: every file and folder any
layer writes) and its fault points for crash tests (``personalab.data.faults``), here because
``data`` is the lowest layer that writes files; and the one reader of YAML files a user writes
(``personalab.data.yaml_reader``: plans, run configs, dataset.yaml, each problem with file, line
and key), here because dataset.yaml is the lowest-layer YAML file."""

from __future__ import annotations

from personalab.data.io import write_dataset
from personalab.data.load import load_dataset
from personalab.data.splits import assign_split
from personalab.data.validate import validate_dataset

__all__ = ["assign_split", "load_dataset", "validate_dataset", "write_dataset"]
