"""Merged adapters in the bank: a materialized merge routes exactly like the weight-space
mixture it replaces, its manifest says how it was made, and PEFT's combination types do what
the module docstring says (cat is the exact sum, linear is not)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from peft.tuners.lora import LoraLayer

from personalab.bank import AdapterBank
from personalab.bank.merge import LINEAR_WARNING, materialize, peft_combination
from personalab.engine import LoraWeights, Route, read_peft_adapter, relative_errors
from personalab.models import ModelSpec, build_backend

SOURCES = {  # name -> (rank, scale, roles); persona/c adapts value only
    "persona/a": (2, 2.0, ("query", "value")),
    "persona/b": (2, 1.5, ("query", "value")),
    "persona/c": (2, 2.0, ("value",)),
}
WEIGHTS = [0.6, -0.3, 0.9]


@pytest.fixture(scope="module")
def base(tiny_classifier_path) -> torch.nn.Module:
    return build_backend(ModelSpec(name="tiny-classifier"), ("bad", "good"), {}).model


@pytest.fixture(scope="module")
def inputs(base) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(5, base.config.vocab_size, (4, 9), generator=generator)


def random_weights(base, rank, scale, roles, seed) -> dict[str, LoraWeights]:
    """Non-zero A and B (a default LoRA's B = 0 would hide every mistake)."""
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for path, module in base.named_modules():
        if path.rsplit(".", 1)[-1] in roles and isinstance(module, torch.nn.Linear):
            a = torch.randn(rank, module.in_features, generator=generator) * 0.3
            b = torch.randn(module.out_features, rank, generator=generator) * 0.3
            weights[path] = LoraWeights(a, b, scale)
    return weights


@pytest.fixture
def bank(tmp_path, base, tiny_classifier_path) -> AdapterBank:
    bank = AdapterBank(tmp_path / "bank")
    for seed, (name, (rank, scale, roles)) in enumerate(SOURCES.items()):
        bank.save_weights(name, random_weights(base, rank, scale, roles, seed), str(tiny_classifier_path))
    return bank


def routed_logits(engine, inputs: torch.Tensor, route: int) -> torch.Tensor:
    ids = torch.full((inputs.shape[0],), route)
    with torch.no_grad():
        return engine(input_ids=inputs, attention_mask=torch.ones_like(inputs), route_ids=ids).logits


def outputs_by_route(bank, base, inputs, routes) -> list[torch.Tensor]:
    names = sorted({name for route in routes for name in route.adapters})
    engine = bank.load_engine(copy.deepcopy(base), names)
    engine.set_routes(routes)
    return [routed_logits(engine, inputs, i) for i in range(len(routes))]


def source_weights(bank) -> list[dict[str, LoraWeights]]:
    return [read_peft_adapter(bank.path(name)) for name in SOURCES]


# --- materialize -----------------------------------------------------------------------------


def test_a_materialized_exact_merge_routes_like_the_mixture(bank, base, inputs):
    result = materialize(bank, list(SOURCES), WEIGHTS, "merged/abc", data={"why": "test"})
    assert result.method == "exact" and result.max_error < 1e-5
    assert result.rank == 6  # value: 2 + 2 + 2; query (2 + 2) is zero-padded to it
    mixture, merged, nothing = outputs_by_route(
        bank, base, inputs, [Route(dict(zip(SOURCES, WEIGHTS))), Route.single("merged/abc"), Route({})]
    )
    torch.testing.assert_close(merged, mixture, rtol=1e-5, atol=1e-5)
    assert (merged - nothing).abs().max() > 0.1  # the adapters matter
    entry = bank.entry("merged/abc")
    assert entry["merge"]["method"] == "exact" and entry["merge"]["sources"] == list(SOURCES)
    assert entry["merge"]["weights"] == WEIGHTS and entry["data"] == {"why": "test"}
    assert set(entry["merge"]["relative_errors"]) == set(read_peft_adapter(result.folder))
    assert entry["lora"]["r"] == entry["lora"]["lora_alpha"] == 6 and not entry["lora"]["rank_pattern"]


def test_a_merge_of_one_adapter_at_weight_one_gives_its_outputs(bank, base, inputs):
    materialize(bank, ["persona/a"], [1.0], "merged/a")
    alone, merged = outputs_by_route(bank, base, inputs, [Route.single("persona/a"), Route.single("merged/a")])
    torch.testing.assert_close(merged, alone, rtol=1e-5, atol=1e-5)


def test_a_materialized_svd_merge_records_its_true_error(bank):
    result = materialize(bank, list(SOURCES), WEIGHTS, "merged/svd", method="svd", rank=1)
    saved = read_peft_adapter(result.folder)
    measured = relative_errors(saved, source_weights(bank), WEIGHTS)
    assert result.rank == 1 and result.max_error > 0.05
    recorded = bank.entry("merged/svd")["merge"]
    assert recorded["method"] == "svd" and recorded["max_relative_error"] == result.max_error
    for module, error in recorded["relative_errors"].items():
        assert error == pytest.approx(measured[module], abs=1e-5)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda b: materialize(b, ["persona/a"], [1.0], "m/x", method="mean"), "unknown merge method"),
        (lambda b: materialize(b, ["persona/a"], [1.0], "m/x", method="svd"), "rank is required"),
        (lambda b: materialize(b, ["persona/a"], [1.0, 2.0], "m/x"), "1 adapter names but 2 weights"),
        (lambda b: materialize(b, ["persona/a", "persona/a"], [1.0, 2.0], "m/x"), "more than once"),
        (lambda b: materialize(b, ["persona/a"], [1.0], "persona/a"), "replace one of its own sources"),
        (lambda b: materialize(b, ["persona/a"], [1.0], "m/x", merge={}), "set by the merge itself"),
    ],
)
def test_bad_merge_requests_are_refused(bank, call, message):
    with pytest.raises(ValueError, match=message):
        call(bank)
    assert "m/x" not in bank.names()


