"""The adapter bank: safe names for any persona id, atomic saves, the manifest, import and
export of PEFT folders, and the base-model checks on loading."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from datetime import datetime
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file

from personalab.bank import AdapterBank, adapter_directory, peft_adapter_name
from personalab.errors import PersonalabError
from personalab.models import ModelSpec, build_backend

DANGEROUS_IDS = [
    "a.b", "x/y", "../etc", "..", "lora", "weight", "default", "base_model.model", "Zoë 🙂",
    "A", "a", " spaced  id ", "p" * 300,
]


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tiny_classifier_path) -> torch.nn.Module:
    """The tiny classifier as loaded, never wrapped: tests wrap copies of it."""
    return build_backend(ModelSpec(name="tiny-classifier"), ("bad", "good"), {}).model


@pytest.fixture(scope="module")
def inputs(base) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(5, base.config.vocab_size, (3, 9), generator=generator)


@pytest.fixture
def bank(tmp_path) -> AdapterBank:
    return AdapterBank(tmp_path / "bank")


def lora_model(base: torch.nn.Module, adapters: list[str], seed: int = 0) -> PeftModel:
    """A PEFT model over a copy of ``base`` with random, non-zero LoRA A and B per adapter
    (PEFT's default B = 0 would make every adapter the identity and hide save/load bugs)."""
    torch.manual_seed(seed)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["query", "value"], init_lora_weights=False)
    model = get_peft_model(copy.deepcopy(base), config, adapter_name=adapters[0])
    for name in adapters[1:]:
        model.add_adapter(name, config)
    return model.eval()


def logits(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).logits


def visible_tree(root: Path) -> dict[str, bytes | None]:
    """Every folder and file under ``root`` a user would see (work folders start with a dot)."""
    tree = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not any(part.startswith(".") for part in relative.parts):
            tree[relative.as_posix()] = path.read_bytes() if path.is_file() else None
    return tree


def saved_adapter_folder(base: torch.nn.Module, folder: Path, seed: int = 0) -> Path:
    """A plain PEFT adapter folder, as PEFT writes it outside any bank."""
    lora_model(base, ["default"], seed).save_pretrained(str(folder))
    return folder


def edit_config(folder: Path, **changes) -> None:
    path = folder / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


# --- names -----------------------------------------------------------------------------------


def test_any_persona_id_gets_a_safe_distinct_folder_and_peft_name():
    names = [f"persona/{pid}" for pid in DANGEROUS_IDS]
    folders = [adapter_directory(name) for name in names]
    # distinct even where file names are case-insensitive ("A" and "a")
    assert len({folder.casefold() for folder in folders}) == len(names)
    for folder in folders:
        kind, leaf = folder.split("/")
        assert kind == "persona" and re.fullmatch(r"[a-z0-9_]*-?[0-9a-f]{12}", leaf) and len(leaf) <= 60
    peft_names = {peft_adapter_name(name) for name in names}
    assert len(peft_names) == len(names)
    assert all(re.fullmatch(r"persona_[0-9a-f]{12}", name) for name in peft_names)
    assert adapter_directory("unified") == "unified"
    assert adapter_directory("persona/Zoë 🙂").startswith("persona/zoe-")


@pytest.mark.parametrize("name, error", [
    ("Persona/x", ValueError), ("", ValueError), ("../x", ValueError),
    ("persona/", PersonalabError), ("persona/\ud800", PersonalabError),
])
def test_invalid_names_are_refused(name, error):
    with pytest.raises(error):
        adapter_directory(name)


# --- saving and loading ----------------------------------------------------------------------


def test_dangerous_persona_ids_round_trip(bank, base, inputs):
    names = [f"persona/{pid}" for pid in DANGEROUS_IDS]
    trained = lora_model(base, [f"p{i}" for i in range(len(names))])
    expected = {}
    for i, name in enumerate(names):
        trained.set_adapter(f"p{i}")
        expected[name] = logits(trained, inputs)
        bank.save(name, trained, adapter_name=f"p{i}")

    reopened = AdapterBank(bank.root)
    assert reopened.names() == sorted(names)
    assert {path.parent.parent for path in bank.root.rglob("adapter_model.safetensors")} == {bank.root / "persona"}
    loaded = reopened.load_into(copy.deepcopy(base), names)
    for name in names:
        loaded.set_adapter(peft_adapter_name(name))
        assert torch.equal(logits(loaded, inputs), expected[name]), name
    assert not torch.equal(expected["persona/A"], expected["persona/a"])  # the adapters do act


