"""The constructed known-answer model really has the circuits it claims, checked from the outside."""
from __future__ import annotations

import pytest
import torch

from icltest.scores import SCORES
from icltest.testing import build_known_circuit

BATCH, LENGTH = 8, 20


@pytest.fixture(scope="module")
def circuit():
    return build_known_circuit()


def repeated(repeats: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """BOS + LENGTH distinct random tokens from 1..63, repeated; valid excludes BOS."""
    g = torch.Generator().manual_seed(seed)
    seg = torch.stack([torch.randperm(63, generator=g)[:LENGTH] + 1 for _ in range(BATCH)])
    tokens = torch.cat([torch.zeros(BATCH, 1, dtype=torch.long)] + [seg] * repeats, dim=1)
    valid = torch.ones_like(tokens, dtype=torch.bool)
    valid[:, 0] = False
    return tokens, valid


@pytest.fixture(scope="module")
def run2(circuit):
    tokens, valid = repeated(2)
    with torch.no_grad():
        out = circuit.model(input_ids=tokens, output_attentions=True)
    return tokens, valid, out


def test_model_shape_and_modes(circuit):
    cfg = circuit.model.config
    assert (cfg.n_layer, cfg.n_head, cfg.vocab_size, cfg.n_positions) == (2, 4, 64, 64)
    assert not circuit.model.training
    assert circuit.model.config._attn_implementation == "eager"
    assert circuit.heads == {"previous_token": (0, 0), "duplicate_token": (0, 1), "induction": (1, 0)}


def test_named_heads_score_near_one(run2, circuit):
    tokens, valid, out = run2
    for name, (layer, head) in circuit.heads.items():
        score = SCORES[name](out.attentions[layer], tokens, valid)[head].item()
        assert score >= 0.95, (name, score)


def test_other_heads_are_not_induction_or_previous_token(run2, circuit):
    tokens, valid, out = run2
    named = {(0, 0): "previous_token", (1, 0): "induction"}
    for layer in range(2):
        for name in ("induction", "previous_token"):
            scores = SCORES[name](out.attentions[layer], tokens, valid)
            for head in range(4):
                if named.get((layer, head)) == name:
                    continue
                assert scores[head].item() <= 0.3, (layer, head, name, scores[head].item())


def test_zeroed_heads_attend_uniformly(run2):
    _, _, out = run2
    s = out.attentions[0].shape[-1]
    uniform = torch.tril(torch.ones(s, s))
    uniform = uniform / uniform.sum(-1, keepdim=True)
    for layer, head in [(0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]:
        assert torch.allclose(out.attentions[layer][:, head], uniform.expand(BATCH, s, s), atol=1e-5)


def test_previous_token_head_argmax_is_previous_position(run2):
    _, _, out = run2
    argmax = out.attentions[0][:, 0].argmax(-1)  # [b, q]
    s = argmax.shape[-1]
    assert argmax[:, 1:].tolist() == [list(range(s - 1))] * BATCH


def test_duplicate_head_argmax_is_first_copy(run2):
    _, _, out = run2
    argmax = out.attentions[0][:, 1].argmax(-1)
    # Second-copy position 1 + LENGTH + k holds the token first seen at 1 + k.
    expected = [1 + k for k in range(LENGTH)]
    assert argmax[:, 1 + LENGTH:].tolist() == [expected] * BATCH


def test_induction_head_argmax_is_token_after_first_copy(run2):
    _, _, out = run2
    argmax = out.attentions[1][:, 0].argmax(-1)
    expected = [1 + k + 1 for k in range(LENGTH)]
    assert argmax[:, 1 + LENGTH:].tolist() == [expected] * BATCH


def test_induction_head_spreads_over_all_copies_with_three_repeats(circuit):
    # L1H0 matches every earlier copy equally, so with 3 repeats it is a perfect prefix-matching
    # head, and its induction score is (LENGTH * 1 + LENGTH * 1/2) / (2 * LENGTH) = 0.75.
    tokens, valid = repeated(3, seed=1)
    with torch.no_grad():
        attn = circuit.model(input_ids=tokens, output_attentions=True).attentions[1]
    assert SCORES["prefix_matching"](attn, tokens, valid)[0].item() == pytest.approx(1.0, abs=0.01)
    assert SCORES["induction"](attn, tokens, valid)[0].item() == pytest.approx(0.75, abs=0.01)


def test_model_predicts_the_second_copy(run2):
    tokens, _, out = run2
    loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    # loss[:, p] is the loss of predicting tokens[:, p + 1].
    first = loss[:, 1:LENGTH]  # predicting first-copy tokens 2..LENGTH: unpredictable
    second = loss[:, 1 + LENGTH:2 * LENGTH]  # predicting second-copy tokens 2..LENGTH: copyable
    # Measured: first ~5.1 (log 63 = 4.14), second ~2e-5.
    assert first.mean().item() > 3.0
    assert first.min().item() > 2.0
    assert second.mean().item() < 0.05
    assert second.max().item() < 0.5
    greedy = out.logits[:, 1 + LENGTH:2 * LENGTH].argmax(-1)
    assert torch.equal(greedy, tokens[:, 2 + LENGTH:])


def test_tokenizer_is_real(circuit):
    tok = circuit.tokenizer
    assert tok.all_special_ids == [0]
    assert tok.bos_token_id == 0
    assert len(tok) == 64
    assert tok("<bos> t1 t5 t63")["input_ids"] == [0, 1, 5, 63]
    assert tok.decode([0, 1, 5, 63]) == "<bos> t1 t5 t63"
    assert tok.decode([0, 7], skip_special_tokens=True) == "t7"


def test_save_and_reload_round_trip(circuit, run2, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokens, _, out = run2
    path = circuit.save(tmp_path / "known")
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        logits = model(input_ids=tokens).logits
    assert torch.equal(logits, out.logits)
    assert tok.all_special_ids == [0]
    assert tok.decode([0, 3]) == "<bos> t3"


def test_construction_is_deterministic():
    a, b = build_known_circuit(seed=0).model, build_known_circuit(seed=1).model
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name


def test_other_sizes_still_work():
    kc = build_known_circuit(vocab_size=32, n_positions=48)
    g = torch.Generator().manual_seed(5)
    seg = torch.randperm(31, generator=g)[:12] + 1
    tokens = torch.cat([torch.zeros(1, dtype=torch.long), seg, seg])[None]
    valid = torch.ones_like(tokens, dtype=torch.bool)
    valid[:, 0] = False
    with torch.no_grad():
        attn = kc.model(input_ids=tokens, output_attentions=True).attentions
    assert SCORES["induction"](attn[1], tokens, valid)[0].item() >= 0.95
    assert SCORES["previous_token"](attn[0], tokens, valid)[0].item() >= 0.95


def test_bad_sizes_raise():
    with pytest.raises(ValueError):
        build_known_circuit(vocab_size=1)
