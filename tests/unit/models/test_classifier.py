"""The encoder-classifier backend: encoding, scores, loss, LoRA targets, the saved head."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer

from personalab.data.schema import Example
from personalab.errors import PersonalabError
from personalab.models import ClassifierBackend, ModelSpec, load_head, save_head

CHOICES = ("negative", "neutral", "positive")
PROFILES = {
    "ana": "a young teacher who likes jazz music",
    "bo": "an older farmer from a small village",
    "long": " ".join(["a person who reads books and talks about politics"] * 30),
    "blank": "",
}
ROWS = [
    Example("ana", "I love this movie, the story is great", "positive", "train"),
    Example("bo", "the product arrived late and broken", "negative", "train"),
    Example("ana", "the weather is cold", "neutral", "train", choices=("neutral", "positive")),
    Example("blank", "thank you for your help", "positive", "train"),
]


def make_backend(path, seed=0, **spec_fields) -> ClassifierBackend:
    spec = ModelSpec(name=str(path), **{"max_length": 64, **spec_fields})
    return ClassifierBackend(spec, CHOICES, PROFILES, seed=seed)


@pytest.fixture(scope="module")
def backend(tiny_classifier_path) -> ClassifierBackend:
    return make_backend(tiny_classifier_path)


def lora_wrapped_modules(model: torch.nn.Module, target_modules: list[str]) -> set[str]:
    config = LoraConfig(r=2, target_modules=target_modules)
    peft_model = get_peft_model(copy.deepcopy(model), config)
    prefix = "base_model.model."
    return {
        name.removeprefix(prefix)
        for name, module in peft_model.named_modules()
        if isinstance(module, LoraLayer)
    }


def test_scores_are_log_probabilities_over_allowed_choices(backend):
    scores = backend.scores(backend.model, ROWS)
    assert scores.shape == (len(ROWS), len(CHOICES))
    assert torch.allclose(scores.exp().sum(dim=-1), torch.ones(len(ROWS)), atol=1e-5)
    assert scores[2, CHOICES.index("negative")] == float("-inf")
    assert torch.isfinite(scores[[0, 1, 3]]).all() and torch.isfinite(scores[2, 1:]).all()


def test_batched_scores_equal_row_by_row_scores(tiny_classifier_path):
    backend = make_backend(tiny_classifier_path)
    batched = backend.scores(backend.model, ROWS)
    backend.batch_size = 1
    assert torch.allclose(batched, backend.scores(backend.model, ROWS), atol=1e-5)


def test_scores_use_the_model_given_not_the_base(backend):
    targets = backend.target_modules(["query", "value"])
    # init_lora_weights=False draws B non-zero: a default LoRA starts as the identity.
    config = LoraConfig(r=2, target_modules=targets, init_lora_weights=False)
    adapted = get_peft_model(copy.deepcopy(backend.model), config)
    assert not torch.allclose(backend.scores(adapted, ROWS), backend.scores(backend.model, ROWS))


def test_scores_switch_dropout_off_and_restore_the_training_mode(backend):
    expected = backend.scores(backend.model, ROWS)
    backend.model.train()
    try:
        assert torch.equal(backend.scores(backend.model, ROWS), expected)
        assert backend.model.training
    finally:
        backend.model.eval()


def test_a_row_choice_outside_the_label_set_is_refused(backend):
    row = Example("ana", "x", "positive", "train", choices=("positive", "sarcastic"))
    with pytest.raises(PersonalabError, match="sarcastic"):
        backend.scores(backend.model, [row])


def test_collate_labels_are_choice_indices_and_unknown_outputs_are_refused(backend):
    assert backend.collate(ROWS)["labels"].tolist() == [2, 0, 1, 2]
    with pytest.raises(PersonalabError, match="'great'"):
        backend.collate([Example("ana", "x", "great", "train")])


def test_loss_is_the_mean_negative_log_probability_of_the_labels(backend):
    rows = [row for row in ROWS if row.choices is None]
    batch = backend.collate(rows)
    label_scores = backend.scores(backend.model, rows)[torch.arange(len(rows)), batch["labels"]]
    loss = backend.loss(backend.model, batch)
    assert loss.item() == pytest.approx(-label_scores.mean().item(), abs=1e-5)
    assert loss.requires_grad


def test_profile_is_encoded_as_the_first_text_of_a_pair(tiny_classifier_path, backend):
    tokenizer = backend.tokenizer
    without = make_backend(tiny_classifier_path, with_profile=False).encode(ROWS[:1])
    with_profile = backend.encode(ROWS[:1])
    assert without["input_ids"][0].tolist() == tokenizer(ROWS[0].input)["input_ids"]
    pair = tokenizer(PROFILES["ana"], ROWS[0].input)
    assert with_profile["input_ids"][0].tolist() == pair["input_ids"]
    assert with_profile["token_type_ids"][0].tolist() == pair["token_type_ids"]
    assert 0 < sum(pair["token_type_ids"]) < len(pair["input_ids"])


def test_a_persona_with_an_empty_profile_is_encoded_as_the_input_alone(backend):
    encoded = backend.encode([ROWS[3]])
    assert encoded["input_ids"][0].tolist() == backend.tokenizer(ROWS[3].input)["input_ids"]


def test_a_short_profile_is_kept_whole_and_the_input_truncated(tiny_classifier_path):
    backend = make_backend(tiny_classifier_path, max_length=24)  # the profile is 10 of 24
    row = Example("ana", " ".join(["the quick brown fox"] * 10), "neutral", "train")
    encoded = backend.encode([row])
    assert encoded["input_ids"].shape[1] == 24
    text = backend.tokenizer.decode(encoded["input_ids"][0], skip_special_tokens=True)
    assert text.startswith(PROFILES["ana"]) and "quick" in text


def test_a_long_profile_does_not_crowd_out_the_input(tiny_classifier_path):
    backend = make_backend(tiny_classifier_path, max_length=32)
    rows = [Example("long", "the weather is cold", "neutral", "train"), ROWS[0]]
    encoded = backend.encode(rows)
    assert encoded["input_ids"].shape[1] == 32
    text = backend.tokenizer.decode(encoded["input_ids"][0], skip_special_tokens=True)
    assert text.endswith("the weather is cold")  # the whole (short) input survives
    assert backend.scores(backend.model, rows).shape == (2, 3)


def test_the_new_head_is_seeded_and_leaves_the_global_generator_alone(tiny_classifier_path):
    first = make_backend(tiny_classifier_path, seed=7).model.classifier.weight
    torch.rand(10)  # a different global random state must not matter
    state = torch.random.get_rng_state()
    again = make_backend(tiny_classifier_path, seed=7).model.classifier.weight
    assert torch.equal(torch.random.get_rng_state(), state)
    other = make_backend(tiny_classifier_path, seed=8).model.classifier.weight
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_trainable_base_parameters_are_the_head(backend):
    assert backend.trainable_base_parameters() == ["classifier.weight", "classifier.bias"]


EXPECTED_MODULES = {
    "query": ["attention.self.query"],
    "key": ["attention.self.key"],
    "value": ["attention.self.value"],
    "output": ["attention.output.dense"],
    "mlp_in": ["intermediate.dense"],
    "mlp_out": ["output.dense"],
}


@pytest.mark.parametrize("role", sorted(EXPECTED_MODULES))
def test_each_role_makes_peft_wrap_exactly_its_modules(backend, role):
    expected = {f"bert.encoder.layer.{i}.{m}" for i in range(2) for m in EXPECTED_MODULES[role]}
    assert lora_wrapped_modules(backend.model, backend.target_modules([role])) == expected


def test_all_roles_together_wrap_every_projection_once(backend):
    wrapped = lora_wrapped_modules(backend.model, backend.target_modules(list(EXPECTED_MODULES)))
    assert len(wrapped) == 2 * len(EXPECTED_MODULES)
    assert not any(name.startswith("classifier") for name in wrapped)


def test_unknown_role_is_refused(backend):
    with pytest.raises(PersonalabError, match="unknown LoRA target role"):
        backend.target_modules(["attention"])


def test_head_round_trip_restores_identical_scores_on_a_fresh_base(tiny_classifier_path, tmp_path):
    trained = make_backend(tiny_classifier_path, seed=1)
    with torch.no_grad():  # stands in for training: a head no seed would produce
        trained.model.classifier.weight.mul_(3.0).add_(0.5)
    wrapped = get_peft_model(trained.model, LoraConfig(r=2, target_modules=["query"]))
    save_head(wrapped, tmp_path / "head.safetensors")  # saving through a PEFT wrapper works
    fresh = make_backend(tiny_classifier_path, seed=2)
    expected = trained.scores(trained.model, ROWS)
    assert not torch.allclose(fresh.scores(fresh.model, ROWS), expected)
    load_head(fresh.model, tmp_path / "head.safetensors")
    assert torch.equal(fresh.scores(fresh.model, ROWS), expected)


def test_a_head_for_other_labels_is_refused(backend, tiny_classifier_path, tmp_path):
    save_head(backend.model, tmp_path / "head.safetensors")
    other = ClassifierBackend(ModelSpec(name=str(tiny_classifier_path)), ("no", "yes", "maybe"), {})
    with pytest.raises(PersonalabError, match="trained for labels"):
        load_head(other.model, tmp_path / "head.safetensors")


def test_real_minilm_scores_and_targets():
    minilm = ClassifierBackend(ModelSpec(name="minilm"), CHOICES, PROFILES)
    scores = minilm.scores(minilm.model, ROWS)
    assert scores.shape == (len(ROWS), len(CHOICES))
    assert torch.allclose(scores.exp().sum(dim=-1), torch.ones(len(ROWS)), atol=1e-5)
    mlp_out = minilm.target_modules(["mlp_out"])
    assert mlp_out == [f"bert.encoder.layer.{i}.output.dense" for i in range(6)]
    assert lora_wrapped_modules(minilm.model, mlp_out) == set(mlp_out)
