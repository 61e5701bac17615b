"""The causal-LM backend: persona prompts, answer continuations, and how choices are scored.

Prompt format. With a chat template: a system message (an instruction, plus the persona
profile when the spec gives it) and a user message (the input, plus "Answer with one of: a, b."
when there is a label set), rendered with the generation prompt; the target is the output
followed by the eos token. Without a chat template: ``Persona: ...\\nInput: ...\\n[Choices:
a, b\\n]Answer:`` and the target `` <output>`` (with a leading space) followed by eos. A prompt
longer than ``spec.max_length`` tokens loses its middle: the first half of the budget keeps the
template's head (the instruction and the persona profile), the second half the prompt's end
(the end of the input, the choices and the assistant's turn), as long-context evaluations cut
prompts (LongBench, Bai et al. 2023). Cutting from the left instead would drop the chat
template's system header and the persona's identity first.

A closed label set is scored by log-likelihood: a choice's score is the sum of the
log-probabilities of its continuation tokens (choice tokens and eos) given the prompt. Open
outputs are generated from the same prompts (``personalab.models.decoding``), each row through
its own route, or through an output-space mixture of several routes.
"""

from __future__ import annotations

import inspect

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
import transformers
from jinja2.exceptions import TemplateError

from personalab.data.schema import Example
from personalab.engine.checkpointing import is_checkpointing
from personalab.engine.ensemble import Space
from personalab.models.base import ModelSpec, route_id_tensor
from personalab.models.decoding import GenerationSettings, decode
from personalab.models.loading import ResolvedModel, batch_sizes, load_pretrained, load_tokenizer, resolve_model
from personalab.models.packed_choices import PACKABLE, packed_choice_logprobs
from personalab.models.rows import allowed_choices, chunks, eval_mode, model_device, pad_sequences, profile_of
from personalab.models.shared_prefix import is_split, shared_prefix_batch, suffix_logits
from personalab.models.targets import target_modules_for

IGNORE_INDEX = -100  # label value the loss skips (PyTorch / transformers convention)
PERSONA_INSTRUCTION = "Answer as the person described below would.\n\nPersona: {profile}"
PLAIN_INSTRUCTION = "Answer the user's input."
# Prompts memoized at most: far more than a dataset's rows times its epochs need, and a bound
# for a long-lived server (personalab serve), which sees new inputs without end.
PROMPT_CACHE_LIMIT = 200_000


