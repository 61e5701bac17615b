"""``AdapterBank``: named LoRA adapters for one base model, on disk, with their manifest.

    <root>/manifest.json                   what is in the bank (the only thing readers trust)
    <root>/unified/                        one plain PEFT folder per adapter:
    <root>/persona/<slug>-<digest>/          adapter_config.json + adapter_model.safetensors
                                             (+ persona_vectors.safetensors: ``bank.vectors``)
    <root>/.staging/  <root>/.lock         work in progress of writers, never read

An adapter is in the bank when its manifest entry exists and its folder is complete. Writers
build a folder under ``.staging`` and check it; then, under a lock, rename it into place and
rewrite the manifest (each step atomic), so that a save killed while writing leaves the previous
version, and a reader never sees a partial folder. A failed manifest write puts the previous
folder back. The entry records the files' sha256, so that a folder
that changed behind the manifest's back is refused before it is loaded or exported.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from personalab.bank.base import (
    adapter_tensor_shapes,
    base_conflict,
    describe_base,
    describe_model,
    label,
    shape_misfits,
)
from personalab.bank.folders import WEIGHTS_FILE, copy_adapter_files, file_digests, is_complete, read_adapter_folder
from personalab.bank.lock import locked
from personalab.bank.names import adapter_directory, peft_adapter_name, split_name
from personalab.bank.vectors import VECTORS_FILE, read_vectors, write_vectors
from personalab.data.atomic import (
    atomic_write_text,
    move_folder_into_place,
    replace_folder,
    staging_folder,
    undo_replace_folder,
)
from personalab.engine import MultiLoraModel, read_peft_adapter, write_peft_adapter
from personalab.errors import PersonalabError

MANIFEST = "manifest.json"
FORMAT = 1
STAGING = ".staging"
LOCK = ".lock"
LORA_FIELDS = ("r", "lora_alpha", "lora_dropout", "target_modules", "bias", "use_rslora",
               "rank_pattern", "alpha_pattern", "fan_in_fan_out", "layers_to_transform")
ENTRY_FIELDS = ("directory", "peft_name", "base_model", "lora", "created", "files", "source",
                "data", "scores", "config_hash")


class AdapterBank:
    """The bank at ``root`` (created on the first write)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # ----- reading ---------------------------------------------------------------------------

    def manifest(self) -> dict[str, dict[str, Any]]:
        """``{name: entry}`` of the adapters in the bank (entries whose folder is complete)."""
        adapters = self._read()["adapters"]
        return {name: entry for name, entry in adapters.items() if is_complete(self.root / entry["directory"])}

    def names(self) -> list[str]:
        return sorted(self.manifest())

    def entry(self, name: str) -> dict[str, Any]:
        """The manifest entry of adapter ``name``: base model, LoRA settings, data, scores, ..."""
        self.path(name)
        return self._read()["adapters"][name]

    def base_model(self) -> dict[str, Any] | None:
        """The base model every adapter of the bank belongs to (None while the bank is empty)."""
        return self._read()["base_model"]

    def path(self, name: str) -> Path:
        """The folder of adapter ``name``; a ``PersonalabError`` when it is not in the bank."""
        document = self._read()
        entry = document["adapters"].get(name)
        if entry is None:
            raise PersonalabError(self._not_found(name, document))
        folder = self.root / entry["directory"]
        if not folder.is_dir():
            raise PersonalabError(f"adapter {name!r} is in the manifest but its folder {folder} is missing; save it again")
        if not is_complete(folder):
            read_adapter_folder(folder)  # raises with the precise reason (e.g. pickled weights)
            raise PersonalabError(f"the folder of adapter {name!r} at {folder} is incomplete; save it again")
        return folder

    def _verified(self, name: str) -> tuple[Path, dict[str, Any]]:
        """The folder and entry of ``name``, refusing a folder whose files differ from those
        recorded (edited by hand, or a replacement interrupted between its renames)."""
        folder = self.path(name)
        entry = self._read()["adapters"][name]
        if entry.get("files") and file_digests(folder) != entry["files"]:
            raise PersonalabError(
                f"the files of adapter {name!r} at {folder} are not the ones the manifest recorded "
                "(changed by hand, or an interrupted save); save or import it again"
            )
        return folder, entry

    def _not_found(self, name: str, document: dict[str, Any]) -> str:
        known = sorted(document["adapters"])
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        shown = ", ".join(map(repr, known[:10])) + (f", ... ({len(known)} in all)" if len(known) > 10 else "")
        return f"adapter {name!r} is not in the bank at {self.root} (it has: {shown or 'none'}){hint}"

    def _read(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.exists():
            return {"format": FORMAT, "base_model": None, "adapters": {}}
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise PersonalabError(f"the bank manifest {path} is damaged ({error}); it was not written by personalab") from None
        document.setdefault("base_model", None)
        for name, entry in document.setdefault("adapters", {}).items():
            # Banks written before the manifest had a format kept the folder under "path".
            entry.setdefault("directory", entry.get("path") or adapter_directory(name))
        return document

    # ----- writing ---------------------------------------------------------------------------

    def save(
        self,
        name: str,
        model: Any,
        adapter_name: str = "default",
        *,
        data: Any = None,
        scores: Any = None,
        config_hash: str | None = None,
        base_revision: str | None = None,
        **extra: Any,
    ) -> Path:
        """Save adapter ``adapter_name`` of PEFT model ``model`` as bank adapter ``name``
        (replacing an older one), with what trained it (``data``), its validation ``scores``
        and the run's ``config_hash``; ``extra`` keys are recorded as given. Returns its folder."""
        adapter_directory(name)  # an invalid name fails before any work
        base = _base_of_peft_model(model, adapter_name, base_revision)
        with staging_folder(self.root / STAGING) as staging:
            saved = _save_with_peft(model, adapter_name, staging / "peft")
            copy_adapter_files(saved, staging / "adapter", move=True)
            fields = _fields(source="trained", data=data, scores=scores, config_hash=config_hash, extra=extra)
            return self._commit(name, staging, base, fields)

    def import_adapter(
        self,
        name: str,
        peft_dir: str | os.PathLike,
        *,
        data: Any = None,
        scores: Any = None,
        config_hash: str | None = None,
        **extra: Any,
    ) -> Path:
        """Copy the PEFT LoRA adapter folder ``peft_dir`` into the bank as ``name``, after
        checking it is plain LoRA in safetensors for the bank's base model. Returns its folder."""
        adapter_directory(name)
        source = Path(peft_dir)
        config, _ = read_adapter_folder(source)  # refuse before copying anything
        base = describe_base(config.get("base_model_name_or_path"), config.get("revision"))
        with staging_folder(self.root / STAGING) as staging:
            copy_adapter_files(source, staging / "adapter")
            fields = _fields(source=f"imported from {source.resolve()}", data=data, scores=scores,
                             config_hash=config_hash, extra=extra)
            return self._commit(name, staging, base, fields)

    def _commit(self, name: str, staging: Path, base: dict[str, Any], fields: dict[str, Any]) -> Path:
        """Check the staged folder ``staging/adapter``, move it into place and record it."""
        return self._commit_many([(name, staging, fields)], base)[0]

    def _commit_many(self, staged: Sequence[tuple[str, Path, dict[str, Any]]], base: dict[str, Any]) -> list[Path]:
        """Check each staged folder (``(name, staging, fields)``: the adapter in
        ``staging/adapter``), move them all into place and record them in one manifest write:
        the bank holds all of them or, after a failure or a kill, none."""
        entries = [(name, staging, self._entry(name, staging / "adapter", base, fields)) for name, staging, fields in staged]
        with locked(self.root / LOCK):
            document = self._read()
            held = _Held(document["adapters"])
            for name, staging, (entry, shapes) in entries:
                self._check_can_hold(document, held, name, entry, base, shapes)
                document["adapters"][name] = entry
                held.add(name, entry)
                document["base_model"] = _merged_base(document["base_model"], base)
            moved = []
            try:
                for name, staging, (entry, _) in entries:
                    target = self.root / entry["directory"]
                    moved.append((target, replace_folder(staging / "adapter", target, staging / "previous"), staging))
                self._write(document)
            except BaseException:
                for target, previous, staging in reversed(moved):
                    undo_replace_folder(target, previous, staging / "failed")
                    if previous is None:
                        _remove_if_empty(target.parent, self.root)
                raise
        return [self.root / entry["directory"] for _, _, (entry, _) in entries]  # previous versions go with staging

    def remove(self, names: Iterable[str]) -> None:
        """Take the named adapters (those present) out of the bank: the manifest forgets them
        in one write, then their folders go (a kill between leaves folders nothing names)."""
        with locked(self.root / LOCK):
            document = self._read()
            gone = [document["adapters"].pop(name) for name in set(names) if name in document["adapters"]]
            if not gone:
                return
            self._write(document)
            for entry in gone:
                folder = self.root / entry["directory"]
                shutil.rmtree(folder, ignore_errors=True)
                _remove_if_empty(folder.parent, self.root)

    def _entry(self, name: str, staged: Path, base: dict[str, Any], fields: dict[str, Any]) -> tuple[dict, dict]:
        """The manifest entry of the adapter folder ``staged``, and its tensor shapes."""
        config, tensor_shapes = read_adapter_folder(staged)  # what we keep is what we check
        entry = {
            "directory": adapter_directory(name),
            "peft_name": peft_adapter_name(name),
            "base_model": {key: value for key, value in base.items() if key != "module_shapes"},
            "lora": {key: config[key] for key in LORA_FIELDS if key in config},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": file_digests(staged),
            **fields,
        }
        return entry, adapter_tensor_shapes(tensor_shapes)

    def _check_can_hold(self, document: dict[str, Any], held: "_Held", name: str, entry: dict[str, Any],
                        base: dict[str, Any], adapter_shapes: dict[str, dict[str, list[int]]]) -> None:
        """Refuse an adapter the bank cannot hold beside the others: see the messages."""
        kind, key = split_name(name)
        # "unified" lives in <root>/unified/, "unified/x" would live inside it: replacing one
        # would carry the other away, so a kind is used either with keys or without.
        if kind in (held.bare if key else held.keyed_kinds):
            raise ValueError(f"bank adapter {name!r}: the kind {kind!r} is already used {'without' if key else 'with'} a key")
        if held.folders.get(entry["directory"], name) != name:
            raise PersonalabError(f"adapter {name!r} would share its folder {entry['directory']} with another adapter (a hash collision); rename it")
        bank_base = document["base_model"]
        if bank_base is None:
            return
        reason = base_conflict(bank_base, base)
        misfits = shape_misfits(adapter_shapes, bank_base["module_shapes"]) if bank_base.get("module_shapes") else []
        if reason or misfits:
            raise PersonalabError(
                f"the bank at {self.root} holds adapters for {label(bank_base)}, but adapter {name!r} is for "
                f"{label(base)}: {reason or '; '.join(misfits)}. Keep one bank (one run folder) per base model."
            )

    def _write(self, document: dict[str, Any]) -> None:
        document["format"] = FORMAT
        text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=_jsonable)
        atomic_write_text(self.root / MANIFEST, text + "\n")

    # ----- using adapters --------------------------------------------------------------------

    def load_into(self, base_model: torch.nn.Module, names: Iterable[str]) -> Any:
        """A PEFT model over ``base_model`` with the named adapters loaded, each under its
        ``peft_adapter_name(name)``; the first one is active. ``base_model`` may already be a
        PEFT model: the adapters are added to it. Refuses adapters of another base model."""
        from peft import PeftModel

        names = list(dict.fromkeys(names))
        if not names:
            raise ValueError("load_into needs at least one adapter name")
        is_peft = isinstance(base_model, PeftModel)
        target = describe_model(base_model.get_base_model() if is_peft else base_model)
        model = base_model if is_peft else None
        # Check every adapter before loading any: PEFT changes base_model in place.
        folders = [self._checked_against(name, target) for name in names]
        for name, folder in zip(names, folders):
            if model is None:
                model = PeftModel.from_pretrained(base_model, str(folder), adapter_name=peft_adapter_name(name))
            else:
                model.load_adapter(str(folder), adapter_name=peft_adapter_name(name))
        model.set_adapter(peft_adapter_name(names[0]))
        model.eval()
        return model

    def load_engine(
        self, base_model: torch.nn.Module, names: Iterable[str], extra_targets: Sequence[str] = (),
        vectors: str = "",
    ) -> MultiLoraModel:
        """A multi-LoRA engine over ``base_model`` (wrapped in place) holding the named
        adapters, frozen, under their bank names; ``extra_targets`` are further modules to
        wrap for adapters that will be trained into it; ``vectors``: the adapter whose persona
        vectors become the engine's input vectors, named by persona. Refuses adapters of
        another base."""
        names = list(dict.fromkeys(names))
        target = describe_model(base_model)
        weights = {name: read_peft_adapter(self._checked_against(name, target)) for name in names}
        table = self.read_vectors(vectors) if vectors else None
        modules = sorted({path for adapter in weights.values() for path in adapter} | set(extra_targets))
        engine = MultiLoraModel(base_model, modules)
        for name, adapter in weights.items():
            engine.add_adapter(name, adapter)
        if table is not None:
            engine.set_input_vectors(*table)
        return engine

    def read_vectors(self, name: str) -> tuple[list[str], torch.Tensor]:
        """The persona vectors trained with adapter ``name``: ``(personas, [n, hidden])``,
        after checking its files are the ones the manifest recorded."""
        return read_vectors(self.vectors_path(name))

    def vectors_path(self, name: str) -> Path:
        """The persona-vector file of adapter ``name`` (checked); an error when it has none."""
        folder, _ = self._verified(name)
        if not (folder / VECTORS_FILE).is_file():
            raise PersonalabError(f"adapter {name!r} has no persona vectors ({VECTORS_FILE} in {folder})")
        return folder / VECTORS_FILE

    def read_weights(self, name: str) -> dict[str, Any]:
        """Adapter ``name`` as engine weights (``{module_path: LoraWeights}``), after checking
        its files are the ones the manifest recorded."""
        folder, _ = self._verified(name)
        return read_peft_adapter(folder)

    def save_weights(self, name: str, weights: Any, base_model_name_or_path: str, source: str = "trained",
                     vectors: tuple[Sequence[str], torch.Tensor] | None = None, **meta: Any) -> Path:
        """Save engine weights (``{module_path: LoraWeights}``) as bank adapter ``name``;
        ``source`` says where they came from ("trained", "merged", ...); ``vectors``:
        ``(personas, [n, hidden])`` persona vectors trained with it, saved in its folder."""
        return self.save_many_weights([(name, weights, {**meta, "vectors": vectors})], base_model_name_or_path,
                                      source)[0]

    def save_many_weights(self, adapters: Sequence[tuple[str, Any, dict[str, Any]]], base_model_name_or_path: str,
                          source: str = "trained") -> list[Path]:
        """Save several adapters at once, each ``(name, engine weights, meta)`` (meta as
        ``save_weights``'s keywords, plus ``target_modules``: the PEFT entries to write in
        its config, default the exact module paths): one manifest write records them all, so
        the bank holds a whole fleet shard or none of it. Returns their folders."""
        for name, _, _ in adapters:
            adapter_directory(name)  # an invalid name fails before any work
        base = describe_base(base_model_name_or_path)
        with staging_folder(self.root / STAGING) as staging:
            staged = []
            for k, (name, weights, meta) in enumerate(adapters):
                meta = dict(meta)
                vectors, targets = meta.pop("vectors", None), meta.pop("target_modules", None)
                folder = staging / str(k)
                write_peft_adapter(folder / "adapter", weights, base_model_name_or_path, targets)
                if vectors is not None:
                    write_vectors(folder / "adapter" / VECTORS_FILE, *vectors)
                staged.append((name, folder, _fields(source=source, extra=meta, **_meta_fields(meta))))
            return self._commit_many(staged, base)

    def _checked_against(self, name: str, target: dict[str, Any]) -> Path:
        folder, entry = self._verified(name)
        _, tensor_shapes = read_adapter_folder(folder)
        reason = base_conflict(entry.get("base_model"), target)
        misfits = shape_misfits(adapter_tensor_shapes(tensor_shapes), target["module_shapes"])
        if reason or misfits:
            raise PersonalabError(
                f"adapter {name!r} was trained on {label(entry.get('base_model'))} and cannot be loaded into "
                f"{label(target)}: {reason or '; '.join(misfits)}"
            )
        return folder

    def export(self, name: str, out_dir: str | os.PathLike) -> Path:
        """Write adapter ``name`` as a plain PEFT folder ``out_dir`` (new or empty), loadable
        with ``PeftModel.from_pretrained(base, out_dir)`` (persona vectors stay out: see
        ``vectors_path``). Returns the folder."""
        folder, _ = self._verified(name)
        out = Path(out_dir)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise PersonalabError(f"{out} already exists and is not an empty folder; export into a new folder")
        with staging_folder(out.parent, prefix=f".{out.name}.") as staging:
            copy_adapter_files(folder, staging / "adapter", vectors=False)  # a server's plain PEFT folder
            move_folder_into_place(staging / "adapter", out)  # ``out`` is absent or empty
        return out


