"""Load a model once per session, from an alias, hub id, local folder or GGUF file.

GGUF checkpoints are dequantized by transformers, which is slow (~30-40 s for SmolLM2 on CPU,
plus a slow tokenizer conversion), so the first load saves the result as safetensors plus a
fast tokenizer under a cache folder keyed by the GGUF file's sha256; later loads read that.
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


def _load_pretrained(location: str, *, revision: str | None, dtype: str, gguf_file: str | None = None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"revision": revision} if revision else {}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        location, dtype=_torch_dtype(dtype), attn_implementation="eager", **kwargs
    )
    return model, tokenizer


def _load_gguf_cached(folder: Path, gguf_file: str, dtype: str, cache_root: Path) -> tuple[Any, Any, dict]:
    """Load a GGUF file through the dequantized safetensors cache."""
    gguf_path = folder / gguf_file
    if not gguf_path.is_file():
        raise ModelUnavailable(f"GGUF file not found: {gguf_path}")
    sha = file_sha256(gguf_path)
    cached = cache_root / "dequantized" / sha[:20]
    info = {"gguf_file": str(gguf_path), "gguf_sha256": sha, "revision": f"gguf-sha256:{sha[:16]}"}
    if (cached / "icltest-cache.json").is_file():
        model, tokenizer = _load_pretrained(str(cached), revision=None, dtype=dtype)
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


def load_model(source: ModelSource, cache_dir: Path | None = None) -> LoadedModel:
    """Load without any cache (``icltest.session.Session.model`` loads each model once per process)."""
    from icltest.models.adapters import Adapter

    cache_root = Path(cache_dir) if cache_dir else _default_cache()
    start = time.perf_counter()
    if source.alias:
        folder, gguf = resolve_alias(source.alias, cache_root)
        model, tokenizer, info = _load_gguf_cached(folder, gguf, source.dtype, cache_root)
    elif source.gguf_file and source.path:
        model, tokenizer, info = _load_gguf_cached(Path(source.path), source.gguf_file, source.dtype, cache_root)
    elif source.path:
        if not Path(source.path).is_dir():
            raise ModelUnavailable(f"model path '{source.path}' is not a directory")
        model, tokenizer = _load_pretrained(source.path, revision=None, dtype=source.dtype)
        info = {"revision": _folder_fingerprint(Path(source.path))}
    elif source.id:
        model, tokenizer = _load_pretrained(
            source.id, revision=source.revision, dtype=source.dtype, gguf_file=source.gguf_file
        )
        commit = getattr(model.config, "_commit_hash", None)
        info = {"revision": source.revision or commit or "unknown", "commit": commit}
    else:
        raise ModelUnavailable("model reference names no alias, id or path")
    model.to(source.device)
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


def _folder_fingerprint(folder: Path) -> str:
    """A cheap content fingerprint of a local model folder (config text + weight file sizes)."""
    digest = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return f"local-sha256:{digest.hexdigest()[:16]}"
