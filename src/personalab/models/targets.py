"""Which modules LoRA adapts: abstract projection roles mapped to module names per family.

LoRA presets speak in roles (``base.ROLES``: query, key, value, output, mlp_in, mlp_out) so
that one preset works for every base model. This module owns the translation to the module
names of a concrete model. The names returned follow PEFT's list rule (a name matches a module
whose full name equals it or ends with ``"." + name``), so they can go straight into
``LoraConfig.target_modules`` and into the multi-LoRA engine. Where a plain suffix would also
catch an unintended module (BERT's ``output.dense`` is both the MLP output and, as
``attention.output.dense``, the attention output), the exact full module names are returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from personalab.errors import PersonalabError
from personalab.models.base import ROLES


@dataclass(frozen=True)
class RoleSuffix:
    """Modules whose name ends with ``suffix``, except those ending with ``unless``."""

    suffix: str
    unless: str | None = None

    def selects(self, module_name: str) -> bool:
        if not _ends_with(module_name, self.suffix):
            return False
        return self.unless is None or not _ends_with(module_name, self.unless)


@dataclass(frozen=True)
class NamingScheme:
    """How one architecture family names its projections; ``probe`` identifies the family."""

    family: str
    probe: str
    roles: dict[str, tuple[RoleSuffix, ...]]


NAMING_SCHEMES = (
    NamingScheme(
        family="bert-like (bert, roberta, xlm-roberta, electra, ...)",
        probe="attention.self.query",
        roles={
            "query": (RoleSuffix("query"),),
            "key": (RoleSuffix("key"),),
            "value": (RoleSuffix("value"),),
            "output": (RoleSuffix("attention.output.dense"),),
            "mlp_in": (RoleSuffix("intermediate.dense"),),
            "mlp_out": (RoleSuffix("output.dense", unless="attention.output.dense"),),
        },
    ),
    NamingScheme(
        family="distilbert",
        probe="attention.q_lin",
        roles={
            "query": (RoleSuffix("q_lin"),),
            "key": (RoleSuffix("k_lin"),),
            "value": (RoleSuffix("v_lin"),),
            "output": (RoleSuffix("out_lin"),),
            "mlp_in": (RoleSuffix("ffn.lin1"),),
            "mlp_out": (RoleSuffix("ffn.lin2"),),
        },
    ),
    NamingScheme(
        family="llama-like (qwen2, llama, mistral, gemma, ...)",
        probe="self_attn.q_proj",
        roles={
            "query": (RoleSuffix("q_proj"),),
            "key": (RoleSuffix("k_proj"),),
            "value": (RoleSuffix("v_proj"),),
            "output": (RoleSuffix("o_proj"),),
            "mlp_in": (RoleSuffix("gate_proj"), RoleSuffix("up_proj")),
            "mlp_out": (RoleSuffix("down_proj"),),
        },
    ),
)


def target_modules_for(model: torch.nn.Module, roles: Sequence[str]) -> list[str]:
    """PEFT ``target_modules`` entries that select exactly the modules playing ``roles``."""
    _check_roles(roles)
    names = [name for name, _ in model.named_modules() if name]
    scheme = naming_scheme_of(model, names)
    targets: list[str] = []
    for role in roles:
        for role_suffix in scheme.roles[role]:
            targets.extend(_exact_targets(role_suffix, names))
    return list(dict.fromkeys(targets))  # de-duplicated, order kept


def naming_scheme_of(model: torch.nn.Module, names: Sequence[str]) -> NamingScheme:
    for scheme in NAMING_SCHEMES:
        if any(_ends_with(name, scheme.probe) for name in names):
            return scheme
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    families = "; ".join(s.family for s in NAMING_SCHEMES)
    raise PersonalabError(
        f"don't know which modules to adapt with LoRA in a '{model_type}' model; "
        f"supported families: {families}"
    )


def _exact_targets(role_suffix: RoleSuffix, names: Sequence[str]) -> list[str]:
    """The suffix itself when PEFT's suffix rule picks exactly the intended modules, else the
    intended modules' full names (which PEFT matches exactly)."""
    intended = [name for name in names if role_suffix.selects(name)]
    if not intended:
        raise PersonalabError(f"no module of this model ends with '{role_suffix.suffix}'")
    matched_by_suffix = [name for name in names if _ends_with(name, role_suffix.suffix)]
    if matched_by_suffix == intended:
        return [role_suffix.suffix]
    return intended


def _check_roles(roles: Sequence[str]) -> None:
    unknown = [role for role in roles if role not in ROLES]
    if unknown or not roles:
        raise PersonalabError(
            f"unknown LoRA target role(s) {unknown or '(none given)'}; choose from {list(ROLES)}"
        )


def _ends_with(module_name: str, suffix: str) -> bool:
    # The same rule PEFT applies to a list of target_modules.
    return module_name == suffix or module_name.endswith("." + suffix)