# --- helpers -----------------------------------------------------------------------------------


class _Held:
    """What a commit checks a new adapter against, indexed once per commit (a fleet shard
    commits many adapters into a bank of thousands): names without a key, kinds used with
    keys, and whose each folder is."""

    def __init__(self, adapters: dict[str, dict[str, Any]]):
        self.bare: set[str] = set()
        self.keyed_kinds: set[str] = set()
        self.folders: dict[str, str] = {}
        for name, entry in adapters.items():
            self.add(name, entry)

    def add(self, name: str, entry: dict[str, Any]) -> None:
        kind, key = split_name(name)
        if key:
            self.keyed_kinds.add(kind)
        else:
            self.bare.add(name)
        self.folders[entry["directory"]] = name


def _remove_if_empty(folder: Path, root: Path) -> None:
    """Remove the kind folder (``persona/``, ...) made for an adapter that is gone again."""
    if folder != root:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _base_of_peft_model(model: Any, adapter_name: str, revision: str | None) -> dict[str, Any]:
    if adapter_name not in getattr(model, "peft_config", {}):
        raise ValueError(f"the model has no PEFT adapter {adapter_name!r} to save")
    config = model.peft_config[adapter_name]
    plain = describe_model(model.get_base_model())
    base = describe_base(config.base_model_name_or_path or plain["name_or_path"],
                         revision or getattr(config, "revision", None), plain["model_type"])
    base["module_shapes"] = plain["module_shapes"]
    return base


def _save_with_peft(model: Any, adapter_name: str, folder: Path) -> Path:
    model.save_pretrained(str(folder), selected_adapters=[adapter_name], safe_serialization=True)
    # PEFT writes an adapter not named "default" into a subfolder named after it.
    return folder if (folder / WEIGHTS_FILE).exists() else folder / adapter_name


def _fields(*, extra: dict[str, Any], **fields: Any) -> dict[str, Any]:
    clashes = sorted(set(extra) & set(ENTRY_FIELDS))
    if clashes:
        raise ValueError(f"these manifest fields are set by the bank itself: {', '.join(clashes)}")
    return {**fields, **extra}


def _meta_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """Pop the standard fields (data, scores, config_hash) out of ``meta``, as ``save`` takes them."""
    return {key: meta.pop(key, None) for key in ("data", "scores", "config_hash")}


def _merged_base(bank_base: dict[str, Any] | None, base: dict[str, Any]) -> dict[str, Any]:
    """The bank's base, with what it did not know yet (e.g. module shapes) taken from ``base``."""
    known = {key: value for key, value in (bank_base or {}).items() if value}
    return {**base, **known}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    return str(value)
