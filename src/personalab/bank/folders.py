"""One adapter folder on disk: what makes it a plain PEFT LoRA adapter the bank accepts, its
file digests, and copying it.

The bank holds plain LoRA only (``y = W x + s B A x``): that is what the multi-LoRA engine
stacks per row and what multi-LoRA servers such as vLLM serve. So a folder is refused, with a
``PersonalabError`` that says why and what to do, when it is not LoRA, uses DoRA, trains whole
modules (``modules_to_save``), holds tensors other than LoRA's A and B, or keeps its weights
only as a pickle (loading a pickle can run arbitrary code).

Beside the two PEFT files a folder may hold the persona vectors trained with the adapter
(``bank.vectors``); they are digested and copied with the adapter, except into a plain PEFT
folder for servers (``copy_adapter_files(..., vectors=False)``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from safetensors import safe_open

from personalab.bank.base import is_lora_key
from personalab.bank.vectors import VECTORS_FILE
from personalab.data.atomic import move_file
from personalab.errors import PersonalabError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
ADAPTER_FILES = (CONFIG_FILE, WEIGHTS_FILE)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def is_complete(folder: Path) -> bool:
    return all((folder / file).is_file() for file in ADAPTER_FILES)


def read_adapter_folder(folder: Path) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """The adapter config and ``{tensor key: shape}`` of a folder the bank accepts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PersonalabError(f"{folder} is not a folder; give a PEFT adapter folder ({CONFIG_FILE} + {WEIGHTS_FILE})")
    config = _read_config(folder)
    _check_plain_lora(folder, config)
    return config, _read_weight_shapes(folder)


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise PersonalabError(f"{folder} has no {CONFIG_FILE}: it is not a PEFT adapter folder")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PersonalabError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise PersonalabError(f"{path} does not hold a JSON object")
    return config


def _check_plain_lora(folder: Path, config: dict[str, Any]) -> None:
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise PersonalabError(f"{folder} holds a {peft_type or 'untyped'} adapter; the bank holds LoRA adapters only (peft_type LORA)")
    if config.get("use_dora"):
        raise PersonalabError(
            f"{folder} is a DoRA adapter (use_dora: true); the bank holds plain LoRA only, which the multi-LoRA "
            "engine and servers such as vLLM can apply. Train it again without DoRA."
        )
    if config.get("modules_to_save"):
        raise PersonalabError(
            f"{folder} trains whole modules besides LoRA (modules_to_save: {config['modules_to_save']}); the bank "
            "holds plain LoRA only. Train it without modules_to_save (e.g. without a task_type)."
        )


def _read_weight_shapes(folder: Path) -> dict[str, list[int]]:
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise PersonalabError(_missing_weights_message(folder))
    try:
        with safe_open(str(weights), framework="pt") as handle:
            shapes = {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as error:  # safetensors raises its own error types for a damaged file
        raise PersonalabError(f"{weights} is not a readable safetensors file ({error})") from None
    others = sorted(key for key in shapes if not is_lora_key(key))
    if others or not shapes:
        found = f"other tensors, e.g. {', '.join(others[:3])}" if others else "no tensors"
        raise PersonalabError(f"{weights} holds {found}; the bank holds plain LoRA adapters (lora_A / lora_B) only")
    return shapes


def _missing_weights_message(folder: Path) -> str:
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not pickles:
        return f"{folder} has no {WEIGHTS_FILE}"
    return (
        f"{folder} has its weights only in pickle format ({', '.join(pickles)}); loading a pickle can run "
        f"arbitrary code, so the bank refuses it. Convert it to {WEIGHTS_FILE} where you trust the file "
        "(load it with PEFT and save_pretrained(..., safe_serialization=True))."
    )


def file_digests(folder: Path) -> dict[str, str]:
    """The sha256 of each adapter file (and of its persona vectors, when it has them): the
    manifest records them, so that a folder changed or replaced behind the manifest's back is
    noticed before it is used."""
    return {file: _sha256(folder / file) for file in _files_of(folder)}


def _files_of(folder: Path) -> tuple[str, ...]:
    return ADAPTER_FILES + ((VECTORS_FILE,) if (folder / VECTORS_FILE).is_file() else ())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_adapter_files(source: Path, target: Path, move: bool = False, vectors: bool = True) -> None:
    """Put exactly the two adapter files of ``source`` (and its persona vectors, if any and
    ``vectors``) into the new staging folder ``target`` (``personalab.data.atomic`` fsyncs
    them when it renames ``target`` into place). Anything else (README, pickles) stays behind."""
    target.mkdir(parents=True)
    for file in _files_of(source) if vectors else ADAPTER_FILES:
        if move:
            move_file(source / file, target / file)
        else:
            shutil.copyfile(source / file, target / file)
