"""The encoder-classifier backend: a sequence-classification head over an encoder such as
MiniLM, with the persona profile given as the first text of a text pair.

The head is created fresh (seeded) when the base model is loaded, trained together with the
first adapter, and from then on part of the frozen base; ``save_head`` / ``load_head`` carry it
from a run directory onto a freshly loaded base.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from safetensors.torch import load_file

from personalab.data.atomic import atomic_write_safetensors
from personalab.data.schema import Example
from personalab.errors import PersonalabError
from personalab.models.base import ModelSpec, route_id_tensor
from personalab.models.loading import ResolvedModel, batch_sizes, load_pretrained, load_tokenizer, resolve_model
from personalab.models.rows import (
    allowed_choice_mask,
    eval_mode,
    label_index,
    model_device,
    profile_of,
)
from personalab.models.targets import target_modules_for

HEAD_FILENAME = "classifier_head.safetensors"


class ClassifierBackend:
    """``scores`` are log-probabilities over the row's allowed choices (each row sums to 1)."""

    kind = "classifier"

    def __init__(
        self,
        spec: ModelSpec,
        choices: Sequence[str],
        profiles: Mapping[str, str],
        seed: int = 0,
        batch_size: int | None = None,  # rows per scoring pass; None: spec.score_batch_size or the device's
        resolved: ResolvedModel | None = None,
    ):
        if not choices:
            raise PersonalabError("a classifier needs a label set (the task's `choices`)")
        self.spec = spec
        self.choices = tuple(choices)
        self.profiles = dict(profiles)
        self.resolved = resolved or resolve_model(spec)
        self.tokenizer = load_tokenizer(self.resolved, spec)
        self.model = _load_with_seeded_head(self.resolved, spec, self.choices, self.tokenizer, seed)
        self.device = model_device(self.model)
        sizes = batch_sizes(spec, self.device)
        self.batch_size = batch_size or sizes.score
        self.train_batch_size = sizes.train

    def target_modules(self, roles: Sequence[str]) -> list[str]:
        return target_modules_for(self.model, roles)

    def trainable_base_parameters(self) -> list[str]:
        """The head's parameter names, relative to ``self.model``."""
        return head_parameter_names(self.model)

    def encode(self, rows: Sequence[Example]) -> dict[str, torch.Tensor]:
        """Padded model inputs (CPU tensors): ``(profile, input)`` pairs when the spec gives
        the model the profile (and the persona has one), else the input alone.

        Pairs are truncated ``longest_first``: a profile shorter than half of ``max_length``
        is kept whole and only the input is cut (as ``only_second`` would), while a longer
        profile is cut too instead of crowding out the input (where ``only_second`` fails).
        """
        padded = self.tokenizer.pad(self._features(rows), return_tensors="pt")
        return {k: v for k, v in padded.items() if k in self.tokenizer.model_input_names}

    def train_lengths(self, rows: Sequence[Example]) -> list[int]:
        """Tokens of each row's model input, after truncation: what a batch pads to."""
        return [len(feature["input_ids"]) for feature in self._features(rows)]

    def _features(self, rows: Sequence[Example]) -> list[dict]:
        """Each row's tokenized input (profile paired with it where given), unpadded."""
        profiles = [self._profile_for(row) for row in rows]
        paired = [i for i, profile in enumerate(profiles) if profile]
        alone = [i for i, profile in enumerate(profiles) if not profile]
        features: list[dict] = [{} for _ in rows]
        self._encode_into(
            features, paired, [profiles[i] for i in paired], [rows[i].input for i in paired]
        )
        self._encode_into(features, alone, [rows[i].input for i in alone])
        return features

    def collate(
        self, rows: Sequence[Example], route_ids: Sequence[int] | torch.Tensor | None = None,
        share_prefixes: bool = False,
    ) -> dict[str, torch.Tensor]:
        """The encoded rows, their label indices and route ids. ``share_prefixes`` is
        accepted and does nothing: an encoder's every token attends to the row's end."""
        batch = self.encode(rows)
        batch["labels"] = torch.tensor([label_index(row, self.choices) for row in rows])
        if route_ids is not None:
            batch["route_ids"] = route_id_tensor(route_ids, len(rows))
        return batch

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        sums, counts = self.loss_terms(model, batch)
        return sums.sum() / counts.sum()

    def loss_terms(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row: the cross-entropy, and a count of 1 (one prediction per row)."""
        logits = self._logits(model, batch)
        sums = F.cross_entropy(logits.float(), batch["labels"].to(logits.device), reduction="none")
        return sums, torch.ones_like(sums)

    def scores(
        self,
        model: torch.nn.Module,
        rows: Sequence[Example],
        route_ids: Sequence[int] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[len(rows), len(choices)]`` log-probabilities; a choice a row does not allow is
        -inf and the row's allowed choices share all the probability. ``route_ids``: one
        per row, passed on to the model (a multi-LoRA engine)."""
        if not rows:
            return torch.empty(0, len(self.choices))
        ids = None if route_ids is None else route_id_tensor(route_ids, len(rows))
        parts = []
        with eval_mode(model):
            for start in range(0, len(rows), self.batch_size):
                batch_rows = rows[start : start + self.batch_size]
                batch = self.encode(batch_rows)
                if ids is not None:
                    batch["route_ids"] = ids[start : start + self.batch_size]
                logits = self._logits(model, batch).float().cpu()
                allowed = allowed_choice_mask(batch_rows, self.choices)
                parts.append(F.log_softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1))
        return torch.cat(parts)

    def _logits(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        device = model_device(model)
        inputs = {k: batch[k].to(device) for k in self.tokenizer.model_input_names if k in batch}
        if "route_ids" in batch:  # stays on the CPU: the engine reads it on the host
            inputs["route_ids"] = batch["route_ids"]
        return model(**inputs).logits

    def _encode_into(self, features: list[dict], indices: list[int], *texts: list[str]) -> None:
        if not indices:
            return
        encoded = self.tokenizer(
            *texts, truncation="longest_first", max_length=self.spec.max_length
        )
        for position, i in enumerate(indices):
            features[i] = {key: values[position] for key, values in encoded.items()}

    def _profile_for(self, row: Example) -> str:
        return profile_of(row, self.profiles) if self.spec.with_profile else ""


def _load_with_seeded_head(
    resolved: ResolvedModel, spec: ModelSpec, choices: tuple[str, ...], tokenizer, seed: int
) -> torch.nn.Module:
    overrides = {
        "num_labels": len(choices),
        "id2label": dict(enumerate(choices)),
        "label2id": {c: i for i, c in enumerate(choices)},
    }
    if getattr(resolved.config, "pad_token_id", None) is None:
        # Decoder-style classifiers find each row's last token through the pad id.
        overrides["pad_token_id"] = tokenizer.pad_token_id
    # The new head is drawn from torch's global generator: seed it, without disturbing the
    # caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = load_pretrained(
            transformers.AutoModelForSequenceClassification,
            resolved,
            spec,
            new_weights=head_parameter_names,
            **overrides,
        )
    return head_in_float32(model)


