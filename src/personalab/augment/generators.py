"""Text generators behind the model-based augmenters: a local causal LM that completes
prompts, and a local sequence-to-sequence model (a translation model) that maps texts.

A generator is anything with ``generate(texts, seeds) -> list[str]``, so a strategy can plug
in its own (a served model, a fake in tests). The two here load through
``personalab.models.loading``: a local folder only, safetensors only, no model code from the
folder, nothing downloaded. Decoding is greedy by default (deterministic, batched); with
``sample=True`` each text is generated alone under its own seed, so its output does not depend
on which other texts share its batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

from personalab.errors import PersonalabError

# torch, transformers and personalab.models are imported where a model is loaded or run, so
# that the word-level augmenters (and ``import personalab.augment``) stay light.


class TextGenerator(Protocol):
    def generate(self, texts: Sequence[str], seeds: Sequence[int]) -> list[str]:
        """One output per text (prompt excluded, special tokens dropped, stripped)."""


class PromptedGenerator(TextGenerator, Protocol):
    """A generator that also knows how to phrase a request to its model."""

    def chat_prompt(self, instruction: str, text: str) -> str:
        """The prompt asking the model to apply ``instruction`` to ``text``."""


@dataclass
class DecodeSettings:
    max_new_tokens: int = 64
    """Tokens generated per text at most."""
    batch_size: int = 16
    """Texts per ``generate`` call when decoding greedily."""
    sample: bool = False
    """Sample (one text at a time, seeded per row) instead of greedy decoding."""
    temperature: float = 0.8
    """Sampling temperature (only with ``sample``)."""
    top_p: float = 0.95
    """Nucleus sampling mass (only with ``sample``)."""


def load_local(path: str | Path, auto_class_name: str, device: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) from a local model folder with personalab's loading rules;
    ``auto_class_name`` is a transformers auto class, e.g. ``AutoModelForCausalLM``."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise PersonalabError(
            f"generator model {path} is not a local folder; augmentation models load from "
            "local folders only (download one yourself, e.g. with `hf download`)"
        )
    import transformers

    from personalab.models.base import ModelSpec
    from personalab.models.loading import load_pretrained, load_tokenizer, resolve_model

    spec = ModelSpec(name=str(folder), device=device)
    resolved = resolve_model(spec)
    model = load_pretrained(getattr(transformers, auto_class_name), resolved, spec)
    tokenizer = load_tokenizer(resolved, spec)
    return model, tokenizer


@dataclass
class CausalLMGenerator:
    """Completes each text as a prompt with a causal LM. ``generate`` takes finished prompts;
    ``chat_prompt`` builds one from an instruction in the tokenizer's chat format."""

    path: str | Path
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    device: str = "auto"

    def __post_init__(self) -> None:
        self.model, self.tokenizer = load_local(self.path, "AutoModelForCausalLM", self.device)
        self.tokenizer.padding_side = "left"  # generation continues after the last real token

    def chat_prompt(self, instruction: str, text: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": f"{instruction}\n\n{text}"}]
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        return f"{instruction}\n\nSentence: {text}\nRewritten:"

    def generate(self, texts: Sequence[str], seeds: Sequence[int]) -> list[str]:
        # The chat template already holds the special tokens; do not add a second BOS.
        encode = {"add_special_tokens": not getattr(self.tokenizer, "chat_template", None)}
        return _generate(self.model, self.tokenizer, texts, seeds, self.decode, encode, True)


@dataclass
class Seq2SeqGenerator:
    """Maps each text with an encoder-decoder model, e.g. a MarianMT translation model."""

    path: str | Path
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    device: str = "auto"

    def __post_init__(self) -> None:
        self.model, self.tokenizer = load_local(self.path, "AutoModelForSeq2SeqLM", self.device)

    def generate(self, texts: Sequence[str], seeds: Sequence[int]) -> list[str]:
        return _generate(self.model, self.tokenizer, texts, seeds, self.decode, {}, False)


def _generate(
    model, tokenizer, texts, seeds, decode: DecodeSettings, encode: dict, strip_prompt: bool
) -> list[str]:
    if decode.sample:  # one at a time: a row's sample must not depend on its batch
        return [
            _generate_batch(model, tokenizer, [text], decode, encode, strip_prompt, seed)[0]
            for text, seed in zip(texts, seeds)
        ]
    outputs: list[str] = []
    for start in range(0, len(texts), decode.batch_size):
        batch = list(texts[start : start + decode.batch_size])
        outputs += _generate_batch(model, tokenizer, batch, decode, encode, strip_prompt, None)
    return outputs


def _generate_batch(model, tokenizer, texts, decode, encode, strip_prompt, seed) -> list[str]:
    import torch

    inputs = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, **encode)
    inputs = {key: value.to(model.device) for key, value in inputs.items()}
    options: dict[str, Any] = {"do_sample": False}
    if decode.sample:
        options = {"do_sample": True, "temperature": decode.temperature, "top_p": decode.top_p}
    # fork_rng: seeding the sampler must not disturb the caller's random streams.
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.inference_mode():
        if seed is not None:
            torch.manual_seed(seed)
        generated = model.generate(
            **inputs,
            max_new_tokens=decode.max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            **options,
        )
    if strip_prompt:  # a causal LM returns prompt + continuation
        generated = generated[:, inputs["input_ids"].shape[1] :]
    decoded = tokenizer.batch_decode(generated, skip_special_tokens=True)
    return [text.strip() for text in decoded]
