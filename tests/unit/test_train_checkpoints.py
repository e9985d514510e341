"""scripts/train_checkpoints.py writes a reproducible checkpoint series that icltest loads.

A handful of steps on a tiny model: this checks the plumbing (checkpoints, tokenizer, metrics, the
loader, determinism), not the phase change, which needs the full run of a few minutes.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_checkpoints.py"
TINY = ["--steps", "4", "--save-steps", "0,2,4", "--vocab", "40", "--d-model", "16", "--heads", "2",
        "--positions", "33", "--min-length", "4", "--max-length", "16", "--batch", "4", "--threads", "1",
        "--quiet"]


def _script():
    spec = importlib.util.spec_from_file_location("train_checkpoints", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkpoints_are_written_reproducible_and_load_through_icltest(tmp_path, capsys):
    from icltest.models.loading import ModelSource
    from icltest.schema.spec import ProbeSpec
    from icltest.session import Session

    script = _script()
    assert script.main([str(tmp_path / "a"), *TINY]) == 0
    assert script.main([str(tmp_path / "b"), *TINY, "--no-scan"]) == 0
    capsys.readouterr()

    folders = sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_dir())
    assert folders == ["step_000000", "step_000002", "step_000004"]
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    rows = metrics["checkpoints"]
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert rows[0]["train_loss"] is None and rows[-1]["train_loss"] > 0
    assert metrics["probe"]["length"] == 16  # shrunk to fit 33 positions
    for row in rows:
        assert 0.0 <= row["induction"]["value"] <= 1.0 and row["induction"]["head"].startswith("L")

    # Same seed, same weights: the series is reproducible from the script.
    from safetensors.torch import load_file

    for name in folders:
        wa = load_file(tmp_path / "a" / name / "model.safetensors")
        wb = load_file(tmp_path / "b" / name / "model.safetensors")
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    last = load_file(tmp_path / "a" / "step_000004" / "model.safetensors")
    first = load_file(tmp_path / "a" / "step_000000" / "model.safetensors")
    assert not torch.equal(last["transformer.h.0.attn.c_attn.weight"], first["transformer.h.0.attn.c_attn.weight"])
    mlp = [k for k in last if ".mlp." in k]
    assert mlp and all(not last[k].any() for k in mlp)  # attention only: MLPs stay zero

    # icltest's own loader reads a checkpoint folder like any local model.
    session = Session()
    loaded = session.model(ModelSource(path=str(tmp_path / "a" / "step_000004")))
    assert loaded.adapter.n_layers == 2 and loaded.adapter.n_heads == 2
    run = session.pattern_run(loaded, ProbeSpec(length=16, repeats=2, batch=4, seed=0))
    assert tuple(run.scores["induction"].shape) == (2, 2)
