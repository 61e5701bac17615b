"""MultiLoraModel on both backends: one-hot routes equal PEFT, mixtures equal the merged delta,
the base is untouched without routes, and fleet training updates only the routed adapters."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from personalab.data.schema import Example
from personalab.engine import (
    LoraWeights,
    MultiLoraModel,
    Route,
    read_peft_adapter,
    write_peft_adapter,
)
from personalab.models import CausalLMBackend, ClassifierBackend, ModelSpec
from personalab.models.decoding import GenerationSettings

PROFILES = {"ana": "a young teacher who likes jazz music", "bo": "an older farmer"}
CLASSIFIER_CHOICES = ("negative", "neutral", "positive")
CAUSAL_CHOICES = ("no", "yes", "maybe not")  # "maybe not" is several tokens
TEXTS = [
    "I love this movie, the story is great",
    "the product arrived late and broken",
    "Is this comment rude?",
    "the weather is cold",
    "thank you for your help",
]
# Three adapters: different ranks, alpha != r, rsLoRA, and different target modules.
ADAPTERS = {
    "first": (dict(r=4, lora_alpha=8), ["query", "value"]),
    "second": (dict(r=2, lora_alpha=5), ["query", "key", "value", "output"]),
    "third": (dict(r=3, lora_alpha=3, use_rslora=True), ["value"]),
}
ENGINE_ROLES = ["query", "key", "value", "output"]
# Absolute, float32, plus PyTorch's float32 relative tolerance (below). The engine adds each
# LoRA delta in another order than PEFT, and the rounding that leaves differs with the CPU's
# matmul kernels: CI measured 1.5e-5 on one logit of the tiny causal LM. A wrong or missing
# adapter moves scores by more than 1e-3 (the scores test checks that it does).
TOLERANCE = 5e-5
B_FACTOR = 0.2  # see shrink_lora_b


@dataclass
class Setup:
    backend: ClassifierBackend | CausalLMBackend
    peft: PeftModel  # all adapters loaded; ``set_adapter`` picks one
    weights: dict[str, dict[str, LoraWeights]]  # as read back from the saved PEFT folders
    rows: list[Example]

    def engine(self, trainable: tuple[str, ...] = ()) -> MultiLoraModel:
        engine = MultiLoraModel(
            copy.deepcopy(self.backend.model), self.backend.target_modules(ENGINE_ROLES)
        )
        for name, weights in self.weights.items():
            engine.add_adapter(name, weights, trainable=name in trainable)
        return engine


def build_setup(backend, choices, folder) -> Setup:
    peft = None
    torch.manual_seed(0)
    for name, (settings, roles) in ADAPTERS.items():
        # init_lora_weights=False draws B non-zero: a default LoRA is the identity.
        config = LoraConfig(
            target_modules=backend.target_modules(roles), init_lora_weights=False, **settings
        )
        if peft is None:
            peft = get_peft_model(copy.deepcopy(backend.model), config, adapter_name=name)
        else:
            peft.add_adapter(name, config)
    shrink_lora_b(peft, B_FACTOR)
    peft.save_pretrained(str(folder), selected_adapters=list(ADAPTERS))
    # PEFT saves a non-default adapter into a subfolder named after it.
    weights = {name: read_peft_adapter(folder / name) for name in ADAPTERS}
    outputs = [choices[i % len(choices)] for i in range(len(TEXTS))]
    rows = [
        Example("ana" if i % 2 else "bo", text, output, "train")
        for i, (text, output) in enumerate(zip(TEXTS, outputs))
    ]
    # A row allowing only some choices: fewer sequences (causal LM), -inf scores.
    rows[3] = Example("bo", TEXTS[3], outputs[3], "train", choices=(choices[0], choices[2]))
    return Setup(backend, peft.eval(), weights, rows)


def shrink_lora_b(peft: PeftModel, factor: float) -> None:
    """Scale every B down: deltas of the size of the tiny models' own weights push their
    activations so high that float32 rounding alone (PEFT vs its own merged weights) differs
    by more than the tolerance; smaller deltas still move every score clearly."""
    with torch.no_grad():
        for name, parameter in peft.named_parameters():
            if ".lora_B." in name:
                parameter.mul_(factor)


@pytest.fixture(scope="module")
def classifier_setup(tiny_classifier_path, tmp_path_factory) -> Setup:
    spec = ModelSpec(name=str(tiny_classifier_path), max_length=64)
    backend = ClassifierBackend(spec, CLASSIFIER_CHOICES, PROFILES)
    return build_setup(backend, CLASSIFIER_CHOICES, tmp_path_factory.mktemp("classifier-adapters"))


@pytest.fixture(scope="module")
def causal_setup(tiny_causal_lm_path, tmp_path_factory) -> Setup:
    backend = CausalLMBackend(ModelSpec(name=str(tiny_causal_lm_path)), CAUSAL_CHOICES, PROFILES)
    return build_setup(backend, CAUSAL_CHOICES, tmp_path_factory.mktemp("causal-adapters"))


@pytest.fixture(params=["classifier", "causal_lm"])
def setup(request) -> Setup:
    return request.getfixturevalue(f"{request.param.removesuffix('_lm')}_setup")


def logits(backend, model, rows, **kwargs) -> torch.Tensor:
    if isinstance(backend, ClassifierBackend):
        inputs = backend.encode(rows)
    else:
        batch = backend.collate(rows)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        return model(**inputs, **kwargs).logits


def assert_close(got: torch.Tensor, want: torch.Tensor, message: str = "") -> None:
    """Within 5e-5 + 1.3e-6 * |want| (``torch.testing``'s float32 rtol): a causal LM's
    choice score sums many token log-probabilities and reaches -60, where an absolute
    tolerance alone is below one float32 rounding of the sum."""
    torch.testing.assert_close(
        got, want, rtol=1.3e-6, atol=TOLERANCE, msg=lambda m: f"{message}\n{m}"
    )


def peft_with(setup: Setup, name: str) -> PeftModel:
    setup.peft.set_adapter(name)
    return setup.peft


# --- one-hot routes == PEFT ------------------------------------------------------------------

NAMES = list(ADAPTERS)
ROW_ADAPTERS = [NAMES[i % len(NAMES)] for i in range(len(TEXTS))]  # 1st, 2nd, 3rd, 1st, 2nd


def test_one_hot_routes_match_peft_scores_row_by_row(setup):
    engine = setup.engine()
    engine.set_routes([Route.single(name) for name in NAMES])
    route_ids = [NAMES.index(name) for name in ROW_ADAPTERS]
    got = setup.backend.scores(engine, setup.rows, route_ids)
    base = setup.backend.scores(setup.backend.model, setup.rows)
    peft_scores = {name: setup.backend.scores(peft_with(setup, name), setup.rows) for name in NAMES}
    for i, name in enumerate(ROW_ADAPTERS):
        want = peft_scores[name][i]
        assert_close(got[i], want, f"row {i}, adapter {name}")
        finite = torch.isfinite(want)
        assert not torch.allclose(want[finite], base[i][finite], atol=1e-3)  # not vacuous


def test_one_hot_routes_match_peft_logits_row_by_row(setup):
    engine = setup.engine()
    engine.set_routes([Route.single(name) for name in NAMES])
    route_ids = torch.tensor([NAMES.index(name) for name in ROW_ADAPTERS])
    got = logits(setup.backend, engine, setup.rows, route_ids=route_ids)
    for name in NAMES:
        want = logits(setup.backend, peft_with(setup, name), setup.rows)
        rows = [i for i, n in enumerate(ROW_ADAPTERS) if n == name]
        assert_close(got[rows], want[rows], name)


def test_a_routed_loss_matches_the_peft_loss(setup):
    engine = setup.engine()
    engine.set_routes([Route.single(name) for name in NAMES])
    batch = setup.backend.collate(setup.rows, route_ids=[1] * len(setup.rows))
    assert batch["route_ids"].tolist() == [1] * len(setup.rows)
    with torch.no_grad():
        got = setup.backend.loss(engine, batch)
        want = setup.backend.loss(peft_with(setup, "second"), setup.backend.collate(setup.rows))
    assert_close(got, want)


# --- mixtures == the merged delta, base == base ----------------------------------------------

MIXTURES = [
    Route({"first": 0.7, "second": 0.3}),
    Route({"first": 1.0, "third": 1.0}),  # stacked, as cluster-on-unified
    Route({"second": -0.5, "third": 2.0, "first": 0.25}),
]


def merged_model(setup: Setup, route: Route, dtype: torch.dtype) -> torch.nn.Module:
    """The base model in ``dtype`` with ``sum_k w_k * s_k * B_k A_k`` (computed in float64)
    added to each adapted weight."""
    model = copy.deepcopy(setup.backend.model).to(dtype)
    with torch.no_grad():
        for name, w in route.weights:
            for path, lora in setup.weights[name].items():
                delta = w * lora.scale * (lora.B.double() @ lora.A.double())
                model.get_submodule(path).weight += delta.to(dtype)
    return model


def mixture_outputs(setup: Setup, dtype: torch.dtype):
    """(rows' route ids, engine logits, [merged-model logits per mixture]) in ``dtype``."""
    engine = MultiLoraModel(
        copy.deepcopy(setup.backend.model).to(dtype), setup.backend.target_modules(ENGINE_ROLES)
    )
    for name, weights in setup.weights.items():
        engine.add_adapter(name, weights)
    engine.set_routes(MIXTURES)
    route_ids = torch.arange(len(setup.rows)) % len(MIXTURES)
    got = logits(setup.backend, engine, setup.rows, route_ids=route_ids)
    wants = [logits(setup.backend, merged_model(setup, r, dtype), setup.rows) for r in MIXTURES]
    return route_ids, got, wants, engine


def test_weight_space_mixtures_match_the_merged_delta_in_float64(setup):
    route_ids, got, wants, _ = mixture_outputs(setup, torch.float64)
    assert got.dtype == torch.float64
    for r, want in enumerate(wants):
        rows = route_ids == r
        assert (got[rows] - want[rows]).abs().max() < 1e-10, str(MIXTURES[r])


def test_weight_space_mixtures_match_the_merged_delta_in_float32(classifier_setup):
    # Not run on the tiny causal LM: it amplifies float32 rounding so much that PEFT differs
    # from its own merged weights by ~1e-4 there; the float64 test covers it exactly.
    setup = classifier_setup
    route_ids, got, wants, engine = mixture_outputs(setup, torch.float32)
    got_scores = setup.backend.scores(engine, setup.rows, route_ids)
    for r, (route, want) in enumerate(zip(MIXTURES, wants)):
        rows = route_ids == r
        assert_close(got[rows], want[rows], str(route))
        want_scores = setup.backend.scores(merged_model(setup, route, torch.float32), setup.rows)
        assert_close(got_scores[rows], want_scores[rows], str(route))


def test_no_route_ids_and_empty_routes_give_the_base_model_exactly(setup):
    engine = setup.engine()
    engine.set_routes([Route({}), Route.single("first")])
    base = logits(setup.backend, setup.backend.model, setup.rows)
    assert torch.equal(logits(setup.backend, engine, setup.rows), base)
    empty = torch.zeros(len(setup.rows), dtype=torch.long)
    assert torch.equal(logits(setup.backend, engine, setup.rows, route_ids=empty), base)
    scores = setup.backend.scores(setup.backend.model, setup.rows)
    assert torch.equal(setup.backend.scores(engine, setup.rows), scores)
    assert torch.equal(setup.backend.scores(engine, setup.rows, [0] * len(setup.rows)), scores)


def test_the_engine_starts_in_the_base_models_mode(classifier_setup):
    engine = classifier_setup.engine()
    assert not classifier_setup.backend.model.training and not engine.training
    rows = classifier_setup.rows
    engine.set_routes([Route.single("first")])
    ids = torch.zeros(len(rows), dtype=torch.long)
    before = logits(classifier_setup.backend, engine, rows, route_ids=ids)
    classifier_setup.backend.scores(engine, rows, ids)  # eval, then back to the engine's mode
    assert torch.equal(logits(classifier_setup.backend, engine, rows, route_ids=ids), before)


def test_the_wrapped_base_model_called_directly_is_the_base_after_a_routed_call(classifier_setup):
    engine = classifier_setup.engine()
    engine.set_routes([Route.single("first")])
    backend, rows = classifier_setup.backend, classifier_setup.rows
    logits(backend, engine, rows, route_ids=torch.zeros(len(rows), dtype=torch.long))
    direct = logits(backend, engine.get_base_model(), rows)
    assert torch.equal(direct, logits(backend, backend.model, rows))


# --- errors ----------------------------------------------------------------------------------


def test_a_route_naming_an_unknown_adapter_is_refused(classifier_setup):
    engine = classifier_setup.engine()
    with pytest.raises(ValueError, match="'persona/zed'"):
        engine.set_routes([Route.single("first"), Route({"first": 0.5, "persona/zed": 0.5})])
    engine.set_routes([Route.single("first"), Route.single("second")])
    engine.remove_adapter("second")
    assert engine.adapter_names == ["first", "third"]
    with pytest.raises(ValueError, match="'second'"):
        rows = classifier_setup.rows[:2]
        logits(classifier_setup.backend, engine, rows, route_ids=torch.tensor([0, 1]))


def test_bad_route_ids_and_adapters_are_refused(classifier_setup):
    engine = classifier_setup.engine()
    engine.set_routes([Route.single("first")])
    rows = classifier_setup.rows[:2]
    with pytest.raises(ValueError, match="route ids"):
        logits(classifier_setup.backend, engine, rows, route_ids=torch.tensor([0, 1]))
    engine.set_routes([])
    with pytest.raises(ValueError, match="set_routes"):
        logits(classifier_setup.backend, engine, rows, route_ids=torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="2 route ids for 1 rows"):
        classifier_setup.backend.scores(engine, rows[:1], [0, 0])
    with pytest.raises(ValueError, match="already loaded"):
        engine.add_adapter("first", classifier_setup.weights["first"])
    stray = {"no.such.module": next(iter(classifier_setup.weights["first"].values()))}
    with pytest.raises(ValueError, match="no.such.module"):
        engine.add_adapter("stray", stray)
    assert engine.adapter_names == list(ADAPTERS)
    with pytest.raises(ValueError, match="no module"):
        MultiLoraModel(copy.deepcopy(classifier_setup.backend.model), ["nonexistent"])


# --- fleet training --------------------------------------------------------------------------


def fleet_engine(setup: Setup) -> MultiLoraModel:
    """"unified" frozen, "p1" / "p2" trainable, each persona route stacked on unified."""
    engine = MultiLoraModel(
        copy.deepcopy(setup.backend.model), setup.backend.target_modules(ENGINE_ROLES)
    )
    engine.add_adapter("unified", setup.weights["first"])
    engine.add_adapter("p1", setup.weights["second"], trainable=True, dropout=0.1)
    engine.add_adapter("p2", setup.weights["second"], trainable=True, dropout=0.1)
    engine.set_routes([Route({"p1": 1.0, "unified": 1.0}), Route({"p2": 1.0, "unified": 1.0})])
    return engine


def has_gradient(parameter: torch.nn.Parameter) -> bool:
    return parameter.grad is not None and parameter.grad.abs().sum() > 0


def base_state(engine: MultiLoraModel) -> dict[str, torch.Tensor]:
    state = engine.model.state_dict()
    return {k: v.clone() for k, v in state.items() if ".lora_A." not in k and ".lora_B." not in k}


def test_a_step_on_rows_of_one_adapter_changes_only_that_adapter(setup):
    engine = fleet_engine(setup)
    trainable = [p for p in engine.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {
        id(p) for name in ("p1", "p2") for p in engine.adapter_parameters(name)
    }
    before = {name: engine.adapter_weights(name) for name in engine.adapter_names}
    base_before = base_state(engine)
    optimizer = torch.optim.AdamW(trainable, lr=1e-2, weight_decay=0.05)
    setup.backend.scores(engine, setup.rows, [1] * len(setup.rows))  # validation, mid-training
    engine.train()
    batch = setup.backend.collate(setup.rows, route_ids=[0] * len(setup.rows))  # p1 rows only
    setup.backend.loss(engine, batch).backward()
    assert all(has_gradient(p) for p in engine.adapter_parameters("p1"))
    assert all(p.grad is None for p in engine.adapter_parameters("p2"))
    optimizer.step()
    after = {name: engine.adapter_weights(name) for name in engine.adapter_names}
    for name in ("p2", "unified"):
        for path, lora in before[name].items():
            assert torch.equal(after[name][path].A, lora.A)
            assert torch.equal(after[name][path].B, lora.B)
    for path, lora in before["p1"].items():
        assert not torch.equal(after["p1"][path].A, lora.A)
        assert not torch.equal(after["p1"][path].B, lora.B)
    assert all(torch.equal(v, base_before[k]) for k, v in base_state(engine).items())


def test_a_mixed_batch_trains_each_rows_own_adapter(classifier_setup):
    engine = fleet_engine(classifier_setup)
    rows = classifier_setup.rows
    batch = classifier_setup.backend.collate(rows, route_ids=[i % 2 for i in range(len(rows))])
    classifier_setup.backend.loss(engine, batch).backward()
    for name in ("p1", "p2"):
        assert all(has_gradient(p) for p in engine.adapter_parameters(name))


def test_a_trained_adapter_exports_to_peft_with_the_same_outputs(setup, tmp_path):
    engine = fleet_engine(setup)
    params = engine.adapter_parameters("p1")
    with torch.no_grad():
        for p in params:
            p.mul_(1.5)  # as if trained: no longer the weights it started from
    folder = write_peft_adapter(
        tmp_path / "p1", engine.adapter_weights("p1"), str(setup.backend.resolved.path),
        setup.backend.target_modules(ENGINE_ROLES),
    )
    peft = PeftModel.from_pretrained(copy.deepcopy(setup.backend.model), str(folder)).eval()
    engine.set_routes([Route.single("p1")])
    route_ids = torch.zeros(len(setup.rows), dtype=torch.long)
    engine.eval()
    got = logits(setup.backend, engine, setup.rows, route_ids=route_ids)
    assert_close(got, logits(setup.backend, peft, setup.rows))


def test_generate_follows_each_rows_route(causal_setup):
    setup = causal_setup
    engine = setup.engine()
    engine.set_routes([Route.single(name) for name in NAMES])
    batch = setup.backend.collate(setup.rows[:1] * 3)  # one prompt, three routes
    kwargs = dict(max_new_tokens=4, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        got = engine.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            route_ids=torch.arange(3), **kwargs,
        )
        for k, name in enumerate(NAMES):
            want = peft_with(setup, name).generate(
                input_ids=batch["input_ids"][:1], attention_mask=batch["attention_mask"][:1],
                **kwargs,
            )
            assert torch.equal(got[k], want[0]), name


def test_backend_generation_through_routes_is_token_identical_to_peft_greedy(causal_setup):
    """The backend's own decoding loop, one batch holding every row under every adapter
    (prompts of different lengths: left padding), against transformers' greedy ``generate``
    of PEFT with that adapter active, row by row."""
    setup = causal_setup
    engine = setup.engine()
    engine.set_routes([Route.single(name) for name in NAMES])
    rows = setup.rows * len(NAMES)
    route_ids = [k for k in range(len(NAMES)) for _ in setup.rows]
    settings = GenerationSettings(max_new_tokens=8)
    got = setup.backend.generate(engine, rows, route_ids, settings)
    tokenizer = setup.backend.tokenizer
    for k, name in enumerate(NAMES):
        for i, row in enumerate(setup.rows):
            prompt = torch.tensor([setup.backend.prompt_ids(row)])
            with torch.no_grad():
                out = peft_with(setup, name).generate(
                    input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8,
                    do_sample=False, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                )
            want = tokenizer.decode(out[0, prompt.shape[1]:], skip_special_tokens=True).strip()
            assert got[k * len(setup.rows) + i] == want, (name, i)
    assert len(set(got)) > len(setup.rows)  # the adapters change the answers: not vacuous
