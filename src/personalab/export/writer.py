"""``export_run``: a trained run written out for serving, in a folder a server can use
without personalab.

    OUT/adapters/<folder>/          one plain PEFT LoRA folder per distinct route
    OUT/routing.json                persona -> adapter folder (ensembles: members and weights),
                                    the default for unknown personas, what each folder holds,
                                    each persona's identifier with the input format when
                                    the run prepends identifiers to inputs (persona_token), and
                                    per-persona choice offsets (persona_bias)
    OUT/router/                     the run's router for new personas (moe runs), copied
    OUT/classifier_head.safetensors a classifier's head (part of the base, not a LoRA tensor)
    OUT/persona_vectors.safetensors learned persona vectors (persona_token, identity learned): a
                                    server adds them to the input embeddings (not vLLM)
    OUT/export.json                 base model, adapters, ranks, merge errors, compatibility

A mixture route is merged (``materialize_lossless``) in a scratch bank holding copies of its
sources, so the run itself is never written to. The whole folder is built in a hidden
staging folder beside OUT and renamed into place: OUT is either absent (or empty) or complete.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from personalab.bank import AdapterBank
from personalab.bank.merge import materialize_lossless
from personalab.data.atomic import atomic_write_json, move_folder_into_place, staging_folder
from personalab.data.load import load_spec
from personalab.engine.routes import Route
from personalab.errors import PersonalabError
from personalab.export.compat import CompatReport, check_export, read_facts
from personalab.export.plan import (
    ADAPTERS_DIR, VECTORS_FILE, VECTORS_NOTE, bias_document, distinct_routes, folder_name, routing_document,
    served_name,
)
from personalab.routing import Ensemble, PersonaBias, Personalizer, personalizer_from_json, vectors_of
from personalab.run.rundir import PERSONALIZER, RunConfig, run_config
from personalab.train.head import HEAD_FILE

FORMAT = 1
ROUTING = "routing.json"
EXPORT_INFO = "export.json"
ROUTER_DIR = "router"
ROUTER_FILES = ("router.json", "router.safetensors")
JSON_STYLE = {"indent": 2, "ensure_ascii": False}  # for people reading them, ids in any script
HEAD_NOTE = (
    "the sequence-classification head (e.g. classifier.weight / classifier.bias), trained with the first "
    "adapter and shared by all of them: part of the frozen base, not a LoRA tensor. A server must load it into "
    "AutoModelForSequenceClassification (same label order, see its metadata) before loading any adapter"
)
ROUTER_NOTE = (
    "for a persona not in 'personas': embed its profile text (all-MiniLM-L6-v2, L2-normalised), score each "
    "expert by the cosine with its profile key (router.safetensors 'profile_keys'), keep the top_k, softmax at "
    "'temperature' (0: the nearest expert alone) and serve that weighted merge of the experts' adapters"
)


@dataclass(frozen=True)
class ExportedAdapter:
    folder: str  # under OUT/adapters
    route: Route
    source: str  # "bank" (copied as it is) or "merged"
    rank: int
    method: str | None = None  # the merge method of a merged adapter
    max_relative_error: float | None = None  # of a merged adapter, against sum_i w_i dW_i

    def to_json(self) -> dict[str, Any]:
        return {"path": f"{ADAPTERS_DIR}/{self.folder}", "route": self.route.to_json(), "source": self.source,
                "rank": self.rank, "method": self.method, "max_relative_error": self.max_relative_error}


@dataclass
class ExportReport:
    out: Path
    adapters: list[ExportedAdapter]
    routing: dict[str, Any]
    head: Path | None = None
    router: Path | None = None
    vectors: Path | None = None
    compatibility: CompatReport | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What was written, then the compatibility report, as a person reads them."""
        lines = [f"wrote {self.out}:"]
        for adapter in self.adapters:
            merged = (f"  (merged: {adapter.method}, max relative error {adapter.max_relative_error:.1e})"
                      if adapter.source == "merged" else "")
            lines.append(f"  {ADAPTERS_DIR}/{adapter.folder}  <- {adapter.route}  rank {adapter.rank}{merged}")
        personas = len(self.routing["personas"])
        lines.append(f"  {ROUTING}  {personas} personas -> {len(self.adapters)} adapters; default for unknown "
                     f"personas: {_describe_target(self.routing['default'])}")
        if self.head is not None:
            lines.append(f"  {HEAD_FILE}  the classifier head: a server needs it (not a LoRA tensor)")
        if self.router is not None:
            lines.append(f"  {ROUTER_DIR}/  the router for new personas")
        if self.vectors is not None:
            lines.append(f"  {VECTORS_FILE}  learned persona vectors: a server must add each persona's to its input "
                         "embeddings (vLLM cannot; see routing.json 'vectors')")
        if "input_format" in self.routing:
            lines.append(f"  {ROUTING}  also gives personas' identifiers: serve each input as "
                         f"{self.routing['input_format']!r} (a new persona: the input alone)")
        lines.append(f"  {EXPORT_INFO}")
        lines += [f"  note: {note}" for note in self.notes]
        if self.compatibility is not None:
            lines += ["", "compatibility:", *("  " + line for line in self.compatibility.lines())]
        return lines


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, check: bool = True) -> ExportReport:
    """Write trained run ``run_dir`` into ``out`` (a new or empty folder) for serving; with
    ``check``, check the adapters against vLLM and record the report in ``export.json``."""
    run_dir, out = Path(run_dir), Path(out)
    _check_trained(run_dir)
    _check_out(out)
    config = run_config(run_dir)
    personalizer = personalizer_from_json(json.loads((run_dir / PERSONALIZER).read_text(encoding="utf-8")))
    # Offsets on the choice scores are no adapter: the routes are exported as the inner
    # strategy's, and the offsets go into routing.json for the client to add.
    bias = personalizer if isinstance(personalizer, PersonaBias) else None
    personalizer = bias.inner if bias else personalizer
    bank = AdapterBank(run_dir / "bank")
    personas = _personas(config, personalizer)
    router = _router_info(run_dir)
    experts = [Route.single(name) for name in (router or {}).get("experts", [])]
    routes = [r for r in distinct_routes(personalizer, personas, experts) if served_name(r) is not None]
    with staging_folder(out.parent.resolve(), prefix=f".{out.name}.") as staging:
        build = staging / "export"
        build.mkdir()
        adapters = [_write_adapter(bank, route, build / ADAPTERS_DIR, staging / "work") for route in routes]
        task = load_spec(config.data).task
        report = ExportReport(out, adapters, routing_document(personalizer, personas, _router_entry(router), task))
        report.head = _copy_head(run_dir, build, out)
        report.router = _copy_router(run_dir, build, out, router)
        report.vectors = _copy_vectors(bank, personalizer, build, out)
        report.notes = _merge_notes(adapters)
        if isinstance(personalizer, Ensemble):
            mixes = "next-token distributions at every decoding step" if task == "generation" else "choice scores"
            report.notes.append(f"an ensemble: NOT servable by a single-adapter server as it is (one request, one "
                                f"adapter); each member adapter is, and the client mixes their {mixes} "
                                f"({ROUTING} 'note' says how)")
        if bias:
            report.routing["persona_bias"] = bias_document(bias)
            report.notes.append(f"{ROUTING} 'persona_bias': add the persona's offsets to the choice scores (a "
                                "server that returns only the adapter's answer misses them)")
        atomic_write_json(build / ROUTING, report.routing, **JSON_STYLE)
        info = _export_info(run_dir, config, bank, report)
        atomic_write_json(build / EXPORT_INFO, info, **JSON_STYLE)
        if check:
            report.compatibility = check_export(build)
            info["compatibility"] = {report.compatibility.server: report.compatibility.to_json()}
            atomic_write_json(build / EXPORT_INFO, info, **JSON_STYLE)
        move_folder_into_place(build, out)  # ``out`` was checked absent or empty
    return report


