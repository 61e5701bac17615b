"""Weight-space merges: an exact merge is ``sum_i w_i s_i B_i A_i``, an SVD merge reports the
error it really has, and a merged adapter writes as a valid PEFT adapter."""

from __future__ import annotations

import math

import pytest
import torch

from personalab.engine import (
    LoraWeights,
    merge_exact,
    merge_svd,
    pad_rank,
    read_adapter_config,
    read_peft_adapter,
    relative_errors,
    write_peft_adapter,
)

IN, OUT = 24, 16


def random_adapter(seed: int, rank: int, scale: float, modules=("q", "v")) -> dict[str, LoraWeights]:
    generator = torch.Generator().manual_seed(seed)
    return {
        m: LoraWeights(torch.randn(rank, IN, generator=generator), torch.randn(OUT, rank, generator=generator), scale)
        for m in modules
    }


def direct_sum(adapters, weights, module) -> torch.Tensor:
    """The reference, written out independently: sum of w * s * B @ A in float64."""
    total = torch.zeros(OUT, IN, dtype=torch.float64)
    for adapter, weight in zip(adapters, weights):
        if module in adapter:
            lora = adapter[module]
            total += weight * lora.scale * lora.B.double() @ lora.A.double()
    return total


@pytest.fixture
def mixed():
    """Different ranks and scales, a module only some adapters adapt, weights of every sign."""
    adapters = [
        random_adapter(0, 2, 2.0),
        random_adapter(1, 3, 0.5, modules=("q",)),
        random_adapter(2, 4, 1.3, modules=("q", "v", "o")),
        random_adapter(3, 1, 16 / math.sqrt(1)),
    ]
    return adapters, [0.7, -1.2, 0.0, 0.25]


def test_one_adapter_at_weight_one_is_that_adapter():
    adapter = random_adapter(5, 3, 2.0)
    merged = merge_exact([adapter], [1.0])
    for module, lora in adapter.items():
        assert merged[module].rank == 3 and merged[module].scale == 1.0
        torch.testing.assert_close(merged[module].delta(), lora.delta(), rtol=1e-6, atol=1e-6)
        assert torch.equal(merged[module].A, lora.A)  # A is carried over as it is


def test_exact_merge_is_the_weighted_sum_of_deltas(mixed):
    adapters, weights = mixed
    merged = merge_exact(adapters, weights)
    assert sorted(merged) == ["o", "q", "v"]
    assert merged["q"].rank == 2 + 3 + 4 + 1 and merged["v"].rank == 2 + 4 + 1 and merged["o"].rank == 4
    for module in merged:
        want = direct_sum(adapters, weights, module)
        torch.testing.assert_close(merged[module].delta().double(), want, rtol=1e-6, atol=1e-5)
    errors = relative_errors(merged, adapters, weights)
    assert errors["o"] == 0.0  # its only adapter has weight 0: the reference is zero
    assert max(errors.values()) < 1e-6


def test_relative_errors_see_a_wrong_merge(mixed):
    adapters, weights = mixed
    merged = merge_exact(adapters, weights)
    spoiled = dict(merged, q=LoraWeights(merged["q"].A, merged["q"].B, 1.01))
    errors = relative_errors(spoiled, adapters, weights)
    assert errors["q"] == pytest.approx(0.01, rel=1e-4)
    del spoiled["v"]
    assert relative_errors(spoiled, adapters, weights)["v"] == 1.0  # a missing module: all error


def test_svd_at_or_above_the_true_rank_is_exact(mixed):
    adapters, weights = mixed
    for rank in (7, 10, 40):  # q's sum has rank 2 + 3 + 1 (the weight-0 adapter adds nothing)
        merged, errors = merge_svd(adapters, weights, rank)
        assert {lora.rank for lora in merged.values()} == {rank} and max(errors.values()) < 1e-6
        assert max(relative_errors(merged, adapters, weights).values()) < 1e-5


