"""A model's identity is its weights' content (baselines and diffs compare by it), and
``device: auto`` loads through accelerate's device_map with the same results as a plain load."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from icltest.models.loading import ModelSource, load_model, weights_sha256

SERIES = Path(__file__).resolve().parents[2] / "checkpoints" / "induction-2l"


def _by_hand(folder: Path) -> str:
    digest = hashlib.sha256()
    name = "model.safetensors"  # the only weight file; config.json is hashed on its own
    digest.update(f"{name}:{hashlib.sha256((folder / name).read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def test_identity_is_content_not_name(tmp_path: Path) -> None:
    early, late = SERIES / "step_000300", SERIES / "step_001500"
    renamed = shutil.copytree(late, tmp_path / "release-candidate")  # another name, the same files
    assert weights_sha256(late) == weights_sha256(renamed) == _by_hand(late)
    assert weights_sha256(early) != weights_sha256(late)  # same config and file sizes, other bytes
    (renamed / "model.safetensors").write_bytes((early / "model.safetensors").read_bytes())
    assert weights_sha256(renamed) == weights_sha256(early)
    (renamed / "config.json").write_text((late / "config.json").read_text().replace("4.", "9."))
    assert weights_sha256(renamed) == weights_sha256(early)  # a rewritten config is not other weights


def test_loaded_model_reports_its_weights_hash() -> None:
    folder = SERIES / "step_000300"
    info = load_model(ModelSource(path=str(folder))).info
    assert info["weights_sha256"] == _by_hand(folder)
    assert info["revision"] == f"local-sha256:{_by_hand(folder)[:16]}"
    assert info["config_sha256"] == hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()


def test_device_auto_loads_through_device_map_with_the_same_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("accelerate")
    import torch
    from transformers import AutoModelForCausalLM

    asked: list = []
    real = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        asked.append(kwargs.get("device_map"))
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    folder = str(SERIES / "step_001500")
    plain, auto = load_model(ModelSource(path=folder)), load_model(ModelSource(path=folder, device="auto"))
    assert asked == [None, "auto"]
    assert auto.info["device"] == "auto" and auto.info["device_map"]
    if not torch.cuda.is_available():
        assert auto.info["device_map"] == ["cpu"]  # a CPU-only machine: accelerate puts it all there
    ids = torch.arange(1, 41)[None]
    with torch.no_grad():
        a = plain.model(input_ids=ids).logits
        b = auto.model(input_ids=ids.to(next(auto.model.parameters()).device)).logits.to(a.device)
    assert torch.allclose(a, b, atol=1e-5)
