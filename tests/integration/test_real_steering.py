"""Concept injection on the real SmolLM2-135M and Gemma 3 270M weights."""
from __future__ import annotations

import pytest
import torch

from icltest.interventions import steering as st
from icltest.models.generate import greedy
from icltest.probes.prompts import pad_left


@pytest.mark.slow
@pytest.mark.parametrize("alias", ["smollm2-135m", "gemma3-270m"])
def test_mid_layer_concept_vector_beats_random_directions(real_model, alias) -> None:
    loaded = real_model(alias)
    m, ad, tok = loaded.model, loaded.adapter, loaded.tokenizer
    data = st.load_concept_data()
    layer = round(0.5 * (ad.n_layers - 1))
    cv = st.concept_vectors(m, ad, tok, ["ocean", "music"], data.reference_words, [layer], data.template)
    seqs = st.encode_texts(tok, data.neutral_prompts, False)
    clean = st.next_logits(m, ad, seqs, tok)
    for concept in ("ocean", "music"):
        ids = [sorted(st.concept_token_ids(tok, concept))] * len(seqs)
        base = st.set_logprob(clean, ids).mean()
        v = cv.at(concept, layer)
        gain = float(st.set_logprob(st.next_logits(m, ad, seqs, tok, layer, v), ids).mean() - base)
        rand = [float(st.set_logprob(st.next_logits(m, ad, seqs, tok, layer, r), ids).mean() - base)
                for r in st.random_like(v, 5, 0)]
        assert gain > 1.0 and gain > max(rand) + 1.0, (concept, gain, rand)


@pytest.mark.slow
def test_cached_generation_under_injection_matches_full_recompute(real_model) -> None:
    loaded = real_model("smollm2-135m")
    tok = loaded.tokenizer
    seqs = st.encode_texts(tok, ["Here is a short story:", "My favourite thing is"], False)
    ids, mask = pad_left(seqs, st.pad_id(tok))
    v = torch.randn(loaded.model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    with st.inject(loaded.adapter, 12, v, 2.0, start=(mask == 0).sum(1)):
        a = greedy(loaded.model, ids, mask, 12, use_cache=True)
        b = greedy(loaded.model, ids, mask, 12, use_cache=False)
    assert torch.equal(a, b)