def test_a_killed_save_leaves_no_half_adapter_and_keeps_the_previous_version(bank, base, inputs, monkeypatch):
    first = lora_model(base, ["v"], seed=1)
    bank.save("persona/x.y", first, adapter_name="v")
    before = visible_tree(bank.root)
    readers_saw = []

    def killed_midway(folder, **kwargs):
        partial = Path(folder) / "v"
        partial.mkdir(parents=True)
        (partial / "adapter_config.json").write_text('{"peft_type": "LORA"}')
        (partial / "adapter_model.safetensors").write_bytes(b"half a tens")
        readers_saw.append(AdapterBank(bank.root).names())  # a reader while the save runs
        raise KeyboardInterrupt

    second = lora_model(base, ["v"], seed=2)
    monkeypatch.setattr(second, "save_pretrained", killed_midway)
    for name in ("persona/x.y", "persona/new"):
        with pytest.raises(KeyboardInterrupt):
            bank.save(name, second, adapter_name="v")

    assert readers_saw == [["persona/x.y"], ["persona/x.y"]]
    assert bank.names() == ["persona/x.y"]
    assert visible_tree(bank.root) == before
    assert not list((bank.root / ".staging").iterdir())
    loaded = bank.load_into(copy.deepcopy(base), ["persona/x.y"])
    assert torch.equal(logits(loaded, inputs), logits(first, inputs))


def test_a_failed_manifest_write_puts_the_previous_folder_back(bank, base, inputs, monkeypatch):
    first = lora_model(base, ["v"], seed=1)
    bank.save("cluster/0", first, adapter_name="v")
    before = visible_tree(bank.root)

    def disk_full(path, text):
        raise OSError("no space left on device")

    monkeypatch.setattr("personalab.bank.store.atomic_write_text", disk_full)
    for name in ("cluster/0", "cluster/1"):
        with pytest.raises(OSError):
            bank.save(name, lora_model(base, ["v"], seed=2), adapter_name="v")
    monkeypatch.undo()

    assert bank.names() == ["cluster/0"]
    assert visible_tree(bank.root) == before
    loaded = bank.load_into(copy.deepcopy(base), ["cluster/0"])
    assert torch.equal(logits(loaded, inputs), logits(first, inputs))


def test_saving_again_replaces_the_adapter(bank, base, inputs):
    bank.save("unified", lora_model(base, ["unified"], seed=1), adapter_name="unified")
    newer = lora_model(base, ["unified"], seed=2)
    bank.save("unified", newer, adapter_name="unified", scores={"val_loss": 0.1})
    assert bank.names() == ["unified"] and bank.entry("unified")["scores"] == {"val_loss": 0.1}
    assert torch.equal(logits(bank.load_into(copy.deepcopy(base), ["unified"]), inputs), logits(newer, inputs))


