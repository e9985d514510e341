"""Model errors a user can act on, through pytester: one short line at the spec's `model:` key, the
load tried once per session, and nothing loaded (no weights, no forward pass) when the failure can
be known from the device or the model's config alone.

The constructed model (icltest/testing/known_circuit.py) is a GPT-2 with 2 layers x 4 heads and
``n_positions=64``; the expected messages follow from that.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch  # noqa: F401  (imported before pytester snapshots sys.modules: a re-import of numpy crashes)
import transformers  # noqa: F401

CLAIMS = ("  - id: a\n    kind: head_score\n    score: induction\n    heads: [1.0, 0.0]\n    expect: '>= 0.5'\n"
          "    probe: {kind: repeated_random, length: 10, repeats: 2, batch: 2}\n")


def _spec(model: str, claims: str = CLAIMS) -> str:
    return f"schema_version: 1\nmodel: {model}\nclaims:\n{claims}"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call into transformers' loaders (config, tokenizer, weights), whoever makes it."""
    import transformers

    calls: list[str] = []
    for cls in (transformers.AutoConfig, transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        original = cls.from_pretrained

        def counting(*args: object, _original: object = original, _name: str = cls.__name__, **kwargs: object):
            calls.append(_name)
            return _original(*args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(cls, "from_pretrained", counting)
    return calls


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network here: make the hub fail at once instead of after its retries."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _clean(out: str) -> None:
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    assert not re.search(r"^E\s", out, re.M), out


def _failure_lines(out: str, name: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(f"{name}: ")]


@pytest.mark.usefixtures("offline")
def test_unknown_hub_id_is_one_line_at_the_model_key_tried_once(pytester: pytest.Pytester, attempts: list[str]) -> None:
    text = _spec("{id: nope/nope}")
    pytester.makefile(".yaml", icl_hub=text)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    _clean(out)
    lines = _failure_lines(out, "ModelUnavailable")
    assert len(lines) == 2 and lines[0] == lines[1], out
    assert lines[0].startswith(f"ModelUnavailable: icl_hub.yaml:{_line_of(text, 'model:')}:1: model: ")
    assert "'nope/nope'" in lines[0] and "path:" in lines[0], lines[0]  # says what to do instead
    assert len(attempts) == 1, attempts  # the second item did not try again
    assert len(out.splitlines()) < 60, out


def test_missing_local_path_is_one_line_at_the_model_key_never_loaded(pytester: pytest.Pytester,
                                                                        attempts: list[str]) -> None:
    text = _spec("{path: /does/not/exist}")
    pytester.makefile(".yaml", icl_path=text)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    _clean(out)
    lines = _failure_lines(out, "ModelUnavailable")
    assert len(lines) == 2 and lines[0] == lines[1], out
    assert lines[0].startswith(f"ModelUnavailable: icl_path.yaml:{_line_of(text, 'model:')}:1: model: ")
    assert "/does/not/exist" in lines[0] and "does not exist" in lines[0], lines[0]
    assert attempts == []


@pytest.mark.parametrize("where", ["spec", "option"])
def test_cuda_without_cuda_fails_before_loading(pytester: pytest.Pytester, circuit_dir: Path, attempts: list[str],
                                                monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = f"{{path: '{circuit_dir}', device: cuda}}" if where == "spec" else f"{{path: '{circuit_dir}'}}"
    pytester.makefile(".yaml", icl_cuda=_spec(model))
    result = pytester.runpytest("-p", "no:cacheprovider", *(["--icl-device", "cuda"] if where == "option" else []))
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    _clean(out)
    lines = _failure_lines(out, "DeviceUnavailable")
    assert len(lines) == 2 and lines[0].startswith("DeviceUnavailable: icl_cuda.yaml:2:1: model: "), out
    assert "device 'cuda'" in lines[0] and "CUDA is not available" in lines[0], lines[0]
    assert ("--icl-device" in lines[0]) == (where == "option"), lines[0]
    assert attempts == []  # not even the config: the device is checked first


def test_unsupported_architecture_from_config_json_before_any_weights(pytester: pytest.Pytester, tmp_path: Path,
                                                                     attempts: list[str]) -> None:
    import transformers

    config = transformers.OPTConfig(num_hidden_layers=1, hidden_size=16, ffn_dim=32, num_attention_heads=2,
                                    vocab_size=40, max_position_embeddings=32, word_embed_proj_dim=16)
    transformers.OPTForCausalLM(config).save_pretrained(tmp_path / "opt")
    attempts.clear()
    pytester.makefile(".yaml", icl_opt=_spec(f"{{path: '{tmp_path / 'opt'}'}}"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    _clean(out)
    lines = _failure_lines(out, "UnsupportedArchitecture")
    assert len(lines) == 2 and lines[0].startswith("UnsupportedArchitecture: icl_opt.yaml:2:1: model: "), out
    assert "model_type 'opt'" in lines[0] and "gpt2" in lines[0] and "gemma3_text" in lines[0], lines[0]
    assert attempts == []


def test_unsupported_gguf_architecture_from_its_header(pytester: pytest.Pytester, tmp_path: Path,
                                                       attempts: list[str]) -> None:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "bloom")
    writer.add_block_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    pytester.makefile(".yaml", icl_gguf=_spec(f"{{path: '{tmp_path}', gguf_file: m.gguf}}"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    _clean(out)
    lines = _failure_lines(out, "UnsupportedArchitecture")
    assert len(lines) == 2 and "GGUF architecture 'bloom'" in lines[0], out
    assert attempts == []


def test_probe_longer_than_the_positions_is_a_collection_error(pytester: pytest.Pytester, circuit_dir: Path,
                                                              attempts: list[str]) -> None:
    text = (f"schema_version: 1\nmodel: {{path: '{circuit_dir}'}}\n"
            "defaults:\n  probe: {kind: repeated_random, length: 40, repeats: 2, batch: 2}\nclaims:\n"
            "  - id: own\n    kind: head_score\n    score: induction\n    heads: [1.0]\n    expect: '>= 0.5'\n"
            "    probe: {kind: repeated_random, length: 50, repeats: 2, batch: 2}\n"
            "  - id: inherits\n    kind: head_rank\n    score: induction\n    head: 1.0\n    expect: {rank: '<= 1'}\n")
    pytester.makefile(".yaml", icl_long=text)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    _clean(out)
    assert (f"icl_long.yaml:{_line_of(text, 'length: 50')}:12: claims[0].probe: the probe is 101 tokens long "
            "(BOS + 50 x 2) but the model has 64 positions (n_positions)") in out, out
    assert (f"icl_long.yaml:{_line_of(text, 'length: 40')}:10: defaults.probe: the probe is 81 tokens long "
            "(BOS + 40 x 2) but the model has 64 positions (n_positions); used by claims[1]") in out, out
    assert "AutoModelForCausalLM" not in attempts  # read from config.json: no weights, no forward pass


def test_heads_out_of_range_are_a_collection_error_at_each_head(pytester: pytest.Pytester, circuit_dir: Path,
                                                               attempts: list[str]) -> None:
    text = _spec(f"{{path: '{circuit_dir}'}}",
                 "  - id: listed\n    kind: head_score\n    score: induction\n    heads: [1.0, 7.0, 1.9]\n"
                 "    expect: '>= 0.5'\n"
                 "  - id: layers\n    kind: head_score\n    score: induction\n    heads: {layers: '0-5'}\n"
                 "    expect: '< 0.5'\n"
                 "  - id: ranked\n    kind: head_rank\n    score: induction\n    head: [3, 0]\n    expect: {rank: '<= 1'}\n")
    pytester.makefile(".yaml", icl_heads=text)
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    _clean(out)
    geometry = "(2 layers x 4 query heads: layers 0-1, heads 0-3)"
    line = _line_of(text, "[1.0, 7.0, 1.9]")
    assert f"icl_heads.yaml:{line}:18: claims[0].heads[1]: head L7H0 is out of range for this model {geometry}" in out
    assert f"icl_heads.yaml:{line}:23: claims[0].heads[2]: head L1H9 is out of range for this model {geometry}" in out
    assert (f"icl_heads.yaml:{_line_of(text, '0-5')}:21: claims[1].heads.layers: layers 2-5 are out of range for "
            f"this model {geometry}") in out
    assert f"icl_heads.yaml:{_line_of(text, 'head: [3, 0]')}:11: claims[2].head: head L3H0 is out of range" in out
    assert attempts.count("AutoModelForCausalLM") == 0


def test_hub_geometry_is_checked_at_the_start_of_the_item_before_any_forward(pytester: pytest.Pytester,
                                                                             circuit_dir: Path) -> None:
    """A hub id's config is not read at collection (it may need the network): the item checks the
    loaded model's config before its first forward pass. A local folder given as `id:` takes the hub path."""
    text = _spec(f"{{id: '{circuit_dir}'}}", "  - id: far\n    kind: head_score\n    score: induction\n"
                                             "    heads: [7.0]\n    expect: '>= 0.5'\n"
                                             "    probe: {kind: repeated_random, length: 10, repeats: 2, batch: 2}\n")
    pytester.makefile(".yaml", icl_hubrange=text)
    result = pytester.runpytest("-p", "no:cacheprovider", "--icl-json", "out.json")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    _clean(out)
    assert (f"ClaimSpecError: icl_hubrange.yaml:{_line_of(text, '[7.0]')}:13: claims[0].heads[0]: head L7H0 is out "
            "of range for this model (2 layers x 4 query heads") in out, out
    report = json.loads((pytester.path / "out.json").read_text())
    assert report["summary"]["forward_passes"] == 0
