"""Multimodal Gemma 3 checkpoints (``Gemma3ForConditionalGeneration``): the text decoder sits under
``model.language_model``, beside a vision tower. The tiny random model comes from
``test_hookpoints.CONFIGS["gemma3"]`` (its hook-point identities are checked there, with every other
architecture); here its head scores are checked against a text-only ``Gemma3ForCausalLM`` holding
the same weights, which the existing ``gemma3_text`` adapter row reads.
"""
from __future__ import annotations

import torch
import transformers as tf
from test_hookpoints import build

from icltest.models.adapters import Adapter
from icltest.models.loading import LoadedModel, ModelSource
from icltest.probes import Vocab, make_probe
from icltest.schema.spec import ProbeSpec
from icltest.session import run_patterns


def _text_only_twin(multimodal) -> torch.nn.Module:
    """A Gemma3ForCausalLM with the multimodal model's decoder weights (renamed, not recomputed)."""
    text = tf.AutoModelForCausalLM.from_config(multimodal.config.text_config, attn_implementation="eager").eval()
    prefix = "model.language_model."
    state = {("model." + k[len(prefix):] if k.startswith(prefix) else k): v
             for k, v in multimodal.state_dict().items() if k.startswith(prefix) or k.startswith("lm_head.")}
    missing, unexpected = text.load_state_dict(state, strict=False)
    assert not unexpected and all("lm_head" in k for k in missing), (missing, unexpected)  # lm_head may be tied
    return text


def test_multimodal_gemma3_head_scores_equal_the_text_decoders() -> None:
    multimodal = build("gemma3")
    assert type(multimodal).__name__ == "Gemma3ForConditionalGeneration"
    text = _text_only_twin(multimodal)
    probe = make_probe(ProbeSpec(length=8, repeats=3, batch=4, seed=0), Vocab(torch.arange(1, 50), bos_id=0))
    with torch.no_grad():
        torch.testing.assert_close(multimodal(input_ids=probe.tokens).logits, text(input_ids=probe.tokens).logits)
    runs = {}
    for name, model in (("multimodal", multimodal), ("text", text)):
        adapter = Adapter.for_model(model)
        assert (adapter.n_layers, adapter.n_heads, adapter.n_kv_heads, adapter.head_dim) == (2, 4, 1, 16)
        runs[name] = run_patterns(LoadedModel(model, None, adapter, ModelSource(path=name)), probe)
    assert Adapter.for_model(multimodal).describe()["family"] == "Gemma 3 (multimodal)"
    for score, table in runs["text"].scores.items():
        assert table.shape == (2, 4) and torch.isfinite(table).all(), score
        torch.testing.assert_close(runs["multimodal"].scores[score], table, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(runs["multimodal"].token_loss, runs["text"].token_loss)
