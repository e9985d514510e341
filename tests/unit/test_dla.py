"""Direct logit attribution and the logit lens on tiny models of every architecture and on the
constructed induction model. Expected logits come from plain torch hooks on the unembedding, not
from icltest's hook engine."""
from __future__ import annotations

import pytest
import torch

from icltest.attribution.dla import direct_effects, logit_lens
from icltest.models.adapters import Adapter
from icltest.testing.known_circuit import build_known_circuit
from icltest.testing.tiny_configs import CONFIGS, build_tiny


class Loaded:
    def __init__(self, model):
        self.model, self.adapter = model, Adapter.for_model(model)


def build(name: str):
    return Loaded(build_tiny(name, perturb=("norm", "ln", "bias")))


def raw_logits(model, ids, mask=None):
    """Logits before any soft-cap, from a plain forward hook on the output embedding."""
    seen = {}
    handle = model.get_output_embeddings().register_forward_hook(lambda m, a, out: seen.setdefault("x", out.detach()))
    kwargs = {} if mask is None else {"attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}
    try:
        with torch.no_grad():
            model(input_ids=ids, **kwargs)
    finally:
        handle.remove()
    return seen["x"].float()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_parts_sum_to_the_model_logit(name):
    loaded = build(name)
    ids = torch.randint(0, 50, (3, 9), generator=torch.Generator().manual_seed(2))
    read = torch.zeros_like(ids, dtype=torch.bool)
    read[:, -1] = True
    read[1, 4] = True
    targets = torch.randint(0, 50, (int(read.sum()),), generator=torch.Generator().manual_seed(3))
    logits = raw_logits(loaded.model, ids)[read]
    raw = direct_effects(loaded, ids, read, targets, centred=False)
    expected = logits.gather(1, targets[:, None]).squeeze(1)
    torch.testing.assert_close(raw.logit, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(raw.total(), expected, rtol=1e-4, atol=1e-4)
    effects = direct_effects(loaded, ids, read, targets)  # default: centred, logit minus the mean logit
    centred = expected - logits.mean(1)
    torch.testing.assert_close(effects.logit, centred, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(effects.total(), centred, rtol=1e-4, atol=1e-4)
    assert effects.heads.shape == (4, loaded.adapter.n_layers, loaded.adapter.n_heads)
    assert effects.heads.abs().sum() > 0


def test_parts_sum_to_the_logit_with_left_padding():
    loaded = build("llama")
    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    read = torch.zeros_like(ids, dtype=torch.bool)
    read[:, -1] = True
    targets = torch.tensor([5, 9])
    effects = direct_effects(loaded, ids, read, targets, mask=mask, centred=False)
    expected = raw_logits(loaded.model, ids, mask)[read].gather(1, targets[:, None]).squeeze(1)
    torch.testing.assert_close(effects.total(), expected, rtol=1e-4, atol=1e-4)


def test_only_the_constructed_induction_head_writes_the_copied_token():
    circuit = build_known_circuit()
    loaded = Loaded(circuit.model)
    gen = torch.Generator().manual_seed(0)
    segment = torch.stack([torch.randperm(63, generator=gen)[:12] + 1 for _ in range(2)])  # no token twice in a copy
    ids = torch.cat([torch.zeros(2, 1, dtype=torch.long), segment, segment], 1)
    read = torch.zeros_like(ids, dtype=torch.bool)
    read[:, 14:-1] = True  # second copy: the next token is known from the first copy
    targets = ids[:, 15:][read[:, 14:-1]]
    effects = direct_effects(loaded, ids, read, targets)
    per_head = effects.heads.mean(0)
    induction = circuit.heads["induction"]
    assert per_head[induction] > 5.0
    others = per_head.clone()
    others[induction] = 0
    assert others.abs().max() < 0.1 * per_head[induction]
    torch.testing.assert_close(effects.total(), effects.logit, rtol=1e-4, atol=1e-3)


def test_logit_lens_last_column_is_the_model_and_early_layers_do_not_know():
    circuit = build_known_circuit()
    loaded = Loaded(circuit.model)
    gen = torch.Generator().manual_seed(1)
    segment = torch.stack([torch.randperm(63, generator=gen)[:12] + 1 for _ in range(2)])  # no token twice in a copy
    ids = torch.cat([torch.zeros(2, 1, dtype=torch.long), segment, segment], 1)
    read = torch.zeros_like(ids, dtype=torch.bool)
    read[:, 14:-1] = True
    targets = ids[:, 15:][read[:, 14:-1]]
    lens = logit_lens(loaded, ids, read, targets)
    logits = raw_logits(circuit.model, ids)[read]
    expected_rank = (logits >= logits.gather(1, targets[:, None])).sum(1) - 1  # ties counted against
    assert torch.equal(lens.rank[:, -1], expected_rank)
    torch.testing.assert_close(lens.prob[:, -1], torch.softmax(logits, -1).gather(1, targets[:, None]).squeeze(1))
    top1 = lens.top_fraction(1)
    assert top1[-1] == 1.0          # after layer 1 (the induction head) the copied token is top
    assert top1[1] < 0.2            # after layer 0 nothing has been copied yet


def test_gemma2_softcap_applies_to_lens_probabilities_not_to_attributed_logits():
    loaded = build("gemma2")
    loaded.model.config.final_logit_softcapping = 2.0
    ids = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(5))
    read = torch.zeros_like(ids, dtype=torch.bool)
    read[:, -1] = True
    targets = torch.tensor([1, 2])
    effects = direct_effects(loaded, ids, read, targets, centred=False)
    pre = raw_logits(loaded.model, ids)[read]
    torch.testing.assert_close(effects.total(), pre.gather(1, targets[:, None]).squeeze(1), rtol=1e-4, atol=1e-4)
    lens = logit_lens(loaded, ids, read, targets)
    with torch.no_grad():
        capped = loaded.model(input_ids=ids).logits[read].float()
    torch.testing.assert_close(lens.prob[:, -1], torch.softmax(capped, -1).gather(1, targets[:, None]).squeeze(1))


def test_a_shift_of_every_logit_gets_no_credit_when_centred():
    """A bias that adds the same amount to every logit changes no probability: centred DLA gives
    the constant term nothing from it, raw DLA gives it all."""
    loaded = build("gpt2")
    ids = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(6))
    read = torch.zeros_like(ids, dtype=torch.bool)
    read[:, -1] = True
    targets = torch.tensor([3, 4])
    with torch.no_grad():
        loaded.model.transformer.ln_f.bias.zero_()  # the only other constant: keep it out
    head = loaded.model.get_output_embeddings()
    head.bias = torch.nn.Parameter(torch.full((head.weight.shape[0],), 5.0))
    raw = direct_effects(loaded, ids, read, targets, centred=False)
    centred = direct_effects(loaded, ids, read, targets)
    torch.testing.assert_close(raw.constant - centred.constant, torch.full((2,), 5.0), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(centred.total(), centred.logit, rtol=1e-4, atol=1e-4)


def test_no_targets_means_the_models_own_greedy_token():
    loaded = build("llama")
    ids = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(8))
    read = torch.zeros_like(ids, dtype=torch.bool)
    read[:, -1] = True
    logits = raw_logits(loaded.model, ids)[:, -1]
    effects = direct_effects(loaded, ids, read, None)
    assert torch.equal(effects.targets, logits.argmax(-1))
    torch.testing.assert_close(effects.target_prob, torch.softmax(logits, -1).max(-1).values)
