"""A model's shape (type, layers, heads, positions), read from its config without loading weights.

Why: a head the model lacks, a probe longer than its positions or an architecture without an
adapter is known from the config alone. Reading it takes milliseconds for a local folder
(``config.json``), a GGUF file (its header's key/value section, read here directly: the ``gguf``
package's reader parses every tensor record and took 2-12 s on the shipped models) and a hub id
whose config is already in the local hub cache, so the plugin checks specs against it at
collection. A hub id that is not cached is not read at collection (that may need the network):
its items check the loaded model's config before their first forward pass.

Torch-free on purpose: collection must stay cheap.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from icltest.errors import ModelUnavailable, UnsupportedArchitecture

GGUF_MODEL_TYPES = {"gemma3": "gemma3_text", "gptneox": "gpt_neox"}
"""GGUF ``general.architecture`` names that differ from transformers' ``model_type``."""


@dataclass(frozen=True)
class ModelGeometry:
    """What specs are checked against.

    Attributes:
        model_type: transformers' ``model_type`` (GGUF architecture names mapped onto it).
        n_layers: decoder layers.
        n_heads: query heads per layer.
        positions: the longest sequence the model takes, or None when its config does not say.
        positions_key: the config key ``positions`` came from, for messages.
        source: where the numbers were read ("config.json", "GGUF header", ...).
    """

    model_type: str
    n_layers: int
    n_heads: int
    positions: int | None
    positions_key: str
    source: str

    def describe(self) -> str:
        """``2 layers x 4 query heads: layers 0-1, heads 0-3`` (the wording of range errors)."""
        return (f"{self.n_layers} layers x {self.n_heads} query heads: layers 0-{self.n_layers - 1}, "
                f"heads 0-{self.n_heads - 1}")


def supported_arch(model_type: str, what: str) -> None:
    """Raise UnsupportedArchitecture, listing the supported types, unless an adapter row exists."""
    from icltest.models.adapters import ARCHITECTURES

    if model_type not in ARCHITECTURES:
        raise UnsupportedArchitecture(
            f"{what} is not supported; supported model types: {', '.join(sorted(ARCHITECTURES))} "
            "(adding one is a single ArchSpec row in icltest/models/adapters.py)")


def _first(config: dict[str, Any], names: tuple[str, ...], where: str) -> tuple[Any, str]:
    for name in names:
        if config.get(name) is not None:
            return config[name], name
    raise UnsupportedArchitecture(f"{where} has none of {', '.join(names)}; cannot tell the model's shape")


def from_config(config: dict[str, Any], where: str) -> ModelGeometry:
    """Geometry from a transformers config dict (multimodal configs: their ``text_config``).

    Raises:
        UnsupportedArchitecture: no adapter for ``model_type``, or the config lacks layer / head counts.
    """
    model_type = str(config.get("model_type") or "?")
    supported_arch(model_type, f"model_type '{model_type}' ({where})")
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    layers, _ = _first(text, ("num_hidden_layers", "n_layer"), where)
    heads, _ = _first(text, ("num_attention_heads", "n_head"), where)
    try:
        positions, key = _first(text, ("n_positions", "max_position_embeddings"), where)
    except UnsupportedArchitecture:
        positions, key = None, ""
    return ModelGeometry(model_type, int(layers), int(heads), int(positions) if positions else None, key, where)


