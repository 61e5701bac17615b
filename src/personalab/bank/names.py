"""Bank adapter names and the two safe names derived from each: its folder and its PEFT name.

A bank name is a *kind* and an optional *key*: ``unified``, ``persona/<id>``, ``cluster/<k>``,
``merged/<name>``. The kind is chosen by code (lowercase identifier); the key is data, e.g. a
persona id, and may be any string at all: dots, slashes, "..", spaces, emoji, words PEFT uses
for its own parameters ("lora", "weight"), hundreds of characters, or two ids that differ only
by case. So a key is never used as it is, neither as a path nor as a PEFT adapter name:

- folder: ``<kind>`` for a name without key, ``<kind>/<slug>-<digest>`` with one, where the
  slug is a short lowercase ASCII rendering of the key (for people) and the digest a hash of
  the exact name (for uniqueness, also on case-insensitive file systems). The manifest maps
  each folder back to its exact name.
- PEFT adapter name: ``<kind>_<digest>``. PEFT puts adapter names inside parameter names
  (``...q_proj.lora_A.<adapter>.weight``) and strips them again by string matching, so a name
  with a dot, or equal to a module or parameter word, corrupts saving and loading.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from personalab.errors import PersonalabError

_KIND = re.compile(r"[a-z][a-z0-9_]*")
_SLUG_CHARS = 40  # enough to recognise a persona in a folder listing; the digest does the rest
_DIGEST_CHARS = 12  # 48 bits: collisions are negligible, and the bank refuses one anyway


def split_name(name: str) -> tuple[str, str | None]:
    """``"persona/x/y"`` -> ``("persona", "x/y")``; ``"unified"`` -> ``("unified", None)``."""
    if not isinstance(name, str):
        raise TypeError(f"a bank adapter name is a string, not {type(name).__name__}")
    kind, slash, key = name.partition("/")
    if not _KIND.fullmatch(kind):
        raise ValueError(f"invalid bank adapter name {name!r}: the kind {kind!r} must be a lowercase identifier")
    if not slash:
        return kind, None
    if not key:
        raise PersonalabError(f"invalid bank adapter name {name!r}: the part after {kind + '/'!r} is empty")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise PersonalabError(f"invalid bank adapter name {name!r}: it is not valid Unicode text") from None
    return kind, key


def adapter_directory(name: str) -> str:
    """The folder of bank adapter ``name``, relative to the bank root, with ``/`` separators."""
    kind, key = split_name(name)
    if key is None:
        return kind
    slug = _slug(key)
    return f"{kind}/{slug}-{_digest(name)}" if slug else f"{kind}/{_digest(name)}"


def peft_adapter_name(name: str) -> str:
    """The adapter name bank adapter ``name`` has inside a PEFT model loaded by the bank
    (``model.set_adapter(peft_adapter_name("persona/a.b"))``)."""
    kind, _ = split_name(name)
    return f"{kind}_{_digest(name)}"


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]


def _slug(key: str) -> str:
    """Lowercase ASCII letters, digits and single underscores; "" when nothing readable is left."""
    ascii_text = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    return slug[:_SLUG_CHARS].rstrip("_")
