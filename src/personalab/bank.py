"""The adapter bank: named LoRA adapters for one base model, on disk in PEFT format.

Layout: ``<root>/<name>/adapter_config.json + adapter_model.safetensors`` for each adapter and
``<root>/manifest.json`` describing them (base model, LoRA settings, training data, scores,
config hash, creation time). Every write goes to a temporary name and is renamed into place,
so a crash never leaves a half-written adapter or manifest that a later read would trust.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import torch

from personalab.data.io import atomic_write_text
from personalab.errors import PersonalabError

MANIFEST = "manifest.json"
WEIGHTS = "adapter_model.safetensors"
# Bank names are "unified", "persona/<id>", "cluster/<k>", ...: a kind and an optional key.
_NAME = re.compile(r"^[a-z][a-z0-9_]*(/[A-Za-z0-9_.-]+)?$")


class AdapterBank:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ----- reading -----------------------------------------------------------------------
    def manifest(self) -> dict[str, dict[str, Any]]:
        path = self.root / MANIFEST
        if not path.exists():
            return {}
        return json.loads(path.read_text(encoding="utf-8"))["adapters"]

    def names(self) -> list[str]:
        return sorted(self.manifest())

    def path(self, name: str) -> Path:
        if name not in self.manifest():
            known = ", ".join(self.names()) or "none"
            raise PersonalabError(f"adapter {name!r} is not in the bank at {self.root} (it has: {known})")
        return self.root / _dirname(name)

    # ----- writing -----------------------------------------------------------------------
    def save(self, name: str, model: Any, adapter_name: str = "default", **meta: Any) -> Path:
        """Save ``adapter_name`` of a PEFT model as bank adapter ``name`` (atomically)."""
        target = self.root / _dirname(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=target.parent))
        try:
            model.save_pretrained(str(staging), selected_adapters=[adapter_name], safe_serialization=True)
            # PEFT writes a non-default adapter into a subfolder named after it.
            saved = staging if (staging / WEIGHTS).exists() else staging / adapter_name
            _replace_dir(saved, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        config = json.loads((target / "adapter_config.json").read_text(encoding="utf-8"))
        entry = {
            "path": _dirname(name),
            "base_model": config.get("base_model_name_or_path"),
            "lora": {k: config.get(k) for k in ("r", "lora_alpha", "lora_dropout", "target_modules")},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **meta,
        }
        self._update_manifest({name: entry})
        return target

    def _update_manifest(self, entries: dict[str, dict[str, Any]]) -> None:
        adapters = {**self.manifest(), **entries}
        text = json.dumps({"adapters": adapters}, indent=2, sort_keys=True, default=_jsonable)
        atomic_write_text(self.root / MANIFEST, text)

    # ----- loading into a model -------------------------------------------------------------
    def load_into(self, base_model: torch.nn.Module, names: Iterable[str]) -> Any:
        """A PEFT model over ``base_model`` with the named adapters loaded under their bank names."""
        from peft import PeftModel

        names = list(names)
        model = None
        for name in names:
            path = self.path(name)
            if not (path / WEIGHTS).exists():
                raise PersonalabError(f"adapter {name!r} at {path} has no {WEIGHTS}; refusing to load other formats")
            if model is None:
                model = PeftModel.from_pretrained(base_model, str(path), adapter_name=name)
            else:
                model.load_adapter(str(path), adapter_name=name)
        model.eval()
        return model


def _dirname(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"invalid bank adapter name {name!r}")
    return name


def _replace_dir(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``, replacing an older ``target`` without a moment where a
    half-written ``target`` exists (the old one is renamed away first, then deleted)."""
    old = target.with_name(f".old-{target.name}-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(source, target)
    shutil.rmtree(old, ignore_errors=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)