# --- steps ------------------------------------------------------------------------------------


def _check_trained(run_dir: Path) -> None:
    if not (run_dir / PERSONALIZER).is_file():
        raise PersonalabError(f"{run_dir} is not a trained run (no {PERSONALIZER}); train one with `personalab train`")


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PersonalabError(f"{out} already exists and is not an empty folder; export into a new folder")


def _personas(config: RunConfig, personalizer: Personalizer) -> list[str]:
    """The run's personas: the dataset's, then any the personalizer routes that it lacks."""
    from personalab.data import load_dataset

    listed = list(load_dataset(config.data).personas)
    tables = personalizer.members if isinstance(personalizer, Ensemble) else [(personalizer, 1.0)]
    routed = [pid for table, _ in tables for pid in table.table]
    return list(dict.fromkeys([*listed, *routed]))


def _write_adapter(bank: AdapterBank, route: Route, adapters_dir: Path, work: Path) -> ExportedAdapter:
    """One route as one plain PEFT folder: a single bank adapter copied as it is (the bank
    checks its files' digests), a mixture merged without loss in a scratch bank first."""
    folder, name = folder_name(route), served_name(route)
    target = adapters_dir / folder
    single = route.single_adapter
    if single is not None:
        bank.export(single, target)
        return ExportedAdapter(folder, route, "bank", _rank(target))
    scratch = _scratch_bank(bank, route.adapters, work)
    names, weights = zip(*route.weights)
    result = materialize_lossless(scratch, names, weights, name)
    scratch.export(name, target)
    return ExportedAdapter(folder, route, "merged", _rank(target), result.method, result.max_error)


