"""The training loop on a tiny stand-in backend: early stopping, keeping the best epoch, seeds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from personalab.data.schema import Example
from personalab.train.loop import train_adapter, validation_loss
from personalab.train.presets import resolve_settings

WORDS = ["red", "green", "blue", "gold"]


class LinearBackend:
    """Rows are one-word inputs; the "model" is a linear layer over one-hot words."""

    choices = ("no", "yes")
    device = torch.device("cpu")

    def collate(self, rows):
        x = torch.stack([F.one_hot(torch.tensor(WORDS.index(r.input)), len(WORDS)).float() for r in rows])
        return {"x": x, "labels": torch.tensor([self.choices.index(r.output) for r in rows])}

    def loss_terms(self, model, batch):
        sums = F.cross_entropy(model(batch["x"]), batch["labels"], reduction="none")
        return sums, torch.ones_like(sums)

    def loss(self, model, batch):
        sums, counts = self.loss_terms(model, batch)
        return sums.sum() / counts.sum()


def rows(label_of, split, repeat=8):
    return [Example("p", w, label_of(w), split) for w in WORDS for _ in range(repeat)]


def model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(len(WORDS), 2)


def test_learns_and_reports_a_falling_validation_loss():
    rule = lambda w: "yes" if w in ("red", "blue") else "no"  # noqa: E731
    net = model()
    result = train_adapter(LinearBackend(), net, rows(rule, "train"), rows(rule, "val", 2),
                           resolve_settings(epochs=5, lr=0.1, batch_size=4, patience=5), progress=False)
    assert len(result.val_loss) == 6 and len(result.train_loss) == 5
    assert result.val_loss[-1] < result.val_loss[0] / 2
    assert result.best_epoch == 5


def test_early_stopping_keeps_the_best_epoch_not_the_last():
    # Validation wants the opposite of training, so every epoch makes it worse.
    train_rule = lambda w: "yes" if w in ("red", "blue") else "no"  # noqa: E731
    val_rule = lambda w: "no" if w in ("red", "blue") else "yes"  # noqa: E731
    net, backend = model(), LinearBackend()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    val = rows(val_rule, "val", 2)
    result = train_adapter(backend, net, rows(train_rule, "train"), val,
                           resolve_settings(epochs=10, lr=0.1, batch_size=4, patience=2), progress=False)
    assert result.best_epoch == 0
    assert len(result.train_loss) == 2  # stopped after `patience` epochs without improvement
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert validation_loss(backend, net, val) == result.val_loss[0]


def test_same_seed_same_weights_other_seed_other_order():
    rule = lambda w: "yes" if w == "gold" else "no"  # noqa: E731
    settings = resolve_settings(epochs=2, lr=0.05, batch_size=3, patience=2, dropout=0.0)

    def trained(seed):
        net = model()
        train_adapter(LinearBackend(), net, rows(rule, "train", 3), rows(rule, "val", 1), settings, seed=seed, progress=False)
        return net.weight.detach().clone()

    assert torch.equal(trained(1), trained(1))
    assert not torch.equal(trained(1), trained(2))


def test_a_parameter_with_its_own_learning_rate_moves_by_that_rate():
    """AdamW's first step moves every coordinate by about its learning rate: the bias at 0.1
    (its own), the weight at 0.001 (the settings'). A name the model does not train is refused."""
    rule = lambda w: "yes" if w in ("red", "blue") else "no"  # noqa: E731
    net = model()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    settings = resolve_settings(epochs=1, lr=1e-3, batch_size=32, patience=1, max_grad_norm=0.0)
    train_adapter(LinearBackend(), net, rows(rule, "train", 8)[:32], rows(rule, "val", 2), settings,
                  progress=False, own_lr={"bias": 0.1})
    moved = {k: (v - before[k]).abs().max().item() for k, v in net.state_dict().items()}
    assert 0.05 < moved["bias"] <= 0.1 + 1e-6 and moved["weight"] <= 1e-3 + 1e-6
    with pytest.raises(ValueError, match="own_lr names parameters the model does not train: .'scale'."):
        train_adapter(LinearBackend(), model(), rows(rule, "train"), rows(rule, "val", 2), settings,
                      progress=False, own_lr={"scale": 0.1})