def from_folder(folder: Path) -> ModelGeometry:
    """Geometry of a local transformers model folder, from its ``config.json``."""
    if not folder.exists():
        raise ModelUnavailable(f"model path '{folder}' does not exist; give the folder that holds config.json "
                               "and the weights (a relative path is relative to the spec file)")
    if not folder.is_dir():
        raise ModelUnavailable(f"model path '{folder}' is a file, not a folder; for a GGUF file give "
                               "{path: <its folder>, gguf_file: <its name>}")
    config = folder / "config.json"
    if not config.is_file():
        raise ModelUnavailable(f"model folder '{folder}' has no config.json, so it is not a transformers model "
                               "folder (for a GGUF file give gguf_file:)")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelUnavailable(f"cannot read {config}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelUnavailable(f"{config} is not a JSON object")
    return from_config(data, f"config.json of {folder}")


def from_gguf(path: Path) -> ModelGeometry:
    """Geometry of a GGUF file, from the key/value section of its header."""
    if not path.is_file():
        raise ModelUnavailable(f"GGUF file not found: {path}")
    meta = read_gguf_metadata(path)
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise ModelUnavailable(f"{path} has no general.architecture in its header; is it a model GGUF file?")
    model_type = GGUF_MODEL_TYPES.get(arch, arch)
    supported_arch(model_type, f"GGUF architecture '{arch}' ({path.name})")
    where = f"GGUF header of {path.name}"
    layers, _ = _first(meta, (f"{arch}.block_count",), where)
    heads, _ = _first(meta, (f"{arch}.attention.head_count",), where)
    positions = meta.get(f"{arch}.context_length")
    return ModelGeometry(model_type, int(layers), int(heads), int(positions) if positions else None,
                         f"{arch}.context_length", where)


def from_hub_cache(repo_id: str, revision: str | None) -> ModelGeometry | None:
    """Geometry of a hub model whose config.json is in the local hub cache, else None (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except (ImportError, ValueError, OSError):  # not a valid repo id (e.g. a local folder), no cache
        return None
    if not isinstance(cached, str):
        return None
    try:
        data = json.loads(Path(cached).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return from_config(data, f"cached config.json of '{repo_id}'") if isinstance(data, dict) else None


# ----------------------------------------------------------------------------- GGUF header

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_STRING = 1 << 26  # chat templates are long; 64 MiB means the file is corrupt


def _read(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise EOFError
    return data


def _string(handle: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", _read(handle, 8))
    if length > _MAX_STRING:
        raise ValueError(f"a {length}-byte string")
    return _read(handle, length).decode("utf-8", errors="replace")


def _value(handle: BinaryIO, kind: int) -> Any:
    """One value; arrays (the tokenizer's vocabulary, merges) are skipped and read as None."""
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, _read(handle, struct.calcsize(fmt)))[0]
    if kind == _STRING:
        return _string(handle)
    if kind == _ARRAY:
        item, count = struct.unpack("<IQ", _read(handle, 12))
        if item in _SCALARS:
            handle.seek(count * struct.calcsize(_SCALARS[item]), 1)
        else:
            for _ in range(count):
                _value(handle, item)
        return None
    raise ValueError(f"unknown value type {kind}")


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """The scalar and string key/values of a GGUF file's header (arrays skipped), without its tensors.

    Stops as soon as the architecture's layer count, head count and context length are known
    (they precede the tokenizer's large arrays in files written by the usual converters).

    Raises:
        ModelUnavailable: not a GGUF file, an unsupported GGUF version, or a truncated / corrupt header.
    """
    out: dict[str, Any] = {}
    try:
        with open(path, "rb") as handle:
            if _read(handle, 4) != b"GGUF":
                raise ModelUnavailable(f"{path} is not a GGUF file (it does not start with 'GGUF')")
            (version,) = struct.unpack("<I", _read(handle, 4))
            if version < 2:
                raise ModelUnavailable(f"{path} is GGUF version {version}; versions 2 and 3 are supported")
            _, n_kv = struct.unpack("<QQ", _read(handle, 16))
            for _ in range(n_kv):
                key = _string(handle)
                (kind,) = struct.unpack("<I", _read(handle, 4))
                out[key] = _value(handle, kind)
                arch = out.get("general.architecture")
                if arch and all(f"{arch}.{k}" in out for k in ("block_count", "attention.head_count", "context_length")):
                    break
    except (EOFError, ValueError, struct.error) as exc:
        raise ModelUnavailable(f"{path}: the GGUF header is truncated or corrupt ({exc or 'ends early'})") from None
    except OSError as exc:
        raise ModelUnavailable(f"cannot read {path}: {exc}") from None
    return out