def test_manifest_records_what_made_each_adapter(bank, base, tiny_classifier_path):
    bank.save("unified", lora_model(base, ["unified"]), adapter_name="unified", data={"rows": 12, "personas": 3},
              scores={"val_loss": 0.25}, config_hash="c0ffee", base_revision="abc123", strategy="unified")
    manifest = json.loads((bank.root / "manifest.json").read_text(encoding="utf-8"))
    entry = manifest["adapters"]["unified"]
    assert entry["base_model"]["name_or_path"] == str(tiny_classifier_path)
    assert entry["base_model"]["revision"] == "abc123" and entry["base_model"]["model_type"] == "bert"
    assert entry["lora"]["r"] == 2 and entry["lora"]["lora_alpha"] == 4
    assert sorted(entry["lora"]["target_modules"]) == ["query", "value"]
    assert entry["data"] == {"rows": 12, "personas": 3} and entry["scores"] == {"val_loss": 0.25}
    assert entry["config_hash"] == "c0ffee" and entry["strategy"] == "unified" and entry["source"] == "trained"
    assert datetime.fromisoformat(entry["created"]).tzinfo is not None
    weights = bank.root / entry["directory"] / "adapter_model.safetensors"
    assert entry["directory"] == "unified" and entry["peft_name"] == peft_adapter_name("unified")
    assert entry["files"]["adapter_model.safetensors"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    hidden = base.config.hidden_size
    assert manifest["base_model"]["module_shapes"]["bert.encoder.layer.0.attention.self.query"] == [hidden, hidden]
    assert bank.entry("unified") == entry


def test_a_kind_is_used_with_keys_or_without(bank, base):
    model = lora_model(base, ["v"])
    bank.save("unified", model, adapter_name="v")
    with pytest.raises(ValueError, match="already used without a key"):
        bank.save("unified/x", model, adapter_name="v")
    assert bank.names() == ["unified"]


# --- import and export -----------------------------------------------------------------------


def test_import_then_export_gives_a_folder_peft_loads_with_the_same_outputs(bank, base, inputs, tmp_path):
    source_model = lora_model(base, ["default"], seed=3)
    source_model.save_pretrained(str(tmp_path / "source"))
    bank.import_adapter("merged/Zoë's mix", tmp_path / "source", scores={"val_accuracy": 0.5})
    trained = lora_model(base, ["t"], seed=4)
    bank.save("persona/a.b", trained, adapter_name="t")

    for name, model in (("merged/Zoë's mix", source_model), ("persona/a.b", trained)):
        out = bank.export(name, tmp_path / "export" / adapter_directory(name))
        assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
        reloaded = PeftModel.from_pretrained(copy.deepcopy(base), str(out)).eval()
        assert torch.equal(logits(reloaded, inputs), logits(model, inputs)), name
    assert bank.entry("merged/Zoë's mix")["source"].startswith("imported from")

    with pytest.raises(PersonalabError, match="not an empty folder"):
        bank.export("persona/a.b", tmp_path / "source")


def make_pickle_only(folder: Path) -> None:
    weights = folder / "adapter_model.safetensors"
    torch.save(load_file(str(weights)), folder / "adapter_model.bin")
    weights.unlink()


@pytest.mark.parametrize("spoil, message", [
    (make_pickle_only, "only in pickle format"),
    (lambda folder: edit_config(folder, use_dora=True), "DoRA"),
    (lambda folder: edit_config(folder, peft_type="IA3"), "LoRA adapters only"),
    (lambda folder: edit_config(folder, modules_to_save=["classifier"]), "modules_to_save"),
    (lambda folder: (folder / "adapter_config.json").unlink(), "not a PEFT adapter folder"),
    (lambda folder: (folder / "adapter_model.safetensors").write_bytes(b"\x08\x00"), "not a readable safetensors"),
], ids=["pickle", "dora", "ia3", "modules_to_save", "no-config", "damaged"])
def test_import_refuses_adapters_the_bank_cannot_hold(bank, base, tmp_path, spoil, message):
    folder = saved_adapter_folder(base, tmp_path / "adapter")
    spoil(folder)
    with pytest.raises(PersonalabError, match=message):
        bank.import_adapter("persona/p", folder)
    assert bank.names() == [] and visible_tree(bank.root) == {}


def test_import_refuses_an_adapter_for_another_architecture(bank, base, tmp_path, tiny_classifier_path, tiny_causal_lm_path):
    from transformers import AutoModelForCausalLM

    bank.save("unified", lora_model(base, ["v"]), adapter_name="v")
    causal_lm = AutoModelForCausalLM.from_pretrained(str(tiny_causal_lm_path))
    config = LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False)
    get_peft_model(causal_lm, config).save_pretrained(str(tmp_path / "lm-adapter"))
    with pytest.raises(PersonalabError) as refused:
        bank.import_adapter("persona/p", tmp_path / "lm-adapter")
    assert str(tiny_classifier_path) in str(refused.value) and str(tiny_causal_lm_path) in str(refused.value)
    assert bank.names() == ["unified"]


def test_import_refuses_an_adapter_for_another_hub_model(bank, base, tmp_path):
    first = saved_adapter_folder(base, tmp_path / "first")
    edit_config(first, base_model_name_or_path="org/model-a")
    bank.import_adapter("persona/a", first)
    second = saved_adapter_folder(base, tmp_path / "second")
    edit_config(second, base_model_name_or_path="org/model-b")
    with pytest.raises(PersonalabError, match="'org/model-a'.*'org/model-b'.*different models"):
        bank.import_adapter("persona/b", second)
    assert bank.names() == ["persona/a"]


# --- loading checks --------------------------------------------------------------------------


def renamed(model: torch.nn.Module, name_or_path: str) -> torch.nn.Module:
    """A copy of ``model`` that says it was loaded from ``name_or_path``."""
    model = copy.deepcopy(model)
    model.name_or_path = model.config._name_or_path = name_or_path
    return model


@pytest.mark.filterwarnings("ignore:Could not find a config file")  # PEFT looks for org/model-a online
def test_loading_is_lenient_with_a_moved_local_base_and_strict_with_hub_ids(bank, base, inputs, tmp_path):
    trained = lora_model(base, ["v"], seed=5)
    bank.save("persona/p", trained, adapter_name="v")
    moved = bank.load_into(renamed(base, str(tmp_path / "elsewhere" / "tiny-classifier")), ["persona/p"])
    assert torch.equal(logits(moved, inputs), logits(trained, inputs))

    hub_bank = AdapterBank(tmp_path / "hub-bank")
    hub_bank.save("persona/p", lora_model(renamed(base, "org/model-a"), ["v"]), adapter_name="v")
    assert hub_bank.load_into(renamed(base, "org/model-a"), ["persona/p"])
    with pytest.raises(PersonalabError, match="'org/model-a' and cannot be loaded into 'org/model-b'"):
        hub_bank.load_into(renamed(base, "org/model-b"), ["persona/p"])


