"""Persona identifiers as text (UserIdentifier, Mireshghallah et al., NAACL 2022): a few
ordinary words of the base model's own vocabulary per persona, prepended to every input of
that persona so that one shared adapter can tell personas apart.

This module owns how identifiers are drawn, and nothing else (how an identifier and an input
become the model input is ``personalab.routing.with_identifier``, used wherever rows are
scored):

* ``identifier_vocabulary(tokenizer)``: the words an identifier may use: whole lowercase
  ASCII words that are one token of the tokenizer, so an identifier is plain text that
  tokenizes the same way wherever it is sent (no special tokens, no ``##`` or byte-level
  subword pieces whose meaning depends on their neighbours).
* ``draw_identifiers(persona_ids, vocabulary, tokens)``: each persona's words, drawn with a
  seed taken from sha256 of its id (not Python's ``hash()``, which is salted per process), so
  the same persona gets the same identifier in every run and process; two personas never
  share one (a collision is redrawn, deterministically).
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

from personalab.errors import PersonalabError

# Changing how identifiers are drawn would silently give old runs' personas new identifiers:
# bump the salt with any change to the drawing, so that adapter fingerprints change with it.
SALT = "personalab/persona_token/v1"
MIN_WORD_CHARS, MAX_WORD_CHARS = 3, 12  # short words are often pieces of others; long ones rare
MIN_VOCABULARY = 16  # fewer usable words than this: the tokenizer is not a word-level one
MAX_REDRAWS = 1000  # per persona; reached only when identifiers are nearly exhausted


def identifier_vocabulary(tokenizer) -> list[str]:
    """Sorted whole words usable in identifiers: lowercase ASCII letters only, one token of
    ``tokenizer`` after a space (how they appear inside ``routing.with_identifier``'s text: words
    split on spaces never merge with their neighbours), and not a special token. Sorted, so
    the list depends on the vocabulary alone, not on its order."""
    special = set(getattr(tokenizer, "all_special_tokens", ()))
    ids = sorted(tokenizer.get_vocab().values())
    decoded = tokenizer.batch_decode([[i] for i in ids])
    words = sorted({text.strip() for text in decoded if _looks_like_word(text.strip()) and text.strip() not in special})
    if not words:
        return []
    spaced = tokenizer([" " + w for w in words], add_special_tokens=False)["input_ids"]
    return [w for w, ids in zip(words, spaced) if len(ids) == 1]


def _looks_like_word(text: str) -> bool:
    return MIN_WORD_CHARS <= len(text) <= MAX_WORD_CHARS and text.isascii() and text.isalpha() and text.islower()


def draw_identifiers(persona_ids: Iterable[str], vocabulary: Sequence[str], tokens: int) -> dict[str, str]:
    """``{persona_id: "word word word"}`` with ``tokens`` distinct words each, all identifiers
    distinct. Personas are taken in sorted order and a persona whose draw is taken already
    redraws (next attempt number), so the result depends on the set of ids, not their order."""
    if len(vocabulary) < max(tokens, MIN_VOCABULARY):
        raise PersonalabError(
            f"the tokenizer has only {len(vocabulary)} whole-word tokens usable in identifiers "
            f"(at least {max(tokens, MIN_VOCABULARY)} needed); persona_token needs a word-level vocabulary"
        )
    taken: set[str] = set()
    identifiers = {}
    for persona_id in sorted(set(persona_ids)):
        identifiers[persona_id] = _first_free(persona_id, vocabulary, tokens, taken)
        taken.add(identifiers[persona_id])
    return identifiers


def _first_free(persona_id: str, vocabulary: Sequence[str], tokens: int, taken: set[str]) -> str:
    for attempt in range(MAX_REDRAWS):
        identifier = draw_identifier(persona_id, vocabulary, tokens, attempt)
        if identifier not in taken:
            return identifier
    raise PersonalabError(
        f"no free identifier for persona {persona_id!r} after {MAX_REDRAWS} draws: "
        f"{len(taken)} personas share {len(vocabulary)} words; raise `tokens` (now {tokens})"
    )


def draw_identifier(persona_id: str, vocabulary: Sequence[str], tokens: int, attempt: int = 0) -> str:
    """``tokens`` distinct words of ``vocabulary``, picked by a sha256 stream seeded with the
    persona id and ``attempt`` (0 first; a collision redraws with the next attempt)."""
    words: list[str] = []
    counter = 0
    while len(words) < tokens:
        word = vocabulary[_uniform_index(f"{SALT}\0{persona_id}\0{attempt}\0{counter}", len(vocabulary))]
        if word not in words:
            words.append(word)
        counter += 1
    return " ".join(words)


def _uniform_index(key: str, size: int) -> int:
    # 64 bits of sha256 modulo a vocabulary of ~1e5 words: the bias is ~1e-14, irrelevant.
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % size
