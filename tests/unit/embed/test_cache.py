"""The embedding cache and ``embed_texts`` around it, with a fake encoder (no model, fast)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from personalab.embed import encoder as encoder_module
from personalab.embed.cache import EmbeddingCache, cache_key
from personalab.embed.encoder import embed_texts, resolve_encoder
from personalab.errors import PersonalabError

DIM = 8


class FakeEncoder:
    """Deterministic unit vectors from a text's hash; counts what it is asked to embed."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts, **kwargs):
        self.calls.append(list(texts))
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:DIM], np.uint8) for t in texts]
        vectors = np.array(rows, dtype=np.float32) + 1.0
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def get_sentence_embedding_dimension(self):
        return DIM


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """(model folder, fake encoder, cache): ``load_encoder`` counts its loads too."""
    model = tmp_path / "fake-model"
    model.mkdir()
    (model / "config.json").write_text('{"fake": 1}')
    encoder = FakeEncoder()
    loads = []

    def load(path, device=None):
        loads.append(path)
        return encoder

    monkeypatch.setattr(encoder_module, "load_encoder", load)
    encoder.loads = loads
    return str(model), encoder, EmbeddingCache(tmp_path / "cache" / "e.sqlite")


def test_second_call_reads_the_cache_and_gives_identical_arrays(fake):
    model, encoder, cache = fake
    texts = ["a cat", "a dog", "a cat"]
    first = embed_texts(texts, model=model, cache=cache)
    assert encoder.calls == [["a cat", "a dog"]]  # duplicates computed once
    assert first.shape == (3, DIM) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)
    second = embed_texts(texts, model=model, cache=cache)
    assert len(encoder.calls) == 1 and len(encoder.loads) == 1  # no reload, no recompute
    np.testing.assert_array_equal(first, second)
    embed_texts(["a dog", "a bird"], model=model, cache=cache)
    assert encoder.calls[-1] == ["a bird"]  # only what is missing


def test_a_fresh_process_reuses_the_cache_on_disk(fake):
    model, encoder, cache = fake
    first = embed_texts(["x", "y"], model=model, cache=cache)
    reopened = EmbeddingCache(cache.path)  # a new object reads the same file
    np.testing.assert_array_equal(first, embed_texts(["x", "y"], model=model, cache=reopened))
    assert len(encoder.calls) == 1


def test_another_model_never_reads_these_vectors(fake, tmp_path):
    model, encoder, cache = fake
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "config.json").write_text('{"fake": 2}')
    embed_texts(["x"], model=model, cache=cache)
    embed_texts(["x"], model=str(other), cache=cache)
    assert len(encoder.calls) == 2
    assert resolve_encoder(model).fingerprint != resolve_encoder(str(other)).fingerprint
    assert cache_key("m1", "x") != cache_key("m2", "x") != cache_key("m1", "y")


def test_damaged_rows_and_unreadable_files_are_recomputed(fake):
    model, encoder, cache = fake
    embed_texts(["x", "y"], model=model, cache=cache)
    import sqlite3

    with sqlite3.connect(cache.path) as conn:  # truncate one stored vector
        key = cache_key(resolve_encoder(model).fingerprint, "x")
        conn.execute("UPDATE vectors SET vector = ? WHERE key = ?", (b"\0" * 5, key))
    embed_texts(["x", "y"], model=model, cache=cache)
    assert encoder.calls[-1] == ["x"]
    cache.path.write_bytes(b"this is not a database" * 100)
    with pytest.warns(UserWarning, match="embedding cache"):
        vectors = embed_texts(["x", "y"], model=model, cache=cache)
    assert vectors.shape == (2, DIM) and encoder.calls[-1] == ["x", "y"]


def test_a_write_killed_before_commit_leaves_nothing_behind(tmp_path):
    """The child dies (os._exit, like SIGKILL) after its rows went into the transaction."""
    path = tmp_path / "e.sqlite"
    child = textwrap.dedent(f"""
        import functools, os, sqlite3
        import numpy as np
        from personalab.embed.cache import EmbeddingCache

        class Dying(sqlite3.Connection):
            def executemany(self, *args):
                super().executemany(*args)
                os._exit(9)

        cache = EmbeddingCache({str(path)!r})
        cache.put_many({{"before": np.ones(4, np.float32)}})
        sqlite3.connect = functools.partial(sqlite3.connect, factory=Dying)
        cache.put_many({{"k1": np.ones(4, np.float32), "k2": np.ones(4, np.float32)}})
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert result.returncode == 9, result.stderr
    found = EmbeddingCache(path).get_many(["before", "k1", "k2"])
    assert list(found) == ["before"]


def test_a_model_that_is_not_a_local_folder_is_a_user_error(tmp_path):
    with pytest.raises(PersonalabError, match="not a local folder"):
        resolve_encoder("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(PersonalabError, match="not a local folder"):
        resolve_encoder(str(tmp_path / "absent"))


def test_cache_lives_under_personalab_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PERSONALAB_CACHE", str(tmp_path))
    assert EmbeddingCache().path == tmp_path / "embeddings" / "embeddings.sqlite"