def head_in_float32(model: torch.nn.Module) -> torch.nn.Module:
    """A 16-bit model's head made float32, its inputs cast up to it: the head trains with the
    first adapter, and 16-bit weights would round away its small updates (and optimizer
    state kept in 16 bits). It is a few thousand parameters, so the cost is nil."""
    if not any(p.dtype in (torch.float16, torch.bfloat16) for p in model.parameters()):
        return model
    for name in _head_module_names(model):
        module = model.get_submodule(name)
        module.float()
        module.register_forward_pre_hook(_inputs_to_float32)
    return model


def _head_module_names(model: torch.nn.Module) -> list[str]:
    """The top-level modules the head parameters live in (``classifier``, ``score``, ...)."""
    return sorted({name.split(".")[0] for name in head_parameter_names(model)})


def _inputs_to_float32(module: torch.nn.Module, args: tuple) -> tuple:
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def head_parameter_names(model: torch.nn.Module) -> list[str]:
    """Parameters outside the encoder (``classifier.*``, ``pre_classifier.*``, ``score.*``)."""
    model = _unwrap(model)
    encoder_prefix = model.base_model_prefix + "."
    names = [name for name, _ in model.named_parameters() if not name.startswith(encoder_prefix)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no classification head parameters")
    return names


def save_head(model: torch.nn.Module, path: str | Path) -> None:
    """Write the head's parameters (and the label order they score) to a safetensors file,
    atomically."""
    model = _unwrap(model)
    parameters = dict(model.named_parameters())
    tensors = {n: parameters[n].detach().cpu().contiguous() for n in head_parameter_names(model)}
    atomic_write_safetensors(path, tensors, metadata={"labels": json.dumps(_labels_of(model))})


def load_head(model: torch.nn.Module, path: str | Path) -> None:
    """Copy a saved head onto ``model`` (a fresh base with the same label set)."""
    model = _unwrap(model)
    with safe_open(str(path), framework="pt") as handle:
        saved_labels = (handle.metadata() or {}).get("labels")
    if saved_labels is not None and json.loads(saved_labels) != _labels_of(model):
        raise PersonalabError(
            f"the classifier head in {path} was trained for labels {json.loads(saved_labels)}, "
            f"not {_labels_of(model)}"
        )
    tensors = load_file(str(path))
    parameters = dict(model.named_parameters())
    expected = set(head_parameter_names(model))
    if set(tensors) != expected:
        raise PersonalabError(f"{path} holds {sorted(tensors)}, expected head {sorted(expected)}")
    with torch.no_grad():
        for name, tensor in tensors.items():
            parameters[name].copy_(tensor)


def _labels_of(model: torch.nn.Module) -> list[str]:
    id2label = model.config.id2label
    return [id2label[i] for i in range(len(id2label))]


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    # A PEFT model shares its parameters with the base model it wraps.
    return model.get_base_model() if hasattr(model, "get_base_model") else model