class CausalLMBackend:
    """``scores`` are summed continuation log-probabilities (not normalised over choices)."""

    kind = "causal_lm"

    def __init__(
        self,
        spec: ModelSpec,
        choices: Sequence[str],
        profiles: Mapping[str, str],
        batch_size: int = 16,  # sequences per forward pass: rows x allowed choices
        score_batch_size: int | None = None,  # sequences per scoring pass; None: spec.score_batch_size or the device's
        generate_batch_size: int = 64,  # rows per batch when generating (times an ensemble's members)
        resolved: ResolvedModel | None = None,
    ):
        self.spec = spec
        self.choices = tuple(choices)
        self.profiles = dict(profiles)
        self.batch_size = batch_size
        self.generate_batch_size = generate_batch_size
        self.resolved = resolved or resolve_model(spec)
        self.tokenizer = load_tokenizer(self.resolved, spec)
        self.model = load_pretrained(transformers.AutoModelForCausalLM, self.resolved, spec)
        self.device = model_device(self.model)
        sizes = batch_sizes(spec, self.device)
        self.score_batch_size = score_batch_size or sizes.score
        self.train_batch_size = sizes.train
        self.uses_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        parameters = inspect.signature(self.model.forward).parameters
        self._keeps_logits = "logits_to_keep" in parameters
        self._cache_keyword = "cache" if "cache" in parameters else "past_key_values"
        self._attention = getattr(self.model.config, "_attn_implementation", None)
        self._prompt_cache: dict[tuple, tuple[int, ...]] = {}
        self._continuation_cache: dict[str, tuple[int, ...]] = {}
        self._continuations = {choice: self.continuation_ids(choice) for choice in self.choices}

    def target_modules(self, roles: Sequence[str]) -> list[str]:
        return target_modules_for(self.model, roles)

    def trainable_base_parameters(self) -> list[str]:
        return []  # a causal LM already has its output head

    # --- prompts and targets ------------------------------------------------------------

    def prompt_text(self, row: Example) -> str:
        profile = profile_of(row, self.profiles) if self.spec.with_profile else ""
        options = allowed_choices(row, self.choices)
        if self.uses_chat_template:
            return self._chat_prompt(row.input, profile, options)
        lines = [f"Persona: {profile}"] if profile else []
        lines.append(f"Input: {row.input}")
        if options:
            lines.append(f"Choices: {', '.join(options)}")
        return "\n".join(lines) + "\nAnswer:"

    def prompt_ids(self, row: Example) -> list[int]:
        """The row's prompt tokens; memoized, because training and scoring ask for the same
        rows every epoch and tokenizing was a tenth of a fleet step on small models."""
        key = (row.persona_id, row.input, row.choices)
        if key not in self._prompt_cache:
            if len(self._prompt_cache) >= PROMPT_CACHE_LIMIT:
                self._prompt_cache.clear()  # start over rather than grow without bound
            self._prompt_cache[key] = self._tokenize_prompt(row)
        return list(self._prompt_cache[key])

    def _tokenize_prompt(self, row: Example) -> tuple[int, ...]:
        text = self.prompt_text(row)
        if self.uses_chat_template:  # the template writes any special tokens itself
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        else:  # the tokenizer's own convention: a BOS for Llama-like models, nothing for Qwen
            ids = self.tokenizer(text)["input_ids"]
            if ids and ids[-1] == self.tokenizer.eos_token_id:
                ids = ids[:-1]  # a prompt is not a finished sequence
        return tuple(keep_ends(ids, self.spec.max_length))

    def continuation_ids(self, output: str) -> list[int]:
        if output not in self._continuation_cache:
            if len(self._continuation_cache) >= PROMPT_CACHE_LIMIT:
                self._continuation_cache.clear()
            self._continuation_cache[output] = tuple(self._tokenize_continuation(output))
        return list(self._continuation_cache[output])

    def _tokenize_continuation(self, output: str) -> list[int]:
        text = output if self.uses_chat_template else " " + output
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids + [self.tokenizer.eos_token_id]

    def _chat_prompt(self, text: str, profile: str, options: Sequence[str]) -> str:
        system = PERSONA_INSTRUCTION.format(profile=profile) if profile else PLAIN_INSTRUCTION
        user = text + (f"\n\nAnswer with one of: {', '.join(options)}." if options else "")
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        try:
            return self._render(messages)
        except TemplateError:  # some templates (e.g. Gemma's) reject a system role
            return self._render([{"role": "user", "content": f"{system}\n\n{user}"}])

    def _render(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    # --- training -----------------------------------------------------------------------

    def collate(
        self, rows: Sequence[Example], route_ids: Sequence[int] | torch.Tensor | None = None,
        share_prefixes: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Prompt + target per row, left-padded so that every target ends the sequence;
        ``labels`` are -100 on prompt and padding; ``position_ids`` count from each row's
        first real token; ``route_ids`` (one per row) are kept for a multi-LoRA engine. With
        ``share_prefixes`` (and ``route_ids``) the rows of a route run their common beginning
        once, when every route's rows have one (``personalab.models.shared_prefix``)."""
        prompts = [self.prompt_ids(row) for row in rows]
        targets = [self.continuation_ids(row.output) for row in rows]
        sequences = [p + t for p, t in zip(prompts, targets)]
        labels = [[IGNORE_INDEX] * len(p) + t for p, t in zip(prompts, targets)]
        target_length = torch.tensor(max(len(t) for t in targets))
        if share_prefixes and route_ids is not None and self._shares_prefixes():
            ids = route_id_tensor(route_ids, len(rows)).tolist()
            batch = shared_prefix_batch(sequences, labels, [len(p) for p in prompts], ids,
                                        self.tokenizer.pad_token_id, IGNORE_INDEX)
            if batch is not None:
                return {**batch, "target_length": target_length}
        input_ids, attention_mask = pad_sequences(sequences, self.tokenizer.pad_token_id, "left")
        labels_tensor, _ = pad_sequences(labels, IGNORE_INDEX, "left")
        batch = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "position_ids": (attention_mask.cumsum(dim=1) - 1).clamp(min=0),
                 "labels": labels_tensor, "target_length": target_length}
        if route_ids is not None:
            batch["route_ids"] = route_id_tensor(route_ids, len(rows))
        return batch

    def _shares_prefixes(self) -> bool:
        # The suffix pass keeps only the last logits, and needs the prefix's cache, which a
        # checkpointed model does not keep in training.
        return self._keeps_logits and not is_checkpointing(self.model)

    def train_lengths(self, rows: Sequence[Example]) -> list[int]:
        """Tokens of each row's training sequence (prompt and target): what a batch pads to."""
        return [len(self.prompt_ids(row)) + len(self.continuation_ids(row.output)) for row in rows]

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean next-token NLL over all target tokens of the batch."""
        sums, counts = self.loss_terms(model, batch)
        return sums.sum() / counts.sum()

    def loss_terms(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row: the summed NLL of its target tokens, and how many target tokens it has.
        Targets end every (left-padded) sequence, so only the last positions' logits are
        computed when the model allows it: the vocabulary projection and its softmax over
        every prompt position were about half of a small model's training step."""
        device = model_device(model)
        keep = {"logits_to_keep": int(batch["target_length"]) + 1} if self._keeps_logits else {}
        if is_split(batch):
            logits = suffix_logits(model, batch, device, self._cache_keyword, keep)
        else:
            logits = model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                position_ids=batch["position_ids"].to(device),
                **keep,
                **_route_kwargs(batch.get("route_ids")),
            ).logits
        predicted = logits[:, :-1].float()  # position t predicts token t + 1
        targets = batch["labels"][:, -predicted.shape[1]:].to(device)
        token_nll = F.cross_entropy(
            predicted.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
        )
        return token_nll.sum(dim=1), (targets != IGNORE_INDEX).sum(dim=1).float()

    # --- scoring and generation ---------------------------------------------------------

    def scores(
        self,
        model: torch.nn.Module,
        rows: Sequence[Example],
        route_ids: Sequence[int] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[len(rows), len(choices)]``; -inf where a row does not allow the choice. With
        ``route_ids`` (one per row) each row is routed by its id. A row's choices share one
        pass over its prompt (``packed_choices``) when the attention takes a custom mask;
        otherwise each (row, choice) pair is its own sequence."""
        ids = None if route_ids is None else route_id_tensor(route_ids, len(rows))
        scores = torch.full((len(rows), len(self.choices)), float("-inf"))
        with eval_mode(model):
            if self._attention in PACKABLE:
                self._packed_scores(model, rows, ids, scores)
            else:
                self._pairwise_scores(model, rows, ids, scores)
        return scores

    def _packed_scores(self, model, rows, ids, scores) -> None:
        for part in chunks(list(range(len(rows))), self.score_batch_size):
            allowed = [[self.choices.index(c) for c in allowed_choices(rows[i], self.choices)] for i in part]
            sums = packed_choice_logprobs(
                model, [self.prompt_ids(rows[i]) for i in part],
                [[self._continuations[self.choices[k]] for k in ks] for ks in allowed],
                self.tokenizer.pad_token_id, additive_mask=self._attention == "eager",
                route_ids=None if ids is None else ids[part], keep_logits=self._keeps_logits,
            )
            for i, ks, row_sums in zip(part, allowed, sums):
                scores[i, ks] = row_sums

    def _pairwise_scores(self, model, rows, ids, scores) -> None:
        prompts = [self.prompt_ids(row) for row in rows]
        pairs = [(i, self.choices.index(c)) for i, row in enumerate(rows) for c in allowed_choices(row, self.choices)]
        for batch in chunks(pairs, self.score_batch_size):
            continuations = [self._continuations[self.choices[k]] for _, k in batch]
            batch_ids = None if ids is None else ids[[i for i, _ in batch]]
            sums = continuation_logprobs(
                model, [prompts[i] for i, _ in batch], continuations, self.tokenizer.pad_token_id, batch_ids,
                keep_logits=self._keeps_logits,
            )
            scores[[i for i, _ in batch], [k for _, k in batch]] = sums.cpu()

    def generate(
        self,
        model: torch.nn.Module,
        rows: Sequence[Example],
        route_ids: Sequence[int] | torch.Tensor | None = None,
        settings: GenerationSettings | None = None,
    ) -> list[str]:
        """One answer per row (prompt excluded, special tokens dropped, stripped); with
        ``route_ids`` (one per row) each row is generated through its own route."""
        ids = None if route_ids is None else [route_id_tensor(route_ids, len(rows)).tolist()]
        return self.generate_mixture(model, [rows], ids, (1.0,), settings=settings)

    def generate_mixture(
        self,
        model: torch.nn.Module,
        members: Sequence[Sequence[Example]],
        route_ids: Sequence[Sequence[int]] | None,
        weights: Sequence[float],
        space: Space = "logprob",
        settings: GenerationSettings | None = None,
    ) -> list[str]:
        """One answer per row of an output-space ensemble: ``members[j]`` holds the rows as
        member ``j`` gives them to the model (same personas, same order), ``route_ids[j]``
        their route ids; at every step the members' next-token distributions are mixed with
        ``weights`` in ``space`` (``personalab.models.decoding``). ``generate_batch_size``
        rows (times the members) per batch; sampling draws from one generator per call."""
        settings = settings or GenerationSettings()
        if len(members) != len(weights) or len({len(m) for m in members}) != 1:
            raise ValueError(f"need one weight per member and members of equal length, got {len(weights)} "
                             f"weights and members of {[len(m) for m in members]} rows")
        generator = torch.Generator(model_device(model)).manual_seed(settings.seed) if settings.sample else None
        answers: list[str] = []
        with eval_mode(model):
            for part in chunks(range(len(members[0])), self.generate_batch_size):
                prompts = [self.prompt_ids(member[i]) for member in members for i in part]
                ids = None if route_ids is None else torch.tensor([r[i] for r in route_ids for i in part])
                tokens = decode(model, prompts, pad_token_id=self.tokenizer.pad_token_id, stop_ids=self.stop_ids,
                                settings=settings, route_ids=ids, weights=weights, space=space,
                                generator=generator, keep_logits=self._keeps_logits,
                                cache_keyword=self._cache_keyword)
                answers += [text.strip() for text in self.tokenizer.batch_decode(tokens, skip_special_tokens=True)]
        return answers

    @property
    def stop_ids(self) -> list[int]:
        # The tokenizer's eos ends every training target; a chat model's generation config may
        # name more (Qwen2.5's <|im_end|> and <|endoftext|>): any of them ends an answer.
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        extra = configured if isinstance(configured, list) else [configured]
        return sorted({self.tokenizer.eos_token_id, *(i for i in extra if i is not None)})


def continuation_logprobs(
    model: torch.nn.Module,
    prompts: Sequence[list[int]],
    continuations: Sequence[list[int]],
    pad_token_id: int,
    route_ids: torch.Tensor | None = None,
    keep_logits: bool = False,
) -> torch.Tensor:
    """``[len(prompts)]`` sums of log p(continuation tokens | prompt), one forward pass over
    the left-padded ``prompt + continuation`` sequences (routed by ``route_ids``, one per
    sequence, when given). Left padding puts every continuation at the end, so with
    ``keep_logits`` the model computes logits for the last few positions only (transformers'
    ``logits_to_keep``) instead of a ``[length, vocab]`` matrix per sequence; positions are
    counted from each sequence's first real token, so padding changes nothing."""
    device = model_device(model)
    input_ids, attention_mask = pad_sequences(
        [p + c for p, c in zip(prompts, continuations)], pad_token_id, "left"
    )
    longest = max(len(c) for c in continuations)
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    extra = {"logits_to_keep": longest + 1} if keep_logits else {}
    logits = model(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        position_ids=position_ids.to(device),
        **extra,
        **_route_kwargs(route_ids),
    ).logits
    # The token at position t is predicted by the logits at t - 1; the continuation of
    # length L occupies the last L positions.
    offsets = torch.arange(longest)
    lengths = torch.tensor([len(c) for c in continuations])
    valid = offsets[None, :] < lengths[:, None]
    positions = (logits.shape[1] - 1 - lengths)[:, None] + offsets[None, :]
    positions = positions.clamp(min=0, max=logits.shape[1] - 1).to(device)
    targets, _ = pad_sequences(list(continuations), 0, "right")
    # Gather the needed positions before log_softmax: a full [batch, length, vocab]
    # log_softmax would double the largest tensor of the pass for large vocabularies.
    picked = logits.gather(1, positions[:, :, None].expand(-1, -1, logits.shape[-1]))
    logprobs = F.log_softmax(picked.float(), dim=-1)
    token_logprobs = logprobs.gather(-1, targets[:, :longest, None].to(device)).squeeze(-1)
    return token_logprobs.masked_fill(~valid.to(device), 0.0).sum(dim=-1)


def keep_ends(ids: Sequence[int], limit: int) -> list[int]:
    """``ids`` when they fit ``limit``; else their first ``limit // 2`` and last
    ``limit - limit // 2`` tokens."""
    if len(ids) <= limit:
        return list(ids)
    head = limit // 2
    return list(ids[:head]) + list(ids[len(ids) - (limit - head):])


def _route_kwargs(route_ids: torch.Tensor | None) -> dict[str, torch.Tensor]:
    # Only a multi-LoRA engine takes ``route_ids``: a plain or PEFT model gets no such keyword.
    return {} if route_ids is None else {"route_ids": route_ids}
