"""Persona embeddings: texts to vectors with a local sentence-transformers model (the embedded
all-MiniLM-L6-v2 by default), cached on disk, and one vector per persona from its profile,
its train rows, or both."""

from __future__ import annotations

from personalab.embed.cache import EmbeddingCache, cache_root
from personalab.embed.encoder import DEFAULT_MODEL, EncoderRef, embed_texts, resolve_encoder
from personalab.embed.personas import (
    DEFAULT_SOURCE,
    SOURCES,
    PersonaEmbeddings,
    embed_persona,
    label_set,
    persona_embeddings,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_SOURCE",
    "SOURCES",
    "EmbeddingCache",
    "EncoderRef",
    "PersonaEmbeddings",
    "cache_root",
    "embed_persona",
    "embed_texts",
    "label_set",
    "persona_embeddings",
    "resolve_encoder",
]