def _scratch_bank(bank: AdapterBank, names: tuple[str, ...], work: Path) -> AdapterBank:
    """A bank under ``work`` holding verified copies of ``names`` (merges write into the
    bank they read from, and the run's bank is not ours to change)."""
    scratch = AdapterBank(work / "bank")
    held = set(scratch.names())
    for name in names:
        if name in held:
            continue
        copy = work / "sources" / folder_name(Route.single(name))
        bank.export(name, copy)
        scratch.import_adapter(name, copy)
    return scratch


def _rank(folder: Path) -> int:
    facts, problems = read_facts(folder, folder.name)
    if facts is None:
        raise PersonalabError(f"exported adapter {folder} cannot be read back: {problems[0]}")
    return facts.rank


def _copy_head(run_dir: Path, build: Path, out: Path) -> Path | None:
    source = run_dir / HEAD_FILE
    if not source.is_file():
        return None
    shutil.copyfile(source, build / HEAD_FILE)
    return out / HEAD_FILE


def _copy_vectors(bank: AdapterBank, personalizer: Personalizer, build: Path, out: Path) -> Path | None:
    """The persona vectors the routes add, copied as the bank holds them (digest checked)."""
    source = vectors_of(personalizer)
    if not source:
        return None
    shutil.copyfile(bank.vectors_path(source), build / VECTORS_FILE)
    return out / VECTORS_FILE


def _router_info(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / ROUTER_DIR / "router.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _router_entry(router: dict[str, Any] | None) -> dict[str, Any] | None:
    if router is None:
        return None
    experts = {name: folder_name(Route.single(name)) for name in router.get("experts", [])}
    return {"path": ROUTER_DIR, "experts": experts, "top_k": router.get("top_k"),
            "temperature": router.get("temperature"), "note": ROUTER_NOTE}


def _copy_router(run_dir: Path, build: Path, out: Path, router: dict[str, Any] | None) -> Path | None:
    if router is None:
        return None
    (build / ROUTER_DIR).mkdir(parents=True)
    for name in ROUTER_FILES:
        if (run_dir / ROUTER_DIR / name).is_file():
            shutil.copyfile(run_dir / ROUTER_DIR / name, build / ROUTER_DIR / name)
    return out / ROUTER_DIR


def _merge_notes(adapters: list[ExportedAdapter]) -> list[str]:
    # A lossless merge is exact up to rounding; anything larger means the merge had to
    # truncate (an SVD below some layer's size) and the served adapter is not the mixture.
    lossy = [a for a in adapters if a.max_relative_error is not None and a.max_relative_error > 1e-4]
    return [f"{a.folder}: merged with relative error {a.max_relative_error:.2e} (not exactly the mixture)"
            for a in lossy]


def _export_info(run_dir: Path, config: RunConfig, bank: AdapterBank, report: ExportReport) -> dict[str, Any]:
    from personalab import __version__

    return {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "personalab": __version__,
        "run": str(run_dir.resolve()),
        "strategy": config.strategy,
        "base_model": _base_model(config, bank, run_dir),
        "adapters": {a.folder: a.to_json() for a in report.adapters},
        "routing": ROUTING,
        "classifier_head": {"file": HEAD_FILE, "note": HEAD_NOTE} if report.head is not None else None,
        "router": ROUTER_DIR if report.router is not None else None,
        "persona_vectors": {"file": VECTORS_FILE, "note": VECTORS_NOTE} if report.vectors is not None else None,
        "compatibility": None,
        "notes": report.notes,
    }


def _base_model(config: RunConfig, bank: AdapterBank, run_dir: Path) -> dict[str, Any]:
    """The base as the bank recorded it, with the run config's model name, and the backend
    kind and ``model_type`` from the model's own config (a server needs to know both)."""
    recorded = {k: v for k, v in (bank.base_model() or {}).items() if k != "module_shapes"}
    kind, model_type = _kind_and_type(config, run_dir)
    return {"name": config.model.name, **recorded, "model_type": recorded.get("model_type") or model_type,
            "kind": kind}


def _kind_and_type(config: RunConfig, run_dir: Path) -> tuple[str, str | None]:
    from personalab.models import resolve_model

    try:
        resolved = resolve_model(config.model)  # reads config.json only, no weights
    except PersonalabError:
        # The base is not on this machine: a classifier always has its trained head.
        kind = config.model.kind or ("classifier" if (run_dir / HEAD_FILE).is_file() else "causal_lm")
        return kind, None
    return resolved.kind, getattr(resolved.config, "model_type", None)


def _describe_target(target: Any) -> str:
    if target is None:
        return "the base model alone"
    if isinstance(target, str):
        return target
    return " + ".join(f"{m['weight']:g} x {m['adapter']}" for m in target["members"]) + f" ({target['space']})"
