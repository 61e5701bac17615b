"""The persona-vector file an adapter may carry in its bank folder: learned per-persona
vectors trained together with the adapter (``persona_token`` with ``identity: learned``).

    <adapter folder>/persona_vectors.safetensors
        tensor "vectors"    [n_personas, hidden] float32: row k is persona k's vector
        metadata "personas" JSON list of the n persona ids, in row order
        metadata "format"   "1"

One tensor and the persona order, rather than a tensor per persona: persona ids may be any
text (safetensors keys may not), and one read gives the table the engine holds. The file is
written with ``personalab.data.atomic`` inside the adapter's staging folder, so the adapter and
its vectors go into place (and are replaced) together; the bank records its digest with the
adapter's files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from safetensors import safe_open

from personalab.data.atomic import atomic_write_safetensors
from personalab.errors import PersonalabError

VECTORS_FILE = "persona_vectors.safetensors"
FORMAT = "1"
TENSOR = "vectors"


def write_vectors(path: str | Path, personas: Sequence[str], vectors: torch.Tensor) -> None:
    """Write ``vectors`` (``[len(personas), hidden]``, stored as float32) with their persona
    order, atomically."""
    personas = [str(p) for p in personas]
    if vectors.dim() != 2 or vectors.shape[0] != len(personas) or len(set(personas)) != len(personas):
        raise ValueError(f"persona vectors must be [n, hidden] for n distinct personas; got {list(vectors.shape)} "
                         f"for {len(personas)} ids ({len(set(personas))} distinct)")
    metadata = {"personas": json.dumps(personas, ensure_ascii=False), "format": FORMAT}
    atomic_write_safetensors(path, {TENSOR: vectors.detach().to(torch.float32).cpu().contiguous()}, metadata=metadata)


def read_vectors(path: str | Path) -> tuple[list[str], torch.Tensor]:
    """``(personas, [n, hidden] float32)`` as written; a ``PersonalabError`` saying what is
    wrong with a file that is not one."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            keys = list(handle.keys())
            vectors = handle.get_tensor(TENSOR) if TENSOR in keys else None
    except Exception as error:  # safetensors raises its own types for a damaged file
        raise PersonalabError(f"{path} is not a readable safetensors file ({error})") from None
    try:
        personas = json.loads(metadata.get("personas", "null"))
    except json.JSONDecodeError:
        personas = None
    if vectors is None or keys != [TENSOR] or not isinstance(personas, list) or vectors.dim() != 2 \
            or vectors.shape[0] != len(personas) or metadata.get("format") != FORMAT:
        raise PersonalabError(f"{path} is not a persona-vector file of format {FORMAT} (one tensor {TENSOR!r} "
                              "[personas, hidden] and the persona order in its metadata)")
    return [str(p) for p in personas], vectors
