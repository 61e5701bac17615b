"""LoRA and optimizer settings, and the named presets users pick them from.

Settings are one flat dataclass so that a preset, a config file and command-line flags can
each override any field by name, in that order. ``check_preset`` and ``read_settings`` check
what a plan or run config file says about them, at the file's keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from personalab.data.yaml_reader import Reader
from personalab.errors import PersonalabError
from personalab.models.base import ROLES


@dataclass(frozen=True)
class TrainSettings:
    r: int = 8
    """LoRA rank."""
    alpha: float = 16.0
    """LoRA scaling numerator: the update is scaled by alpha / r."""
    dropout: float = 0.05
    """Dropout on the LoRA input."""
    target_roles: tuple[str, ...] = ("query", "value")
    """Which projections get adapters, by role (query, key, value, output, mlp_in, mlp_out);
    each backend maps roles to its own module names."""
    lr: float = 5e-4
    """Peak learning rate of the LoRA weights (AdamW)."""
    head_lr: float = 2e-3
    """Learning rate of a newly initialised classification head (classifier backends)."""
    weight_decay: float = 0.0
    """AdamW weight decay on the LoRA weights."""
    warmup_ratio: float = 0.0
    """Fraction of the optimizer steps spent warming the learning rate up from zero."""
    epochs: int = 3
    """Maximum passes over the training rows."""
    batch_size: int = 16
    """Training rows per optimizer step."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold (0 disables)."""
    patience: int = 1
    """Stop after this many epochs without a lower validation loss; the best epoch is kept."""

    def __post_init__(self) -> None:
        unknown = [role for role in self.target_roles if role not in ROLES]
        if unknown:
            raise PersonalabError(f"unknown target role(s) {unknown}; choose from {list(ROLES)}")
        if self.r < 1 or self.epochs < 1 or self.batch_size < 1:
            raise PersonalabError("r, epochs and batch_size must be at least 1")
        if not 0.0 <= self.warmup_ratio < 1.0 or not 0.0 <= self.dropout < 1.0:
            raise PersonalabError("warmup_ratio and dropout must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_roles"] = list(self.target_roles)
        return data


PRESETS: dict[str, TrainSettings] = {
    "default": TrainSettings(),
    # The playbook's "constrained LoRA": fewer, more regularised parameters for small data.
    "constrained": TrainSettings(
        r=4, alpha=8.0, dropout=0.1, target_roles=("query",), weight_decay=0.05, warmup_ratio=0.1
    ),
}


def resolve_settings(preset: str = "default", **overrides: Any) -> TrainSettings:
    """The preset with the given fields replaced; ``None`` values mean "keep the preset's"."""
    if preset not in PRESETS:
        raise PersonalabError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    known = {f.name for f in fields(TrainSettings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise PersonalabError(f"unknown training setting(s) {unknown}; known: {sorted(known)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    if "target_roles" in given:
        given["target_roles"] = tuple(given["target_roles"])
    return replace(PRESETS[preset], **given)


def check_preset(reader: Reader, preset: str, path: str) -> bool:
    """Whether ``preset`` names a preset; if not, a problem at ``path``."""
    if preset in PRESETS:
        return True
    reader.problem(path, f"unknown preset {preset!r}; choose from {', '.join(sorted(PRESETS))}")
    return False


def read_settings(
    reader: Reader, settings: Any, path: str, preset: str = "default", base: dict[str, Any] | None = None
) -> TrainSettings | None:
    """The (known) ``preset`` with ``base`` and then ``settings`` over it; an unknown setting, a
    wrong type or a value the settings refuse is a problem at ``path`` and gives None."""
    before = len(reader.problems)
    reader.fields(settings, TrainSettings, path)
    if len(reader.problems) > before:
        return None
    try:
        return resolve_settings(preset, **{**(base or {}), **settings})
    except (PersonalabError, TypeError, ValueError) as error:
        reader.problem(path, str(error))
        return None
