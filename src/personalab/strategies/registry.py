"""Strategies registered by name, with close-match suggestions for typos."""

from __future__ import annotations

import difflib
import inspect

from personalab.errors import PersonalabError
from personalab.strategies.base import Strategy

_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a strategy available under its ``name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"strategy {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get_strategy(name: str, **options) -> Strategy:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise PersonalabError(f"unknown strategy {name!r}{hint} (known: {', '.join(sorted(_REGISTRY))})")
    cls = _REGISTRY[name]
    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        takes = ", ".join(sorted(accepted)) or "none"
        raise PersonalabError(f"strategy {name!r} has no option {', '.join(unknown)} (its options: {takes})")
    return cls(**options)


def list_strategies() -> list[tuple[str, str]]:
    return [(name, cls.summary) for name, cls in sorted(_REGISTRY.items())]


def strategy_options(name: str) -> dict[str, object]:
    """A strategy's options (``--set KEY=VALUE``) and their defaults."""
    parameters = inspect.signature(_REGISTRY[name]).parameters.values()
    return {p.name: p.default for p in parameters}
