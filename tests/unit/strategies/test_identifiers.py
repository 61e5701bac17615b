"""Persona identifiers (``persona_token``, identity text): the words they may use, that they are
stable across processes and distinct across personas, how collisions are redrawn, and the
strategy's option errors (how the routing table applies them: tests/unit/routing)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
import transformers

from personalab.errors import PersonalabError
from personalab.routing import with_identifier
from personalab.strategies import get_strategy, list_strategies
from personalab.strategies.identifiers import (
    MIN_VOCABULARY,
    draw_identifier,
    draw_identifiers,
    identifier_vocabulary,
)

NATO = ("alfa bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november oscar papa "
        "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


@pytest.fixture(scope="module", params=["tiny-classifier", "tiny-causal-lm"])
def tokenizer(request, personalab_cache):
    from personalab.models.tiny import resolve_tiny

    return transformers.AutoTokenizer.from_pretrained(str(resolve_tiny(request.param)))


def test_vocabulary_is_whole_words_that_are_one_token_after_a_space(tokenizer):
    words = identifier_vocabulary(tokenizer)
    assert len(words) >= MIN_VOCABULARY and words == sorted(set(words))
    special = set(tokenizer.all_special_tokens)
    for word in words:
        assert word.isascii() and word.isalpha() and word.islower() and word not in special
        assert len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1


def test_an_identifier_survives_decode_and_retokenize(tokenizer):
    """The model input built in training is the text a server sends: decoding its tokens
    and tokenizing again gives the same tokens."""
    identifier = draw_identifiers(["p0"], identifier_vocabulary(tokenizer), 3)["p0"]
    text = with_identifier(identifier, "I love this movie")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    again = tokenizer(tokenizer.decode(ids), add_special_tokens=False)["input_ids"]
    assert again == ids


def test_identifiers_are_the_same_in_another_process(tiny_classifier_path):
    personas = [f"annotator-{i}" for i in range(40)]
    script = (
        "import json, sys, transformers\n"
        "from personalab.strategies.identifiers import draw_identifiers, identifier_vocabulary\n"
        f"tok = transformers.AutoTokenizer.from_pretrained({str(tiny_classifier_path)!r})\n"
        f"print(json.dumps(draw_identifiers({personas!r}, identifier_vocabulary(tok), 3)))\n"
    )
    # A different hash seed: Python's own hash() would give other identifiers there.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    fresh = transformers.AutoTokenizer.from_pretrained(str(tiny_classifier_path))
    assert json.loads(out.stdout) == draw_identifiers(personas, identifier_vocabulary(fresh), 3)


def test_the_drawing_itself_is_pinned():
    # If this changes, every earlier run's personas get new identifiers: bump identifiers.SALT.
    assert draw_identifier("annotator-7", NATO, 3) == "foxtrot india oscar"


def test_identifiers_are_distinct_have_distinct_words_and_ignore_input_order():
    personas = [f"p{i}" for i in range(300)]
    drawn = draw_identifiers(personas, NATO, 3)
    assert len(set(drawn.values())) == 300  # 2600 three-word sets for 300 personas: collisions redrawn
    assert all(len(set(identifier.split())) == 3 for identifier in drawn.values())
    shuffled = personas[:]
    random.Random(0).shuffle(shuffled)
    assert draw_identifiers(shuffled, NATO, 3) == drawn


def test_a_collision_is_redrawn_for_the_later_persona_in_sorted_order():
    vocabulary = NATO[:16]
    # p5 and p6 draw the same single word first (found by search; pinned by this assertion).
    assert draw_identifier("p5", vocabulary, 1) == draw_identifier("p6", vocabulary, 1)
    drawn = draw_identifiers(["p6", "p5"], vocabulary, 1)
    assert drawn["p5"] == draw_identifier("p5", vocabulary, 1)
    assert drawn["p6"] != drawn["p5"] and drawn["p6"] in vocabulary


def test_too_many_personas_for_the_identifiers_is_a_clear_error():
    vocabulary = NATO[:16]
    assert sorted(draw_identifiers([f"p{i}" for i in range(16)], vocabulary, 1).values()) == sorted(vocabulary)
    with pytest.raises(PersonalabError, match="raise `tokens`"):
        draw_identifiers([f"p{i}" for i in range(17)], vocabulary, 1)
    with pytest.raises(PersonalabError, match="word-level vocabulary"):
        draw_identifiers(["p0"], NATO[:5], 3)


def test_persona_token_is_registered_with_its_options():
    assert "persona_token" in dict(list_strategies())
    strategy = get_strategy("persona_token", identity="text", tokens=5, anonymous_share=0)
    assert (strategy.identity, strategy.tokens, strategy.anonymous_share) == ("text", 5, 0.0)
    learned = get_strategy("persona_token", identity="learned", vector_lr=1e-2)
    assert (learned.identity, learned.vector_lr) == ("learned", 1e-2)


@pytest.mark.parametrize("options, message", [
    ({"identity": "vector"}, r"identity must be one of: 'text' .*'learned' .*not 'vector'"),
    ({"identity": "TEXT"}, "identity must be one of"),
    ({"identity": "learned", "tokens": 3}, "tokens applies to identity 'text' only"),
    ({"vector_lr": 1e-3}, "vector_lr applies to identity 'learned' only"),
    ({"identity": "learned", "vector_lr": 0}, r"vector_lr must be a number in \(0, 1\] .*not 0"),
    ({"identity": "learned", "vector_lr": -1e-3}, "not -0.001"),
    ({"identity": "learned", "vector_lr": 2.0}, "not 2.0"),
    ({"identity": "learned", "vector_lr": float("nan")}, "not nan"),
    ({"identity": "learned", "vector_lr": "fast"}, "not 'fast'"),
    ({"identity": "learned", "vector_lr": True}, "not True"),
    ({"tokens": 0}, "tokens must be a whole number from 1 to 16, not 0"),
    ({"tokens": 17}, "not 17"),
    ({"tokens": 2.5}, "not 2.5"),
    ({"tokens": "3"}, "not '3'"),
    ({"tokens": True}, "not True"),
    ({"anonymous_share": -0.1}, r"anonymous_share must be a number in \[0, 1\)"),
    ({"anonymous_share": 1.0}, "not 1.0"),
    ({"anonymous_share": "some"}, "not 'some'"),
    ({"token": 3}, "has no option token"),
])
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(PersonalabError, match=message):
        get_strategy("persona_token", **options)