def test_loading_refuses_an_adapter_of_another_architecture(bank, base, tiny_causal_lm_path):
    from transformers import AutoModelForCausalLM

    bank.save("unified", lora_model(base, ["v"]), adapter_name="v")
    causal_lm = AutoModelForCausalLM.from_pretrained(str(tiny_causal_lm_path))
    with pytest.raises(PersonalabError, match="cannot be loaded into .*architectures differ"):
        bank.load_into(causal_lm, ["unified"])


def test_loading_refuses_pickled_or_altered_weights(bank, base, tmp_path):
    bank.save("persona/p", lora_model(base, ["v"], seed=1), adapter_name="v")
    bank.save("persona/q", lora_model(base, ["v"], seed=2), adapter_name="v")
    folder_p, folder_q = bank.path("persona/p"), bank.path("persona/q")

    (folder_q / "adapter_model.safetensors").write_bytes((folder_p / "adapter_model.safetensors").read_bytes())
    untouched = copy.deepcopy(base)
    with pytest.raises(PersonalabError, match="not the ones the manifest recorded"):
        bank.load_into(untouched, ["persona/p", "persona/q"])
    assert not any(isinstance(module, LoraLayer) for module in untouched.modules())  # nothing half-loaded

    make_pickle_only(folder_p)
    assert bank.names() == ["persona/q"]  # an incomplete folder is not in the bank
    with pytest.raises(PersonalabError, match="only in pickle format"):
        bank.load_into(copy.deepcopy(base), ["persona/p"])


def test_unknown_adapter_names_get_a_clear_error(bank, base):
    bank.save("persona/alice", lora_model(base, ["v"]), adapter_name="v")
    with pytest.raises(PersonalabError, match="not in the bank.*did you mean 'persona/alice'"):
        bank.load_into(copy.deepcopy(base), ["persona/alicia"])


# --- persona vectors -------------------------------------------------------------------------


def test_persona_vectors_save_load_bit_identical_and_travel_with_their_adapter(bank, base, tmp_path):
    from personalab.engine import read_peft_adapter

    peft = lora_model(base, ["v"])
    peft.save_pretrained(str(tmp_path / "peft"), selected_adapters=["v"])
    weights = read_peft_adapter(tmp_path / "peft" / "v")
    personas = ["Zoë 🙂", "a/b", "p0"]  # any id: the order lives in the metadata, not in tensor keys
    # Values that float16 or bfloat16 rounding would change: a lossy save fails the equality.
    vectors = torch.randn(3, base.config.hidden_size, generator=torch.Generator().manual_seed(3)) / 3
    bank.save_weights("unified_vectors", weights, str(base.name_or_path), vectors=(personas, vectors))
    read_personas, read = bank.read_vectors("unified_vectors")
    assert read_personas == personas and read.dtype == torch.float32 and torch.equal(read, vectors)
    assert "persona_vectors.safetensors" in bank.entry("unified_vectors")["files"]

    engine = bank.load_engine(copy.deepcopy(base), ["unified_vectors"], vectors="unified_vectors")
    names, table = engine.input_vector_table()
    assert names == personas and torch.equal(table, vectors)

    other = AdapterBank(tmp_path / "other")  # reuse copies a run's adapter into another bank
    other.import_adapter("unified_vectors", bank.path("unified_vectors"))
    assert torch.equal(other.read_vectors("unified_vectors")[1], vectors)
    exported = bank.export("unified_vectors", tmp_path / "served")
    assert sorted(p.name for p in exported.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]

    lora_only = AdapterBank(tmp_path / "plain")
    lora_only.save_weights("unified", weights, str(base.name_or_path))
    with pytest.raises(PersonalabError, match="adapter 'unified' has no persona vectors"):
        lora_only.read_vectors("unified")
    (bank.path("unified_vectors") / "persona_vectors.safetensors").write_bytes(b"changed behind the bank's back")
    with pytest.raises(PersonalabError, match="not the ones the manifest recorded"):
        bank.read_vectors("unified_vectors")


def test_a_damaged_vector_file_is_refused_with_its_reason(tmp_path):
    from personalab.bank.vectors import read_vectors, write_vectors
    from personalab.data.atomic import atomic_write_safetensors

    with pytest.raises(ValueError, match="distinct personas"):
        write_vectors(tmp_path / "v.safetensors", ["a", "a"], torch.zeros(2, 4))
    atomic_write_safetensors(tmp_path / "other.safetensors", {"weight": torch.zeros(2, 4)})
    with pytest.raises(PersonalabError, match="not a persona-vector file"):
        read_vectors(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(PersonalabError, match="not a readable safetensors file"):
        read_vectors(tmp_path / "junk.safetensors")
