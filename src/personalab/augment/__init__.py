"""Train-split-only data augmentation (the playbook's item 5): synonyms, random swap and
deletion, context noise, paraphrase and back-translation, deduplicated against val/test.

    from personalab.augment import augment_dataset
    augmented, report = augment_dataset(dataset, ["synonyms", "swap", "context_noise"])
    print(report.summary())
"""

from __future__ import annotations

from personalab.augment.base import Augmenter
from personalab.augment.dataset import augment_dataset, normalize
from personalab.augment.eda import DeleteAugmenter, SwapAugmenter
from personalab.augment.generators import (
    CausalLMGenerator,
    DecodeSettings,
    PromptedGenerator,
    Seq2SeqGenerator,
    TextGenerator,
)
from personalab.augment.model_based import BackTranslationAugmenter, ParaphraseAugmenter
from personalab.augment.noise import ContextNoiseAugmenter
from personalab.augment.registry import (
    AUGMENTERS,
    PLAYBOOK_AUGMENTERS,
    build_augmenter,
    build_augmenters,
)
from personalab.augment.report import AugmenterStats, AugmentReport
from personalab.augment.synonyms import SynonymAugmenter
from personalab.augment.wordnet import WORDNET_ENV, WordNet, find_wordnet

__all__ = [
    "AUGMENTERS",
    "PLAYBOOK_AUGMENTERS",
    "WORDNET_ENV",
    "AugmentReport",
    "Augmenter",
    "AugmenterStats",
    "BackTranslationAugmenter",
    "CausalLMGenerator",
    "ContextNoiseAugmenter",
    "DecodeSettings",
    "DeleteAugmenter",
    "ParaphraseAugmenter",
    "PromptedGenerator",
    "Seq2SeqGenerator",
    "SwapAugmenter",
    "SynonymAugmenter",
    "TextGenerator",
    "WordNet",
    "augment_dataset",
    "build_augmenter",
    "build_augmenters",
    "find_wordnet",
    "normalize",
]
