"""Will an exported adapter load in a multi-LoRA server? The servers' rules, checked on the
PEFT folder alone (its config and its tensor shapes), without loading any model.

Today one server: vLLM. Each rule below names where vLLM states it (paths in
github.com/vllm-project/vllm), so that it can be re-checked when vLLM changes:

* rank: ``--max-lora-rank`` takes one of ``VLLM_MAX_LORA_RANKS`` (``vllm/config/lora.py``,
  ``MaxLoRARanks``; older releases: ``possible_max_ranks`` in ``LoRAConfig.__post_init__`` of
  ``vllm/config.py``, 8 .. 512) and defaults to 16; an adapter whose rank is larger is refused
  (``PEFTHelper.validate_legal`` in ``vllm/lora/peft_helper.py``: "LoRA rank r is greater than
  max_lora_rank"). So 512 is the largest rank vLLM serves, and the report gives the value to
  pass: the smallest allowed one that holds the largest adapter.
* no DoRA (``use_dora``), no ``modules_to_save``: ``PEFTHelper._validate_features``
  ("vLLM does not yet support DoRA", "vLLM only supports modules_to_save being None").
* ``bias`` must be ``"none"``: ``PEFTHelper.validate_legal`` (older releases accepted LoRA
  biases only with ``--enable-lora-bias``; newer ones refuse them).
* one scale for the whole adapter: ``PEFTHelper`` reads ``r``, ``lora_alpha`` and
  ``use_rslora`` only and computes one ``vllm_lora_scaling_factor`` (``lora_alpha / r``, or
  ``/ sqrt(r)``); ``rank_pattern`` / ``alpha_pattern`` are not read, so a module whose PEFT
  scale differs from that one would be served with the wrong scale.
* tensors named ``base_model.model.<module>.lora_A.weight`` / ``.lora_B.weight``
  (``parse_fine_grained_lora_name`` in ``vllm/lora/utils.py``), each module's last name part
  one of the model's LoRA modules (``check_unexpected_modules`` in ``vllm/lora/lora_model.py``,
  formerly ``vllm/lora/models.py``: "expected target modules in ... but received ..."). For
  the llama-like causal LMs (``VLLM_LLAMA_LIKE_TYPES``) those are the attention and MLP
  projections q/k/v/o and gate/up/down (their ``packed_modules_mapping`` unpacks ``qkv_proj``
  and ``gate_up_proj`` into them).
* the architecture must implement ``SupportsLoRA``, else the server refuses to start ("X does
  not support LoRA yet", ``load_lora_model`` in ``vllm/v1/worker/lora_model_runner_mixin.py``).
  Encoder classifiers (BERT-like, our MiniLM default) do not: ``BertForSequenceClassification``
  in ``vllm/model_executor/models/bert.py`` implements ``SupportsCrossEncoding`` and
  ``SupportsQuant`` only. Such an export is reported "not servable by vLLM; serve with PEFT".
* learned persona vectors (``persona_token`` with ``identity: learned``, recorded in
  ``export.json``) are added to the input embeddings of every token; vLLM's LoRA serving takes
  token ids and adapters only, so such an export is not servable by it either. (vLLM's
  ``--enable-prompt-embeds`` input could carry the prompt's embeddings plus the vector, but
  not for the tokens it generates, and it is not checked here.)
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from safetensors import safe_open

from personalab.engine.peft_io import CONFIG_FILE, WEIGHTS_FILE, module_rank_and_alpha
from personalab.errors import PersonalabError

SERVERS = ("vllm",)
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm/config/lora.py MaxLoRARanks
VLLM_DEFAULT_MAX_LORA_RANK = 16  # vllm/config/lora.py: LoRAConfig.max_lora_rank's default
VLLM_LLAMA_LIKE_MODULES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
# Hugging Face model types whose vLLM implementation supports LoRA with the module names
# above (vllm/model_executor/models/{llama,qwen2,qwen3,gemma,gemma2}.py: SupportsLoRA). Others
# may well work too; they are reported as unknown rather than refused.
VLLM_LLAMA_LIKE_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2"})
NOT_SERVABLE = "not servable by vLLM; serve with PEFT"
SEVERITIES = ("error", "warning", "note")  # error: the server refuses it; note: advice only
_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<part>A|B)\.weight$")
_ENCODER_PROBES = ("attention.self.query", "attention.q_lin")  # bert-like, distilbert
_SCALE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Problem:
    """One reason an adapter (or the whole export) would not load, or not behave the same,
    in a server."""

    adapter: str  # the adapter's folder name, or "(base model)" / "(all adapters)"
    message: str
    severity: str = "error"
    rule: str = ""

    def __str__(self) -> str:
        return f"{self.adapter}: {self.message}"


@dataclass(frozen=True)
class ServingBase:
    """What the server must know about the base model: generative or classifier, and its
    Hugging Face ``model_type``; None where unknown."""

    kind: str | None = None  # "causal_lm" or "classifier"
    model_type: str | None = None


@dataclass(frozen=True)
class AdapterFacts:
    """What the rules read from a folder: its config and ``{tensor key: shape}``."""

    name: str
    config: dict[str, Any]
    shapes: dict[str, list[int]]

    @property
    def ranks(self) -> dict[str, int]:
        """``{module: rank}`` from the lora_A tensors (``[r, in]``)."""
        ranks = {}
        for key, shape in self.shapes.items():
            match = _KEY.match(key)
            if match and match["part"] == "A" and shape:
                ranks[match["module"]] = int(shape[0])
        return ranks

    @property
    def rank(self) -> int:
        """The largest rank, from the tensors and from the config's ``r`` (vLLM checks ``r``)."""
        return max([*self.ranks.values(), int(self.config.get("r") or 0)])


