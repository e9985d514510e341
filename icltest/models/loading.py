"""Load a model once per session, from an alias, hub id, local folder or GGUF file.

GGUF checkpoints are dequantized by transformers, which is slow (~30-40 s for SmolLM2 on CPU,
plus a slow tokenizer conversion), so the first load saves the result as safetensors plus a
fast tokenizer under a cache folder keyed by the GGUF file's sha256; later loads read that.

What can fail cheaply is checked before anything heavy: the device first (a model moved to a
missing CUDA device fails only after a full load), then the config (an architecture without an
adapter, a missing folder, a hub id the hub does not know), then the weights. Every such failure
is a :class:`~icltest.errors.ModelError` with a one-line message saying what to do, never the
hub client's traceback.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from icltest.errors import DeviceUnavailable, UnsupportedArchitecture
from icltest.models import geometry as geo
from icltest.models.aliases import ALIASES, ModelUnavailable, _default_cache, resolve_alias

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelSource:
    """Everything that identifies one loaded model; the session cache key."""

    alias: str | None = None
    id: str | None = None
    revision: str | None = None
    path: str | None = None
    gguf_file: str | None = None
    dtype: str = "float32"
    device: str = "cpu"

    @classmethod
    def from_ref(cls, ref: Any) -> "ModelSource":
        """Build from a spec `ModelRef` (or anything with the same attributes), or an alias string."""
        if isinstance(ref, str):
            return cls(alias=ref) if ref in ALIASES else cls(id=ref)
        names = ("alias", "id", "revision", "path", "gguf_file", "dtype", "device")
        return cls(**{n: getattr(ref, n, None) for n in names if getattr(ref, n, None) is not None})

    @property
    def name(self) -> str:
        return self.alias or self.id or (self.path and Path(self.path).name) or "?"


@dataclass
class LoadedModel:
    """A model ready for hooked runs, with the facts every result must record."""

    model: Any
    tokenizer: Any
    adapter: Any
    source: ModelSource
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def geometry(self) -> geo.ModelGeometry:
        """The loaded model's shape: the adapter's counts, positions from its (text) config."""
        config = self.model.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        key = next((k for k in ("n_positions", "max_position_embeddings") if getattr(text, k, None)), "")
        return geo.ModelGeometry(self.adapter.model_type, self.adapter.n_layers, self.adapter.n_heads,
                                      int(getattr(text, key)) if key else None, key, "the loaded model's config")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _torch_dtype(name: str) -> Any:
    import torch

    if name not in DTYPES:
        raise ValueError(f"dtype '{name}' is not one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def _load_pretrained(location: str, *, revision: str | None, dtype: str, gguf_file: str | None = None,
                     device_map: str | None = None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"revision": revision} if revision else {}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
    extra = {"device_map": device_map} if device_map else {}
    model = AutoModelForCausalLM.from_pretrained(
        location, dtype=_torch_dtype(dtype), attn_implementation="eager", **kwargs, **extra
    )
    return model, tokenizer


def _load_gguf_cached(folder: Path, gguf_file: str, dtype: str, cache_root: Path,
                      device_map: str | None = None) -> tuple[Any, Any, dict]:
    """Load a GGUF file through the dequantized safetensors cache."""
    gguf_path = folder / gguf_file
    if not gguf_path.is_file():
        raise ModelUnavailable(f"GGUF file not found: {gguf_path}")
    sha = file_sha256(gguf_path)
    cached = cache_root / "dequantized" / sha[:20]
    info = {"gguf_file": str(gguf_path), "gguf_sha256": sha, "weights_sha256": sha,
            "revision": f"gguf-sha256:{sha[:16]}"}
    if (cached / "icltest-cache.json").is_file():
        model, tokenizer = _load_pretrained(str(cached), revision=None, dtype=dtype, device_map=device_map)
        info["cache"] = "hit"
        return model, tokenizer, info
    model, tokenizer = _load_pretrained(str(folder), revision=None, dtype="float32", gguf_file=gguf_file)
    tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _save_dequantized(model, tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "icltest-cache.json").write_text(json.dumps({"source": str(gguf_path), "sha256": sha}))
    if cached.exists():  # another process won the race; theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(cached)
    info["cache"] = "miss"
    if dtype != "float32":
        model = model.to(_torch_dtype(dtype))
    return model, tokenizer, info


def _save_dequantized(model: Any, folder: Path) -> None:
    """Write already-dequantized float weights + config (transformers refuses save_pretrained on
    GGUF-loaded models because it still marks them quantized, though the tensors are plain floats)."""
    from safetensors.torch import save_model

    config = model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})


def check_device(device: str) -> None:
    """Fail before loading when ``device`` does not exist here (no CUDA / MPS, index too high, a typo).

    Raises:
        DeviceUnavailable: with what this torch build offers.
    """
    import torch

    if device == "auto":  # accelerate places the layers over every visible device (device_map="auto")
        try:
            import accelerate  # noqa: F401
        except ImportError:
            raise DeviceUnavailable("device 'auto' loads with device_map=\"auto\", which needs the accelerate "
                                    "package: pip install accelerate") from None
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceUnavailable(f"device {device!r} is not a torch device ({exc}); use cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, no GPU found"
            raise DeviceUnavailable(f"device {device!r} was asked for but CUDA is not available (torch "
                                    f"{torch.__version__}: {build}); run on cpu or on a machine with a CUDA GPU")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceUnavailable(f"device {device!r} was asked for but this machine has {count} CUDA "
                                    f"device(s): cuda:0-cuda:{count - 1}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceUnavailable(f"device {device!r} was asked for but MPS (Apple GPU) is not available here; "
                                    "run on cpu")
    elif dev.type != "cpu":
        raise DeviceUnavailable(f"device {device!r} is not supported; use cpu, cuda, cuda:N, mps or auto")


def _hub_failure(source: ModelSource, exc: OSError) -> ModelUnavailable:
    """The hub client's multi-line error as one line that says what to do."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if len(reason) > 300:
        reason = reason[:297] + "..."
    revision = f" at revision '{source.revision}'" if source.revision else ""
    return ModelUnavailable(
        f"cannot load '{source.id}'{revision} from the Hugging Face hub ({type(exc).__name__}: {reason}); check "
        "the id and revision and that the hub is reachable (or the model is in the local hub cache), or "
        "download it and give its folder as model: {path: <folder>}")


