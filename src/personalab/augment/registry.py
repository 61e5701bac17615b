"""Augmenters by name, so that a plan or config can list them as data:
``["synonyms", {"name": "swap", "rate": 0.2}, "paraphrase"]``."""

from __future__ import annotations

import difflib
from typing import Any, Callable, Mapping, Sequence, Union

from personalab.augment.base import Augmenter
from personalab.augment.eda import DeleteAugmenter, SwapAugmenter
from personalab.augment.model_based import BackTranslationAugmenter, ParaphraseAugmenter
from personalab.augment.noise import ContextNoiseAugmenter
from personalab.augment.synonyms import SynonymAugmenter
from personalab.errors import PersonalabError

AUGMENTERS: dict[str, Callable[..., Augmenter]] = {
    "synonyms": SynonymAugmenter,
    "swap": SwapAugmenter,
    "delete": DeleteAugmenter,
    "context_noise": ContextNoiseAugmenter,
    "paraphrase": ParaphraseAugmenter,
    "back_translation": BackTranslationAugmenter,
}
# The playbook's item (5): paraphrase, context noise, back-translation, synonyms.
PLAYBOOK_AUGMENTERS = ("paraphrase", "context_noise", "back_translation", "synonyms")

AugmenterSpec = Union[str, Mapping[str, Any], Augmenter]


def build_augmenter(name: str, **options: Any) -> Augmenter:
    """The augmenter registered as ``name``, with ``options`` as its settings."""
    if name not in AUGMENTERS:
        close = difflib.get_close_matches(name, AUGMENTERS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise PersonalabError(f"unknown augmenter {name!r}{hint} Known: {', '.join(AUGMENTERS)}")
    try:
        return AUGMENTERS[name](**options)
    except TypeError as error:  # an option the augmenter does not have
        raise PersonalabError(f"augmenter {name!r}: {error}") from None


def build_augmenters(specs: Sequence[AugmenterSpec]) -> list[Augmenter]:
    """Names, ``{"name": ..., **options}`` mappings or ready augmenters, names unique."""
    augmenters = [_build(spec) for spec in specs]
    names = [augmenter.name for augmenter in augmenters]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise PersonalabError(
            f"augmenter names must be unique (they go into example ids): {repeated} repeated; "
            "give one a different name= option"
        )
    return augmenters


def _build(spec: AugmenterSpec) -> Augmenter:
    if isinstance(spec, str):
        return build_augmenter(spec)
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "name" not in options:
            raise PersonalabError(f"an augmenter mapping needs a 'name': {dict(spec)}")
        return build_augmenter(options.pop("name"), **options)
    if isinstance(spec, Augmenter):
        return spec
    raise PersonalabError(f"not an augmenter, a name or a mapping: {spec!r}")
