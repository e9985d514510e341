"""Model geometry read from configs and GGUF headers without loading weights.

Expected values are the ones written into the files here, not values the reader computed.
"""
from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from icltest.errors import ModelUnavailable, UnsupportedArchitecture
from icltest.models import geometry


def _write_gguf(path: Path, arch: str, **ints: int) -> Path:
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(300)])  # a string array to skip
    writer.add_array("tokenizer.ggml.scores", [0.5] * 300)  # a scalar array to skip
    writer.add_string("general.name", "tiny")
    for key, value in ints.items():
        writer.add_uint32(f"{arch}.{key.replace('__', '.')}", value)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_header_gives_layers_heads_positions(tmp_path: Path) -> None:
    path = _write_gguf(tmp_path / "m.gguf", "gemma3", block_count=18, attention__head_count=4, context_length=32768)
    meta = geometry.read_gguf_metadata(path)
    assert meta["general.architecture"] == "gemma3" and meta["general.name"] == "tiny"
    assert meta["tokenizer.ggml.tokens"] is None  # arrays are skipped, not read
    g = geometry.from_gguf(path)
    assert (g.model_type, g.n_layers, g.n_heads, g.positions) == ("gemma3_text", 18, 4, 32768)


def test_truncated_or_foreign_gguf_is_model_unavailable(tmp_path: Path) -> None:
    path = _write_gguf(tmp_path / "m.gguf", "llama", block_count=2, attention__head_count=4, context_length=64)
    data = path.read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:200])
    with pytest.raises(ModelUnavailable, match="truncated or corrupt"):
        geometry.read_gguf_metadata(tmp_path / "cut.gguf")
    (tmp_path / "no.gguf").write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(ModelUnavailable, match="is not a GGUF file"):
        geometry.from_gguf(tmp_path / "no.gguf")


@pytest.mark.parametrize("config, expected", [
    ({"model_type": "gpt2", "n_layer": 2, "n_head": 4, "n_positions": 64}, ("gpt2", 2, 4, 64, "n_positions")),
    ({"model_type": "gemma3", "text_config": {"num_hidden_layers": 3, "num_attention_heads": 8,
                                              "max_position_embeddings": 128}, "vision_config": {}},
     ("gemma3", 3, 8, 128, "max_position_embeddings")),
])
def test_config_geometry(config: dict, expected: tuple, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(config))
    g = geometry.from_folder(tmp_path)
    assert (g.model_type, g.n_layers, g.n_heads, g.positions, g.positions_key) == expected


def test_unsupported_and_missing(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bloom", "n_layer": 2}))
    with pytest.raises(UnsupportedArchitecture, match=r"model_type 'bloom' .* supported model types: gemma, "):
        geometry.from_folder(tmp_path)
    with pytest.raises(ModelUnavailable, match="does not exist"):
        geometry.from_folder(tmp_path / "nope")
    with pytest.raises(ModelUnavailable, match="has no config.json"):
        geometry.from_folder(tmp_path.parent)