@pytest.mark.parametrize("rank", [1, 2, 4])
def test_truncated_svd_reports_its_true_error(mixed, rank):
    adapters, weights = mixed
    merged, reported = merge_svd(adapters, weights, rank)
    measured = relative_errors(merged, adapters, weights)
    assert reported["q"] > 0.01 and (reported["v"] > 0.01 or rank >= 3)  # v's sum has rank 3
    for module in merged:
        assert reported[module] == pytest.approx(measured[module], abs=1e-5)
    # Eckart-Young: the error is what the discarded singular values say.
    singular = torch.linalg.svdvals(direct_sum(adapters, weights, "q"))
    want = math.sqrt(float((singular[rank:] ** 2).sum() / (singular**2).sum()))
    assert reported["q"] == pytest.approx(want, rel=1e-6)


def test_svd_takes_the_dense_path_when_the_rank_exceeds_the_layer(mixed):
    adapters, weights = mixed
    many = adapters + [random_adapter(10 + i, 4, 1.0) for i in range(5)]  # q: rank 30 > OUT
    merged, reported = merge_svd(many, weights + [0.1] * 5, 5)
    measured = relative_errors(merged, many, weights + [0.1] * 5)
    assert reported["q"] == pytest.approx(measured["q"], abs=1e-5) and reported["q"] > 0
    assert max(merge_svd(many, weights + [0.1] * 5, OUT)[1].values()) < 1e-6


def test_svd_is_deterministic_and_balanced(mixed):
    adapters, weights = mixed
    first, _ = merge_svd(adapters, weights, 3)
    second, _ = merge_svd(adapters, weights, 3)
    for module in first:
        assert torch.equal(first[module].A, second[module].A) and torch.equal(first[module].B, second[module].B)
    # sqrt of the singular values on each side: matching column / row norms.
    lora = first["q"]
    torch.testing.assert_close(lora.B.norm(dim=0), lora.A.norm(dim=1), rtol=1e-5, atol=1e-6)


def test_a_merged_adapter_writes_as_a_peft_adapter_with_the_same_delta(mixed, tmp_path):
    adapters, weights = mixed
    merged = merge_exact(adapters, weights)
    folder = write_peft_adapter(tmp_path / "merged", merged, "some/base")
    config = read_adapter_config(folder)
    # Ranks 10, 7 and 4: scale 1 is alpha == r, the modules that differ from r in the patterns.
    assert config["r"] == config["lora_alpha"] and not config["use_rslora"]
    assert len(config["rank_pattern"]) == 2 and config["alpha_pattern"] == config["rank_pattern"]
    back = read_peft_adapter(folder)
    for module, lora in merged.items():
        assert back[module].rank == lora.rank and back[module].scale == 1.0
        assert torch.equal(back[module].A, lora.A) and torch.equal(back[module].B, lora.B)
    padded = write_peft_adapter(tmp_path / "padded", pad_rank(merged), "some/base")
    config = read_adapter_config(padded)
    assert config["r"] == config["lora_alpha"] == 10 and not config["rank_pattern"]
    for module, lora in read_peft_adapter(padded).items():
        torch.testing.assert_close(lora.delta(), merged[module].delta(), rtol=0, atol=0)


def test_bad_inputs_are_refused_with_clear_messages():
    adapter = random_adapter(0, 2, 1.0)
    with pytest.raises(ValueError, match="at least one adapter"):
        merge_exact([], [])
    with pytest.raises(ValueError, match="2 adapters but 1 weights"):
        merge_exact([adapter, adapter], [1.0])
    with pytest.raises(ValueError, match="finite"):
        merge_exact([adapter], [float("nan")])
    other = {"q": LoraWeights(torch.ones(2, IN + 1), torch.ones(OUT, 2), 1.0)}
    with pytest.raises(ValueError, match=r"module 'q' has different shapes.*adapter 1: 16x25"):
        merge_exact([adapter, other], [1.0, 1.0])
    with pytest.raises(ValueError, match="rank >= 1"):
        merge_svd([adapter], [1.0], 0)
    with pytest.raises(ValueError, match="cannot pad down"):
        pad_rank(adapter, 1)