@dataclass
class CompatReport:
    """The check of a set of adapters served together by one server."""

    server: str
    ranks: dict[str, int]  # adapter -> largest rank
    problems: list[Problem] = field(default_factory=list)

    @property
    def max_rank(self) -> int:
        return max(self.ranks.values(), default=0)

    @property
    def max_lora_rank(self) -> int | None:
        """The value to pass to ``--max-lora-rank`` (None when no allowed value is large enough)."""
        return vllm_max_lora_rank(self.max_rank)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def servable(self) -> bool:
        return not self.errors

    def lines(self) -> list[str]:
        """The report as a person reads it: a verdict, then one line per problem."""
        verdict = "servable" if self.servable else ("NOT servable" if self.ranks else "nothing to serve")
        lines = [f"{self.server}: {verdict} ({len(self.ranks)} adapters, {_rank_range(self.ranks)})"]
        if self.servable and self.ranks:
            lines.append(f"  serve with --enable-lora --max-lora-rank {self.max_lora_rank} "
                         f"(vLLM's default is {VLLM_DEFAULT_MAX_LORA_RANK})")
        lines += [f"  [{p.severity}] {p}" for p in self.problems]
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "servable": self.servable,
            "max_rank": self.max_rank,
            "max_lora_rank": self.max_lora_rank,
            "ranks": dict(self.ranks),
            "problems": [{"adapter": p.adapter, "severity": p.severity, "rule": p.rule, "message": p.message}
                         for p in self.problems],
        }


# --- entry points -----------------------------------------------------------------------------


def check_adapter(folder: str | Path, server: str = "vllm", base: ServingBase | None = None,
                  name: str | None = None) -> list[Problem]:
    """Why the PEFT adapter in ``folder`` would not load (or not behave the same) in
    ``server``; empty when it would. ``base``: the base model (default: read from the
    adapter's ``base_model_name_or_path`` when that is a local folder, else guessed from the
    module names)."""
    _check_server(server)
    folder = Path(folder)
    name = name or folder.name
    facts, problems = read_facts(folder, name)
    if facts is None:
        return problems
    base = base or base_of_adapter(facts)
    return adapter_problems(facts) + base_problems(base, [facts], name)


def check_adapters(folders: Mapping[str, str | Path], server: str = "vllm",
                   base: ServingBase | None = None) -> CompatReport:
    """The adapters ``{name: folder}`` served together: each one's problems, the base
    model's (once), and the ``--max-lora-rank`` they need."""
    _check_server(server)
    report = CompatReport(server, ranks={})
    read = []
    for name, folder in folders.items():
        facts, problems = read_facts(Path(folder), name)
        report.problems += problems
        if facts is not None:
            read.append(facts)
            report.ranks[name] = facts.rank
            report.problems += adapter_problems(facts)
    if read:
        report.problems += base_problems(base or base_of_adapter(read[0]), read, "(base model)")
    report.problems += rank_set_problems(report.ranks)
    return report