def _hub_config(source: ModelSource) -> None:
    """Read a hub model's config (small) and check its architecture before any weights are fetched."""
    from transformers import AutoConfig

    kwargs: dict[str, Any] = {"revision": source.revision} if source.revision else {}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    try:
        config = AutoConfig.from_pretrained(source.id, **kwargs)
    except OSError as exc:
        raise _hub_failure(source, exc) from None
    except ValueError as exc:  # transformers does not know the model_type at all
        if "model type" not in str(exc) and "model_type" not in str(exc):
            raise
        raise UnsupportedArchitecture(f"'{source.id}': {' '.join(str(exc).split())[:300]}") from None
    geo.from_config(config.to_dict(), f"config of '{source.id}'")


def load_model(source: ModelSource, cache_dir: Path | None = None) -> LoadedModel:
    """Load without any cache (``icltest.session.Session.model`` loads each model once per process).

    Raises:
        ModelError: device missing, files missing or unreachable, architecture unsupported (a
            subclass each), all before any weights load.
    """
    from icltest.models.adapters import Adapter

    check_device(source.device)
    cache_root = Path(cache_dir) if cache_dir else _default_cache()
    start = time.perf_counter()
    device_map = "auto" if source.device == "auto" else None
    if source.alias:
        folder, gguf = resolve_alias(source.alias, cache_root)
        geo.from_gguf(folder / gguf)
        model, tokenizer, info = _load_gguf_cached(folder, gguf, source.dtype, cache_root, device_map)
    elif source.gguf_file and source.path:
        geo.from_gguf(Path(source.path) / source.gguf_file)
        model, tokenizer, info = _load_gguf_cached(Path(source.path), source.gguf_file, source.dtype, cache_root,
                                                   device_map)
    elif source.path:
        geo.from_folder(Path(source.path))
        try:
            model, tokenizer = _load_pretrained(source.path, revision=None, dtype=source.dtype, device_map=device_map)
        except OSError as exc:  # weights or tokenizer files missing / unreadable
            raise ModelUnavailable(f"cannot load the model in '{source.path}': {' '.join(str(exc).split())[:300]}") from None
        sha = weights_sha256(Path(source.path))
        info = {"revision": f"local-sha256:{sha[:16]}", "weights_sha256": sha,
                "config_sha256": config_sha256(Path(source.path))}
    elif source.id:
        _hub_config(source)
        try:
            model, tokenizer = _load_pretrained(
                source.id, revision=source.revision, dtype=source.dtype, gguf_file=source.gguf_file,
                device_map=device_map,
            )
        except OSError as exc:
            raise _hub_failure(source, exc) from None
        commit = getattr(model.config, "_commit_hash", None)
        info = {"revision": source.revision or commit or "unknown", "commit": commit,
                "weights_sha256": _hub_weights_sha256(source, model)}
    else:
        raise ModelUnavailable("model reference names no alias, id or path")
    if device_map is None:
        model.to(source.device)
    else:  # where accelerate put the layers (one device: transformers keeps no hf_device_map)
        placed = (getattr(model, "hf_device_map", None) or {}).values() or [p.device for p in model.parameters()]
        info["device_map"] = sorted({str(v) for v in placed})
    model.eval()
    adapter = Adapter.for_model(model)
    info.update(
        name=source.name,
        source={k: v for k, v in asdict(source).items() if v is not None},
        dtype=source.dtype,
        device=source.device,
        architecture=type(model).__name__,
        load_seconds=round(time.perf_counter() - start, 2),
        **adapter.describe(),
    )
    return LoadedModel(model=model, tokenizer=tokenizer, adapter=adapter, source=source, info=info)


WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")


def weights_sha256(folder: Path) -> str:
    """The model's identity by content: sha256 over each weight file's name and sha256.

    Baselines and diffs identify a model by this, not by its name or revision: two checkpoint
    folders (or a branch that serves another's files) with the same bytes are the same model, and
    a retrained model under an old name is not. ``config.json`` is left out (``save_pretrained``
    rewrites fields such as ``transformers_version``): it has its own :func:`config_sha256`.
    Hashing reads every weight file once (about a second per GB); the result is memoised per
    (path, size, mtime) for the process.
    """
    digest = hashlib.sha256()
    files = sorted({p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern) if p.is_file()})
    for path in files:
        digest.update(f"{path.name}:{_file_sha256_memo(path)}\n".encode())
    return digest.hexdigest()


def config_sha256(folder: Path) -> str | None:
    config = folder / "config.json"
    return file_sha256(config) if config.is_file() else None


def _hub_weights_sha256(source: "ModelSource", model: Any) -> str:
    """A hub model's weight files from the local hub cache (the same hash a folder of them gives);
    the loaded parameters' hash only when the files cannot be found."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(source.id, revision=source.revision, local_files_only=True))
        if any(folder.glob(pattern) for pattern in WEIGHT_PATTERNS):
            return weights_sha256(folder)
    except Exception:  # noqa: BLE001 - any failure to find the cached files falls back to the parameters
        pass
    return parameters_sha256(model)


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def _file_sha256_memo(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = file_sha256(path)
    return _SHA_MEMO[key]


def parameters_sha256(model: Any) -> str:
    """Identity of a hub model by its loaded parameters (name, dtype, shape, bytes; sorted by name)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
