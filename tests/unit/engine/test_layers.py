"""MultiLoraLinear: per-row sparse mixtures of frozen and trainable adapters on one layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from personalab.engine import LoraWeights, MultiLoraLinear, row_routes

IN, OUT = 6, 5


def lora(rank: int, scale: float, seed: int) -> LoraWeights:
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(rank, IN, generator=generator)
    return LoraWeights(a, torch.randn(OUT, rank, generator=generator), scale)


@pytest.fixture
def base() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(IN, OUT)


ADAPTERS = {"a": lora(4, 2.0, 1), "b": lora(2, 0.75, 2), "c": lora(3, 1.5, 3)}


def layer_with(base: nn.Linear, trainable=(), dropout: float = 0.0) -> MultiLoraLinear:
    layer = MultiLoraLinear(base)
    for name, weights in ADAPTERS.items():
        layer.add_adapter(name, weights, trainable=name in trainable, dropout=dropout)
    layer.set_adapter_order(list(ADAPTERS))
    return layer


def route(layer: MultiLoraLinear, pairs: list[list[tuple[int, float]]]) -> None:
    """Set per-row routes given as lists of (adapter index, weight); short rows are padded."""
    width = max(len(p) for p in pairs)
    index = torch.full((len(pairs), width), len(ADAPTERS))
    weight = torch.zeros(len(pairs), width)
    for i, row in enumerate(pairs):
        for j, (k, w) in enumerate(row):
            index[i, j], weight[i, j] = k, w
    layer.set_rows(row_routes(index, weight, len(ADAPTERS), "cpu"))


def expected(base: nn.Linear, x: torch.Tensor, pairs) -> torch.Tensor:
    names = list(ADAPTERS)
    rows = []
    for i, row in enumerate(pairs):
        weight = base.weight + sum(
            (w * ADAPTERS[names[k]].delta() for k, w in row), torch.zeros(OUT, IN)
        )
        rows.append(x[i] @ weight.T + base.bias)
    return torch.stack(rows)


PAIRS = [[(0, 1.0)], [(1, 1.0)], [(2, 1.0)], [(0, 0.7), (1, 0.3)], [], [(0, 1.0), (2, 1.0)]]


@pytest.mark.parametrize("trainable", [(), ("a", "b", "c"), ("a",)])
@pytest.mark.parametrize("shape", [(6, IN), (6, 3, IN)])
def test_each_row_gets_its_own_mixture(base, trainable, shape):
    layer = layer_with(base, trainable)
    x = torch.randn(*shape)
    route(layer, PAIRS)
    with torch.no_grad():
        got = layer(x)
    assert got.shape == (*shape[:-1], OUT)
    assert torch.allclose(got, expected(base, x, PAIRS), atol=1e-5)


def test_no_routes_or_empty_routes_give_the_base_layer_exactly(base):
    layer = layer_with(base)
    x = torch.randn(3, 4, IN)
    with torch.no_grad():
        assert torch.equal(layer(x), base(x))
        route(layer, [[], [], []])
        assert torch.equal(layer(x), base(x))
        route(layer, [[(0, 1.0)], [], []])
        assert torch.equal(layer(x)[1:], base(x)[1:])  # an empty-route row, next to a routed one


def test_only_the_trainable_adapters_a_batch_uses_get_gradients(base):
    layer = layer_with(base, trainable=("a", "b"))
    route(layer, [[(0, 1.0), (2, 1.0)], [(0, 0.5)]])  # "a" trainable, "c" frozen; no "b"
    layer(torch.randn(2, IN)).square().sum().backward()
    a_params, b_params = layer.adapter_parameters("a"), layer.adapter_parameters("b")
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in a_params)
    assert all(p.grad is None for p in b_params)
    assert layer.adapter_parameters("c") == []
    assert not layer.frozen_A.requires_grad


def test_an_optimizer_step_leaves_absent_adapters_bit_identical(base):
    layer = layer_with(base, trainable=("a", "b"))
    before = {name: layer.adapter_weights(name) for name in ADAPTERS}
    trainable = [p for p in layer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, weight_decay=0.1)
    base.requires_grad_(False)
    route(layer, [[(1, 1.0), (2, 1.0)], [(1, 1.0)]])  # rows of "b" only, "c" frozen under it
    layer(torch.randn(2, IN)).sum().backward()
    optimizer.step()
    after = {name: layer.adapter_weights(name) for name in ADAPTERS}
    for name in ("a", "c"):
        assert torch.equal(after[name].A, before[name].A)
        assert torch.equal(after[name].B, before[name].B)
    assert not torch.equal(after["b"].A, before["b"].A)
    assert not torch.equal(after["b"].B, before["b"].B)


def test_dropout_acts_on_trainable_adapters_in_training_mode_only(base):
    layer = layer_with(base, trainable=("a",), dropout=0.5)
    x = torch.randn(2, 50, IN)
    pairs = [[(0, 1.0)], [(1, 1.0)]]  # row 0: trainable "a" with dropout; row 1: frozen "b"
    route(layer, pairs)
    with torch.no_grad():
        layer.eval()
        assert torch.allclose(layer(x), expected(base, x, pairs), atol=1e-5)
        layer.train()
        torch.manual_seed(0)
        trained = layer(x)
    assert not torch.allclose(trained[0], expected(base, x[:1], pairs[:1])[0], atol=1e-3)
    assert torch.allclose(trained[1], expected(base, x[1:], pairs[1:])[0], atol=1e-5)


def test_adapter_weights_come_back_exactly_at_their_own_rank(base):
    layer = layer_with(base, trainable=("b",))
    for name, weights in ADAPTERS.items():
        got = layer.adapter_weights(name)
        assert torch.equal(got.A, weights.A) and torch.equal(got.B, weights.B)
        assert got.scale == weights.scale


def test_removing_an_adapter_keeps_the_others_working(base):
    layer = layer_with(base, trainable=("c",))
    layer.remove_adapter("a")
    layer.remove_adapter("c")
    assert layer.adapter_names == ["b"]
    pairs = [[(1, 1.0)], [(0, 1.0)], [(2, 1.0)]]  # "a" and "c" now add nothing
    x = torch.randn(3, IN)
    route(layer, pairs)
    with torch.no_grad():
        got = layer(x)
    assert torch.allclose(got[0], expected(base, x, pairs[:1])[0], atol=1e-5)
    assert torch.equal(got[1:], base(x)[1:])


def test_adapters_absent_from_a_layer_add_nothing(base):
    layer = MultiLoraLinear(base)
    layer.add_adapter("b", ADAPTERS["b"])
    layer.set_adapter_order(list(ADAPTERS))  # "a" and "c" are routable but not held here
    x = torch.randn(2, IN)
    route(layer, [[(0, 1.0)], [(1, 1.0), (2, 1.0)]])
    with torch.no_grad():
        got = layer(x)
    assert torch.equal(got[0], base(x)[0])
    assert torch.allclose(got[1], expected(base, x, [[], [(1, 1.0)]])[1], atol=1e-5)


def test_refusals(base):
    layer = layer_with(base)
    with pytest.raises(ValueError, match="already"):
        layer.add_adapter("a", ADAPTERS["a"])
    with pytest.raises(ValueError, match="do not fit"):
        layer.add_adapter("wide", LoraWeights(torch.zeros(2, IN + 1), torch.zeros(OUT, 2), 1.0))
    with pytest.raises(ValueError, match="dropout"):
        layer.add_adapter("d", ADAPTERS["a"], trainable=True, dropout=1.0)
    with pytest.raises(TypeError):
        MultiLoraLinear(nn.Conv1d(2, 2, 1))
    route(layer, [[(0, 1.0)]])
    with pytest.raises(ValueError, match="2"):
        layer(torch.randn(2, IN))


def test_half_precision_base_keeps_its_dtype_and_trains_in_float32(base):
    half = nn.Linear(IN, OUT).to(torch.bfloat16)
    half.load_state_dict({k: v.to(torch.bfloat16) for k, v in base.state_dict().items()})
    layer = layer_with(half, trainable=("a",))
    assert layer.frozen_A.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in layer.adapter_parameters("a"))
    x = torch.randn(6, IN)
    route(layer, PAIRS)
    with torch.no_grad():
        got = layer(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16
    reference = expected(base, x, PAIRS)
    assert torch.allclose(got.float(), reference, atol=0.1 * reference.abs().max().item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda(base):
    layer = layer_with(base, trainable=("a",)).cuda()
    x = torch.randn(6, 3, IN)
    index = torch.tensor([[0, 3], [1, 3], [2, 3], [0, 1], [3, 3], [0, 2]])
    weight = torch.tensor([[1.0, 0], [1, 0], [1, 0], [0.7, 0.3], [0, 0], [1, 1]])
    layer.set_rows(row_routes(index, weight, len(ADAPTERS), "cuda"))
    with torch.no_grad():
        got = layer(x.cuda()).cpu()
    assert torch.allclose(got, expected(base, x, PAIRS), atol=1e-4)


def test_a_growing_and_shrinking_bank_stays_exact(base):
    layer = MultiLoraLinear(base)
    bank = {f"p{i}": lora(1 + i % 5, 0.5 + i / 10, 10 + i) for i in range(20)}
    for name, weights in bank.items():
        layer.add_adapter(name, weights)
    for name in ("p3", "p4", "p17"):  # freed slots, reused below at other ranks
        layer.remove_adapter(name)
        del bank[name]
    bank.update({f"q{i}": lora(1 + i, 2.0, 50 + i) for i in range(3)})
    for name in ("q0", "q1", "q2"):
        layer.add_adapter(name, bank[name])
    names = list(bank)
    layer.set_adapter_order(names)
    index = torch.arange(len(names))[:, None]
    layer.set_rows(row_routes(index, torch.ones(len(names), 1), len(names), "cpu"))
    x = torch.randn(len(names), IN)
    with torch.no_grad():
        got = layer(x)
    for i, name in enumerate(names):
        want = x[i] @ (base.weight + bank[name].delta()).T + base.bias
        assert torch.allclose(got[i], want, atol=1e-5), name
        assert torch.equal(layer.adapter_weights(name).A, bank[name].A)