def check_export(out: str | Path, server: str = "vllm") -> CompatReport:
    """Check the adapters of an export folder (``personalab export``) against ``server``,
    with the base model that ``export.json`` records."""
    out = Path(out)
    info_path = out / "export.json"
    if not info_path.is_file():
        raise PersonalabError(f"{out} is not a personalab export (no export.json); make one with `personalab export`")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    folders = {name: out / entry["path"] for name, entry in info.get("adapters", {}).items()}
    recorded = info.get("base_model") or {}
    base = ServingBase(recorded.get("kind"), recorded.get("model_type"))
    report = check_adapters(folders, server, base)
    if info.get("persona_vectors"):
        report.problems.append(_persona_vectors(info["persona_vectors"].get("file")))
    return report


def vllm_max_lora_rank(rank: int) -> int | None:
    """The smallest value vLLM accepts for ``--max-lora-rank`` that holds ``rank``."""
    return next((allowed for allowed in VLLM_MAX_LORA_RANKS if allowed >= rank), None)


# --- reading ----------------------------------------------------------------------------------


def read_facts(folder: Path, name: str) -> tuple[AdapterFacts | None, list[Problem]]:
    """The folder's config and tensor shapes, or the problem that stops reading them."""
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_path.is_file():
        return None, [Problem(name, f"no {CONFIG_FILE}: not a PEFT adapter folder", rule="format")]
    if not weights_path.is_file():
        return None, [Problem(name, f"no {WEIGHTS_FILE}: vLLM loads safetensors weights", rule="format")]
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        with safe_open(str(weights_path), framework="pt") as handle:
            shapes = {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as error:  # a damaged file: JSON or safetensors raise their own types
        return None, [Problem(name, f"unreadable adapter files ({error})", rule="format")]
    return AdapterFacts(name, config, shapes), []


def base_of_adapter(facts: AdapterFacts) -> ServingBase:
    """The base model as the adapter config names it, when that is a local model folder;
    otherwise guessed from the adapted module names (an encoder's are recognisable)."""
    source = facts.config.get("base_model_name_or_path")
    config_file = Path(str(source)) / "config.json" if source else None
    if config_file is not None and config_file.is_file():
        model = json.loads(config_file.read_text(encoding="utf-8"))
        architectures = model.get("architectures") or []
        causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
        return ServingBase("causal_lm" if causal else "classifier", model.get("model_type"))
    modules = facts.ranks
    if any(m.endswith(probe) for m in modules for probe in _ENCODER_PROBES):
        return ServingBase("classifier", None)
    return ServingBase(None, None)


# --- rules ------------------------------------------------------------------------------------


def adapter_problems(facts: AdapterFacts) -> list[Problem]:
    """The rules about one adapter alone (format, options, rank, scale)."""
    problems = []
    for rule in (_peft_type, _dora, _modules_to_save, _bias, _tensor_names, _rank, _one_scale):
        problems += rule(facts)
    return problems


def base_problems(base: ServingBase, adapters: list[AdapterFacts], who: str) -> list[Problem]:
    """The rules about the base model: does vLLM serve LoRA for it, on these modules."""
    if base.kind == "classifier":
        return [Problem(who, f"{NOT_SERVABLE}: the base is a sequence classifier (e.g. a BERT-like encoder such as "
                             "MiniLM), and vLLM serves LoRA adapters for generative models only (its "
                             "BertForSequenceClassification does not implement SupportsLoRA); load the base with "
                             "transformers' AutoModelForSequenceClassification, its classifier head, and each adapter "
                             "with PeftModel.from_pretrained", rule="architecture")]
    if base.model_type not in VLLM_LLAMA_LIKE_TYPES:
        known = ", ".join(sorted(VLLM_LLAMA_LIKE_TYPES))
        return [Problem(who, f"model type {base.model_type or 'unknown'!r}: not known here to support LoRA in vLLM "
                             f"(known: {known}); check vLLM's supported-models list (LoRA column)",
                        severity="warning", rule="architecture")]
    problems = []
    for facts in adapters:
        unexpected = sorted({m.rsplit(".", 1)[-1] for m in facts.ranks} - VLLM_LLAMA_LIKE_MODULES)
        if unexpected:
            problems.append(Problem(facts.name, f"adapts modules {unexpected} that vLLM's {base.model_type} has no "
                                                f"LoRA for (it takes {sorted(VLLM_LLAMA_LIKE_MODULES)})",
                                    rule="target_modules"))
    return problems


def rank_set_problems(ranks: Mapping[str, int]) -> list[Problem]:
    """What serving adapters of different ranks together costs: vLLM reserves
    ``--max-loras`` slots of ``--max-lora-rank`` each, so every adapter takes the room of
    the largest."""
    values = sorted(set(ranks.values()))
    if len(values) < 2 or vllm_max_lora_rank(values[-1]) is None:
        return []
    largest = max(ranks, key=ranks.get)
    return [Problem("(all adapters)", f"ranks differ ({values[0]} to {values[-1]}, largest {largest}): vLLM pads "
                                      f"every adapter slot to --max-lora-rank {vllm_max_lora_rank(values[-1])}, so a "
                                      "few large adapters make every slot cost as much as the largest",
                    severity="note", rule="rank_uniformity")]


def _peft_type(facts: AdapterFacts) -> list[Problem]:
    peft_type = str(facts.config.get("peft_type", "")).upper()
    if peft_type == "LORA":
        return []
    return [Problem(facts.name, f"peft_type {peft_type or 'missing'!r}: vLLM serves LoRA adapters only",
                    rule="peft_type")]


def _dora(facts: AdapterFacts) -> list[Problem]:
    if not facts.config.get("use_dora"):
        return []
    return [Problem(facts.name, "DoRA adapter (use_dora): vLLM does not support DoRA", rule="use_dora")]


def _modules_to_save(facts: AdapterFacts) -> list[Problem]:
    saved = facts.config.get("modules_to_save")
    if not saved:
        return []
    return [Problem(facts.name, f"modules_to_save {saved}: vLLM only supports modules_to_save being None "
                                "(whole trained modules cannot be swapped per request)", rule="modules_to_save")]


def _bias(facts: AdapterFacts) -> list[Problem]:
    bias = facts.config.get("bias", "none")
    if bias in (None, "none"):
        return []
    return [Problem(facts.name, f"bias={bias!r}: vLLM serves LoRA without bias only (bias 'none')", rule="bias")]


def _tensor_names(facts: AdapterFacts) -> list[Problem]:
    odd = sorted(key for key in facts.shapes if not _KEY.match(key))
    if not odd:
        return []
    shown = ", ".join(odd[:3]) + (f" (and {len(odd) - 3} more)" if len(odd) > 3 else "")
    return [Problem(facts.name, f"tensors vLLM does not read as linear-layer LoRA weights: {shown} (expected "
                                "base_model.model.<module>.lora_A.weight / .lora_B.weight)", rule="tensor_names")]


def _rank(facts: AdapterFacts) -> list[Problem]:
    largest = VLLM_MAX_LORA_RANKS[-1]
    if facts.rank <= largest:
        return []
    return [Problem(facts.name, f"rank {facts.rank} exceeds vLLM's maximum {largest} (--max-lora-rank takes one of "
                                f"{list(VLLM_MAX_LORA_RANKS)}); merge it at a lower rank (SVD) or serve with PEFT",
                    rule="max_lora_rank")]


def _one_scale(facts: AdapterFacts) -> list[Problem]:
    config = facts.config
    rank, alpha = int(config.get("r") or 8), float(config.get("lora_alpha") or 8)
    served = alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)
    differing = []
    for module in facts.ranks:
        m_rank, m_alpha = module_rank_and_alpha(config, module)
        peft_scale = m_alpha / (math.sqrt(m_rank) if config.get("use_rslora") else m_rank)
        if not math.isclose(peft_scale, served, rel_tol=_SCALE_TOLERANCE):
            differing.append(f"{module} ({peft_scale:g})")
    if not differing:
        return []
    shown = ", ".join(differing[:3]) + (f" and {len(differing) - 3} more" if len(differing) > 3 else "")
    return [Problem(facts.name, f"per-module scales from rank_pattern/alpha_pattern ({shown}) differ from "
                                f"lora_alpha/r = {served:g}, the one scale vLLM applies to every module: its outputs "
                                "would differ from PEFT's", rule="scale")]


def _persona_vectors(file: str | None) -> Problem:
    return Problem("(persona vectors)", f"not servable by vLLM: the run adds a learned vector per persona ({file}) "
                                        "to every input embedding, and vLLM's LoRA serving takes token ids only; "
                                        "serve with PEFT, passing inputs_embeds = embed(input_ids) + "
                                        "vector[persona] (routing.json 'vectors')", rule="persona_vectors")


def _rank_range(ranks: Mapping[str, int]) -> str:
    values = sorted(set(ranks.values()))
    if not values:
        return "no ranks"
    return f"rank {values[0]}" if len(values) == 1 else f"ranks {values[0]} to {values[-1]}"


def _check_server(server: str) -> None:
    if server not in SERVERS:
        raise PersonalabError(f"unknown server {server!r}; personalab checks adapters against: {', '.join(SERVERS)}")
