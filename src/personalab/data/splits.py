"""The train/val/test split rule: a hash of one unit of the data, independent of any RNG.

The *split setting* (``split_by``) says which unit is hashed, so which rows move together:

- ``row`` (the default): the (persona, row key) pair. A row's split depends only on its persona
  id, its key (``example_id`` if it has one, else its ``input``) and the split seed. A test
  input may appear in training under other personas (transductive). With seed 0 this is
  exactly the POPQUORN rule of BENCHMARK.md section 1.
- ``item``: the row key alone, so every row of one item (one input text, or one item id such
  as POPQUORN's ``instance_id``) is in the same split under every persona: no test input is
  ever seen in training.
- ``persona``: the persona id alone, so all rows of a persona are in one split: personas in
  val/test have no train rows (cold start).

Either way a row's split never changes when rows are added, removed or reordered, and any tool
in any language can reproduce it.
"""

from __future__ import annotations

import difflib
import hashlib
from typing import Literal

from personalab.errors import PersonalabError

SplitBy = Literal["row", "item", "persona"]
SPLIT_BY: tuple[str, ...] = ("row", "item", "persona")
DEFAULT_SPLIT_BY = "row"

# Only the first 32 bits of the digest are used: that is the published rule.
_HASH_HEX_DIGITS = 8
_HASH_RANGE = 2**32


def split_key(example_id: str | None, input_text: str) -> str:
    """The key a row is hashed by: its ``example_id`` when given, else its ``input``."""
    return example_id if example_id is not None else input_text


def split_hash(persona_id: str, key: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by (seed, persona, key); seed 0 keeps the published form."""
    text = f"{persona_id}:{key}" if seed == 0 else f"{seed}:{persona_id}:{key}"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return int(digest[:_HASH_HEX_DIGITS], 16) / _HASH_RANGE


def split_by_message(split_by: object) -> str | None:
    """Why ``split_by`` is not a split setting, or None when it is one."""
    if isinstance(split_by, str) and split_by in SPLIT_BY:
        return None
    close = difflib.get_close_matches(str(split_by), SPLIT_BY, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"split_by must be one of {', '.join(SPLIT_BY)}, got {split_by!r}{hint}"


def check_split_by(split_by: object) -> str:
    """``split_by`` itself when it is a split setting; raises ``PersonalabError`` otherwise."""
    message = split_by_message(split_by)
    if message:
        raise PersonalabError(message)
    return str(split_by)


def split_unit(persona_id: str, key: str, split_by: str = DEFAULT_SPLIT_BY) -> tuple[str, str]:
    """The (scope, key) pair that ``split_hash`` hashes for one row under ``split_by``.

    ``row`` is (persona, key): the published rule, unchanged. The other settings put a fixed
    word where the persona was, so that the hashed text says what unit it is ("item:530",
    "persona:7") and the rows of one unit get one hash whoever rated them.
    """
    units = {"row": (persona_id, key), "item": ("item", key), "persona": ("persona", persona_id)}
    return units[check_split_by(split_by)]


def assign_split(
    persona_id: str,
    key: str,
    seed: int = 0,
    val: float = 0.2,
    test: float = 0.2,
    split_by: str = DEFAULT_SPLIT_BY,
) -> str:
    """``train``, ``val`` or ``test`` for one row: h < 1-val-test is train, h < 1-test val,
    where h is the hash of the row's unit under ``split_by`` (see the module docstring).

    With the defaults: h < 0.6 train, h < 0.8 val, else test.
    """
    _check_fractions(val, test)
    h = split_hash(*split_unit(str(persona_id), str(key), split_by), seed)
    # 1 - (val + test) rather than 1 - val - test: the former is exactly 0.6 for 0.2/0.2.
    if h < 1.0 - (val + test):
        return "train"
    if h < 1.0 - test:
        return "val"
    return "test"


def _check_fractions(val: float, test: float) -> None:
    if val < 0 or test < 0 or val + test > 1:
        raise PersonalabError(
            f"split fractions must be >= 0 with val + test <= 1, got val={val}, test={test}"
        )


def held_out_personas(persona_ids, fraction: float, seed: int = 0) -> list[str]:
    """The personas whose hash ``split_hash(pid, "holdout", seed)`` is below ``fraction``:
    held out of all training (no adapter, no train or val rows) to measure cold start."""
    if not 0 <= fraction < 1:
        raise PersonalabError(f"the held-out fraction of personas must be in [0, 1), not {fraction}")
    return sorted(pid for pid in persona_ids if split_hash(str(pid), "holdout", seed) < fraction)


def without_training_rows(dataset, persona_ids):
    """A copy of ``dataset`` where ``persona_ids`` keep their profile and test rows only."""
    from dataclasses import replace

    held = set(persona_ids)
    rows = [e for e in dataset.examples if e.persona_id not in held or e.split == "test"]
    return replace(dataset, examples=rows)
