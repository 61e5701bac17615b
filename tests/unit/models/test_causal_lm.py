"""The causal-LM backend: prompts, choice scores by log-likelihood, loss, generation."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model

from personalab.data.schema import Example
from personalab.errors import PersonalabError
from personalab.models import CausalLMBackend, ModelSpec
from personalab.models.decoding import GenerationSettings

CHOICES = ("no", "yes", "maybe not")  # "maybe not" is several tokens
PROFILES = {"ana": "a young teacher who likes jazz music", "bo": "an older farmer"}
ROWS = [
    Example("ana", "Is this comment rude?", "no", "train"),
    Example("bo", "The product arrived late and broken, so I want my money back.", "yes", "train"),
    Example("ana", "Is the weather cold?", "maybe not", "train", choices=("yes", "maybe not")),
]
SIX = GenerationSettings(max_new_tokens=6)


@pytest.fixture(scope="module", params=["chat", "plain"])
def backend(request, tiny_causal_lm_path, tiny_plain_causal_lm_path) -> CausalLMBackend:
    path = tiny_causal_lm_path if request.param == "chat" else tiny_plain_causal_lm_path
    return CausalLMBackend(ModelSpec(name=str(path), max_length=128), CHOICES, PROFILES)


def independent_logprob(model, prompt: list[int], continuation: list[int]) -> float:
    """Sum of log p(continuation | prompt) from one unbatched, unpadded forward pass."""
    ids = torch.tensor([prompt + continuation], device=model.device)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(logprobs[len(prompt) - 1 + j, token].item() for j, token in enumerate(continuation))


def test_a_choice_score_is_the_sum_of_its_token_logprobs(backend):
    scores = backend.scores(backend.model, ROWS)
    for i, row in enumerate(ROWS):
        for k, choice in enumerate(CHOICES):
            if row.choices is not None and choice not in row.choices:
                continue
            prompt, continuation = backend.prompt_ids(row), backend.continuation_ids(choice)
            expected = independent_logprob(backend.model, prompt, continuation)
            assert scores[i, k].item() == pytest.approx(expected, abs=1e-4), (i, choice)
    finite = scores[torch.isfinite(scores)]
    assert finite.max() - finite.min() > 0.5  # the comparison above is not vacuous


def test_choices_a_row_does_not_allow_score_minus_infinity(backend):
    scores = backend.scores(backend.model, ROWS)
    assert scores.shape == (len(ROWS), len(CHOICES))
    assert scores[2, CHOICES.index("no")] == float("-inf")
    assert torch.isfinite(scores[:2]).all() and torch.isfinite(scores[2, 1:]).all()


def test_batched_scores_equal_one_sequence_at_a_time(tiny_causal_lm_path):
    backend = CausalLMBackend(ModelSpec(name=str(tiny_causal_lm_path)), CHOICES, PROFILES)
    batched = backend.scores(backend.model, ROWS)
    backend.score_batch_size = 1
    assert torch.allclose(batched, backend.scores(backend.model, ROWS), atol=1e-4)


def test_scores_use_the_model_given_not_the_base(backend):
    targets = backend.target_modules(["query", "value"])
    # init_lora_weights=False draws B non-zero: a default LoRA starts as the identity.
    config = LoraConfig(r=2, target_modules=targets, init_lora_weights=False)
    adapted = get_peft_model(copy.deepcopy(backend.model), config)
    base_scores = backend.scores(backend.model, ROWS[:1])
    assert not torch.allclose(backend.scores(adapted, ROWS[:1]), base_scores)


def test_chat_prompt_has_the_profile_in_the_system_message_and_the_choices(tiny_causal_lm_path):
    backend = CausalLMBackend(ModelSpec(name=str(tiny_causal_lm_path)), CHOICES, PROFILES)
    assert backend.uses_chat_template
    assert backend.prompt_text(ROWS[2]) == (
        "<|im_start|>system\nAnswer as the person described below would.\n\n"
        "Persona: a young teacher who likes jazz music<|im_end|>\n"
        "<|im_start|>user\nIs the weather cold?\n\nAnswer with one of: yes, maybe not.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    im_end = backend.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert backend.continuation_ids("yes") == backend.tokenizer("yes")["input_ids"] + [im_end]


def test_plain_prompt_format(tiny_plain_causal_lm_path):
    backend = CausalLMBackend(ModelSpec(name=str(tiny_plain_causal_lm_path)), CHOICES, PROFILES)
    assert not backend.uses_chat_template
    assert backend.prompt_text(ROWS[0]) == (
        "Persona: a young teacher who likes jazz music\nInput: Is this comment rude?\n"
        "Choices: no, yes, maybe not\nAnswer:"
    )
    eos = backend.tokenizer.eos_token_id
    assert backend.continuation_ids("yes") == backend.tokenizer(" yes")["input_ids"] + [eos]
    assert backend.tokenizer.decode(backend.prompt_ids(ROWS[0])) == backend.prompt_text(ROWS[0])


def test_without_profile_and_without_label_set(tiny_plain_causal_lm_path, tiny_causal_lm_path):
    plain_spec = ModelSpec(name=str(tiny_plain_causal_lm_path), with_profile=False)
    plain = CausalLMBackend(plain_spec, (), PROFILES)
    assert plain.prompt_text(ROWS[0]) == "Input: Is this comment rude?\nAnswer:"
    chat = CausalLMBackend(ModelSpec(name=str(tiny_causal_lm_path), with_profile=False), (), {})
    text = chat.prompt_text(ROWS[0])
    assert "Persona" not in text and "Answer with one of" not in text


@pytest.mark.parametrize("limit", [10, 11])
def test_long_prompts_lose_their_middle_keeping_template_head_and_end(tiny_causal_lm_path, limit):
    full_backend = CausalLMBackend(ModelSpec(name=str(tiny_causal_lm_path)), CHOICES, PROFILES)
    full = full_backend.prompt_ids(ROWS[1])
    short_spec = ModelSpec(name=str(tiny_causal_lm_path), max_length=limit)
    short = CausalLMBackend(short_spec, CHOICES, PROFILES)
    assert len(full) > limit
    head = limit // 2
    assert short.prompt_ids(ROWS[1]) == full[:head] + full[-(limit - head):]
    # The system header opens the prompt still, and the assistant's turn still ends it.
    assert short.tokenizer.decode(short.prompt_ids(ROWS[1])).startswith("<|im_start|>sys")
    assert short.prompt_ids(ROWS[1])[-3:] == full[-3:]


def test_collate_left_pads_and_masks_prompt_and_padding_in_the_labels(backend):
    batch = backend.collate(ROWS)
    width = batch["input_ids"].shape[1]
    for i, row in enumerate(ROWS):
        prompt, target = backend.prompt_ids(row), backend.continuation_ids(row.output)
        length = len(prompt) + len(target)
        pad = width - length
        assert batch["input_ids"][i, pad:].tolist() == prompt + target
        assert batch["attention_mask"][i].tolist() == [0] * pad + [1] * length
        assert batch["position_ids"][i, pad:].tolist() == list(range(length))
        assert batch["labels"][i].tolist() == [-100] * (pad + len(prompt)) + target


def test_loss_is_the_mean_nll_of_the_target_tokens_only(backend):
    total, count = 0.0, 0
    for row in ROWS:
        target = backend.continuation_ids(row.output)
        total -= independent_logprob(backend.model, backend.prompt_ids(row), target)
        count += len(target)
    loss = backend.loss(backend.model, backend.collate(ROWS))
    assert loss.item() == pytest.approx(total / count, abs=1e-4)
    assert loss.requires_grad


def test_generate_is_greedy_deterministic_and_independent_of_batching(backend):
    answers = backend.generate(backend.model, ROWS, settings=SIX)
    assert len(answers) == len(ROWS) and all(isinstance(a, str) and a for a in answers)
    assert backend.generate(backend.model, ROWS, settings=SIX) == answers
    one_by_one = [backend.generate(backend.model, [row], settings=SIX)[0] for row in ROWS]
    assert one_by_one == answers


def test_generate_excludes_the_prompt(backend):
    answer = backend.generate(backend.model, ROWS[:1], settings=GenerationSettings(max_new_tokens=1))[0]
    prompt = backend.prompt_ids(ROWS[0])
    with torch.no_grad():
        ids = torch.tensor([prompt], device=backend.device)
        next_token = backend.model(input_ids=ids).logits[0, -1].argmax().item()
    assert answer == backend.tokenizer.decode([next_token], skip_special_tokens=True).strip()


def test_target_modules_are_the_llama_style_projections(backend):
    attention = backend.target_modules(["query", "key", "value", "output"])
    assert attention == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert backend.target_modules(["mlp_in", "mlp_out"]) == ["gate_proj", "up_proj", "down_proj"]
    assert backend.trainable_base_parameters() == []


def test_a_row_choice_outside_the_label_set_is_refused(backend):
    with pytest.raises(PersonalabError, match="sarcastic"):
        row = Example("ana", "x", "no", "train", choices=("no", "sarcastic"))
        backend.scores(backend.model, [row])


@pytest.mark.parametrize("attention", ["sdpa", "eager", "other"])
def test_packed_choices_score_like_one_sequence_per_choice(backend, attention, monkeypatch):
    """Choices sharing the prompt in one sequence (sdpa: boolean mask, eager: additive) give
    the scores of the plain one-sequence-per-choice path ("other" takes that path)."""
    assert backend._attention == "sdpa"  # the packed path is the one normally taken
    pairwise = torch.full((len(ROWS), len(CHOICES)), float("-inf"))
    backend._pairwise_scores(backend.model, ROWS, None, pairwise)
    monkeypatch.setattr(backend, "_attention", attention)
    if attention == "eager":
        monkeypatch.setattr(backend.model.config, "_attn_implementation", "eager")
    assert torch.allclose(backend.scores(backend.model, ROWS), pairwise, atol=1e-4)


def test_the_prompt_memo_is_bounded_and_starts_over_when_full(tiny_causal_lm_path, monkeypatch):
    """A long-lived server sees new inputs without end: the memo must not grow with them."""
    from personalab.models import causal_lm

    backend = CausalLMBackend(ModelSpec(name=str(tiny_causal_lm_path)), CHOICES, PROFILES)
    expected = [backend.prompt_ids(row) for row in ROWS]
    fresh = CausalLMBackend(ModelSpec(name=str(tiny_causal_lm_path)), CHOICES, PROFILES)
    monkeypatch.setattr(causal_lm, "PROMPT_CACHE_LIMIT", 2)
    assert [fresh.prompt_ids(row) for row in ROWS] == expected
    assert len(fresh._prompt_cache) <= 2
