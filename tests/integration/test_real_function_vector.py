"""Function vectors on the real SmolLM2-135M and Gemma 3 270M weights.

Expected values come from the run layer (zero-shot accuracy as ``task_accuracy`` measures it) and
from a plain forward hook on the decoder layer, not from the function-vector code.
"""
from __future__ import annotations

import pytest
import torch

from icltest.claims import function_vector as fvc
from icltest.claims.base import ClaimContext
from icltest.interventions import function_vectors as fv
from icltest.runs.run import Run
from icltest.schema.spec import MetricSpec
from icltest.session import Session


@pytest.mark.slow
@pytest.mark.parametrize("alias", ["smollm2-135m", "gemma3-270m"])
def test_injection_matches_a_plain_hook_and_clean_matches_the_run(real_model, alias) -> None:
    loaded = real_model(alias)
    run = Run(Session(), loaded, MetricSpec(name="accuracy", task="capitalize", shots=0, n=16, seed=0, split="test"))
    inputs = run.inputs
    layer = loaded.adapter.n_layers // 3
    vector = torch.randn(loaded.model.config.get_text_config().hidden_size, generator=torch.Generator().manual_seed(0)) * 50
    clean, injected = fv.accuracy_with(loaded, inputs, [None, (layer, vector)])
    assert clean == pytest.approx(run.value())  # the run layer's zero-shot accuracy, same prompts

    where = fv.prompt_ends(inputs)
    block = loaded.adapter.layers()[layer]

    def add(_m, _a, out):
        h = out[0] if isinstance(out, tuple) else out
        h = h + where[..., None].to(h.dtype) * vector.to(h.dtype)
        return (h,) + tuple(out[1:]) if isinstance(out, tuple) else h

    handle = block.register_forward_hook(add)
    try:
        with torch.no_grad():
            logits = loaded.model(input_ids=inputs.tokens, attention_mask=inputs.mask,
                                  position_ids=(inputs.mask.cumsum(-1) - 1).clamp(min=0)).logits[:, -inputs.kept:]
    finally:
        handle.remove()
    from icltest.scores.metrics import answer_matches

    assert injected == pytest.approx(float(answer_matches(logits.float(), inputs.answer_tokens, inputs.full).float().mean()))


@pytest.mark.slow
@pytest.mark.parametrize("alias", ["smollm2-135m", "gemma3-270m"])
def test_claim_reports_consistent_numbers(real_model, alias) -> None:
    loaded = real_model(alias)
    claim = fvc.Schema.model_validate({"id": "fv", "kind": "function_vector", "task": "capitalize", "n": 16, "n_test": 16,
                                       "heads": {"top": 5}, "sweep": {"layers": [1, loaded.adapter.n_layers // 3]},
                                       "control": {"draws": 3}, "expect": {"gain": ">= 0"}})
    ctx = ClaimContext(session=Session(), loaded=loaded, probe_spec=None, location=lambda key: f"s.yaml:{key}")
    m = fvc.measure(claim, fvc.targets(claim)[0], ctx)
    d = m.details
    assert d["layer"] == loaded.adapter.n_layers // 3 and len(d["heads"]) == 5
    assert dict(map(tuple, d["sweeps"][0]["points"]))[d["layer"]] == pytest.approx(m.value)
    assert d["gain"] == pytest.approx(m.value - d["zero_shot"], abs=1e-4)
    cie = [h["cie"] for h in d["heads"]]
    assert all(c == c for c in cie)  # chosen by a finite CIE
    assert d["control"]["n"] == 3 and 0 < d["control"]["p"] <= 1
