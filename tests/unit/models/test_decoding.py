"""The decoding loop: stopping at end of sequence, seeded sampling, and output-space mixtures
of several members' next-token distributions (token identity with transformers' greedy
``generate`` is tested through the engine in ``tests/unit/engine/test_model.py``)."""

from __future__ import annotations

import pytest
import torch

from personalab.data.schema import Example
from personalab.engine import mix_scores
from personalab.models import CausalLMBackend, ModelSpec
from personalab.models.decoding import GenerationSettings, decode

PROFILES = {"ana": "a young teacher who likes jazz music", "bo": "an older farmer"}
ROWS = [
    Example("ana", "Please send me the report by Friday.", "", "test"),
    Example("bo", "Fix the bug now", "", "test"),
    Example("ana", "Could we meet tomorrow morning to talk about the new policy?", "", "test"),
]
EIGHT = GenerationSettings(max_new_tokens=8)


@pytest.fixture(scope="module")
def backend(tiny_causal_lm_path) -> CausalLMBackend:
    return CausalLMBackend(ModelSpec(name=str(tiny_causal_lm_path)), (), PROFILES)


def tokens(backend, prompts, settings=EIGHT, stop_ids=None, **kwargs) -> list[list[int]]:
    with torch.inference_mode():
        return decode(backend.model, prompts, pad_token_id=backend.tokenizer.pad_token_id,
                      stop_ids=backend.stop_ids if stop_ids is None else stop_ids, settings=settings,
                      cache_keyword=backend._cache_keyword, **kwargs)


def prompts(backend, rows=ROWS) -> list[list[int]]:
    return [backend.prompt_ids(row) for row in rows]


def test_a_row_stops_at_its_first_stop_token_and_the_others_go_on(backend):
    free = tokens(backend, prompts(backend), stop_ids=[-1])
    assert all(len(row) == EIGHT.max_new_tokens for row in free)
    cut = next(j for j in range(1, 8) if free[0][j] not in free[0][:j])  # a token new at position j
    stopped = tokens(backend, prompts(backend), stop_ids=[free[0][cut]])
    assert stopped[0] == free[0][:cut]
    for row, other in zip(stopped[1:], free[1:]):  # the stop token may end them too, never earlier
        assert row == other[:len(row)] and (len(row) == 8 or other[len(row)] == free[0][cut])


def test_sampling_is_reproducible_by_seed_and_greedy_at_a_tiny_temperature(backend):
    def sampled(seed, temperature=5.0):
        settings = GenerationSettings(max_new_tokens=8, sample=True, temperature=temperature, seed=seed)
        return backend.generate(backend.model, ROWS, settings=settings)

    assert sampled(1) == sampled(1)
    assert sampled(1) != sampled(2)
    assert sampled(1, temperature=1e-4) == backend.generate(backend.model, ROWS, settings=EIGHT)


def test_a_member_of_weight_one_beside_weight_zero_reproduces_its_own_output(backend):
    alone = tokens(backend, prompts(backend))
    reversed_rows = prompts(backend, ROWS[::-1])
    mixed = tokens(backend, prompts(backend) + reversed_rows, weights=(1.0, 0.0))
    assert mixed == alone


@pytest.mark.parametrize("space", ["logprob", "prob"])
def test_each_step_takes_the_argmax_of_the_mixed_distributions(backend, space):
    """The first token of a 0.6/0.4 mixture of two prompts is the argmax of the mixture of
    their next-token distributions, computed here from two separate forward passes."""
    first, second = prompts(backend, ROWS[:1]), prompts(backend, ROWS[1:2])
    with torch.inference_mode():
        logprobs = [torch.log_softmax(backend.model(input_ids=torch.tensor(p)).logits[0, -1].float(), -1)
                    for p in (first, second)]
    want = mix_scores(logprobs, [0.6, 0.4], space).argmax().item()
    got = tokens(backend, first + second, settings=GenerationSettings(max_new_tokens=1), stop_ids=[-1],
                 weights=(0.6, 0.4), space=space)
    assert got == [[want]]
    assert want != logprobs[0].argmax().item() or want != logprobs[1].argmax().item()  # a real mix


def test_generate_mixture_checks_its_members(backend):
    with pytest.raises(ValueError, match="one weight per member"):
        backend.generate_mixture(backend.model, [ROWS, ROWS[:2]], None, (0.5, 0.5))


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationSettings(max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        GenerationSettings(temperature=0.0)