# --- PEFT's combination types -----------------------------------------------------------------


def test_exact_merge_and_peft_cat_are_the_weighted_sum_and_peft_linear_is_not(bank, base, inputs):
    exact = materialize(bank, list(SOURCES), WEIGHTS, "merged/exact")
    cat = peft_combination(bank, base, list(SOURCES), WEIGHTS, "cat", "merged/cat")
    with pytest.warns(UserWarning, match="not the weighted sum of the adapters' deltas") as caught:
        linear = peft_combination(bank, base, list(SOURCES), WEIGHTS, "linear", "merged/linear")
    assert str(caught[0].message) == LINEAR_WARNING and "method='exact'" in LINEAR_WARNING
    assert exact.max_error < 1e-5 and cat.max_error < 1e-5
    assert linear.max_error > 0.1  # the cross terms B_i A_j
    assert bank.entry("merged/linear")["merge"]["method"] == "peft:linear"
    by_exact, by_cat, by_linear = outputs_by_route(
        bank, base, inputs, [Route.single("merged/exact"), Route.single("merged/cat"), Route.single("merged/linear")]
    )
    torch.testing.assert_close(by_cat, by_exact, rtol=1e-5, atol=1e-5)
    assert (by_linear - by_exact).abs().max() > 1e-3


def test_peft_linear_of_one_adapter_is_exact_and_does_not_warn(bank, base):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = peft_combination(bank, base, ["persona/b"], [-0.5], "linear", "merged/b")
    assert not [w for w in caught if "linear" in str(w.message)]
    assert result.max_error < 1e-5


@pytest.mark.parametrize("combination", ["svd", "ties", "dare_linear", "magnitude_prune"])
def test_peft_combinations_are_saved_with_their_error_and_leave_the_base_alone(bank, base, combination):
    names = ["persona/a", "persona/b"]
    result = peft_combination(bank, base, names, [0.5, 0.5], combination, "merged/p", density=0.5, seed=3)
    assert not any(isinstance(m, LoraLayer) for m in base.modules())
    recorded = bank.entry("merged/p")["merge"]
    assert recorded["method"] == f"peft:{combination}" and recorded["max_relative_error"] == result.max_error
    saved = read_peft_adapter(result.folder)
    measured = relative_errors(saved, source_weights(bank)[:2], [0.5, 0.5])
    assert max(measured.values()) == pytest.approx(result.max_error, abs=1e-5)
    assert (result.max_error < 1e-5) == (combination == "svd" and result.rank >= 4)


def test_peft_combination_requests_are_checked(bank, base):
    with pytest.raises(ValueError, match="unknown PEFT combination_type 'average'"):
        peft_combination(bank, base, ["persona/a"], [1.0], "average", "m/x")
    with pytest.raises(ValueError, match="needs a density"):
        peft_combination(bank, base, ["persona/a", "persona/b"], [1.0, 1.0], "ties", "m/x")


def test_peft_combinations_of_rslora_adapters_warn_that_peft_rescales_them(bank, base, tmp_path):
    # PEFT gives the combination r == lora_alpha but the first source's use_rslora: scale sqrt(r).
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, use_rslora=True, target_modules=["query", "value"], init_lora_weights=False)
    get_peft_model(copy.deepcopy(base), config).save_pretrained(str(tmp_path / "rs"))
    bank.import_adapter("persona/rs", tmp_path / "rs")
    with pytest.warns(UserWarning, match="inherits use_rslora"):
        result = peft_combination(bank, base, ["persona/rs", "persona/a"], [0.5, 0.5], "cat", "merged/rs")
    assert result.max_error > 0.5
    assert materialize(bank, ["persona/rs", "persona/a"], [0.5, 0.5], "merged/rs2").max_error < 1e-5
