"""Behavioural measurements on real SmolLM2 weights, checked against plain transformers calls."""
from __future__ import annotations

import pytest
import torch

from icltest.runs.run import Ablation, Run
from icltest.session import Session
from icltest.schema.spec import MetricSpec, ProbeSpec


@pytest.mark.slow
def test_padded_task_batch_matches_one_prompt_at_a_time(real_model) -> None:
    """Left padding + position ids must not change any prompt's prediction."""
    loaded = real_model("smollm2-135m")
    session = Session()
    run = Run(session, loaded, MetricSpec(name="answer_prob", task="antonym", shots=3, n=6, seed=5))
    batched = run.value()
    probs = []
    for row, mask in zip(run.inputs.tokens, run.inputs.mask):
        ids = row[mask.bool()][None]  # the prompt alone, unpadded
        with torch.inference_mode():
            logits = loaded.model(input_ids=ids).logits[0, -1].float()
        probs.append(torch.softmax(logits, -1)[run.inputs.answer_ids[len(probs)]].item())
    assert batched == pytest.approx(sum(probs) / len(probs), abs=2e-4)
    assert len(set(int(t) for t in run.inputs.mask.sum(-1))) > 1  # the batch really was ragged


@pytest.mark.slow
def test_repeated_token_loss_matches_full_logits_and_model_is_restored(real_model) -> None:
    loaded = real_model("smollm2-135m")
    session = Session()
    probe = ProbeSpec(length=20, repeats=2, batch=4, seed=9)
    run = Run(session, loaded, MetricSpec(name="repeated_token_loss", part="second_half"), probe)
    tokens = run.inputs.tokens
    with torch.inference_mode():
        before = loaded.model(input_ids=tokens).logits
    loss = torch.nn.functional.cross_entropy(before[:, :-1].float().transpose(1, 2), tokens[:, 1:], reduction="none")
    # second half = positions 21..40 (BOS at 0, first copy 1..20), predicted by loss indices 20..39
    assert run.value() == pytest.approx(loss[:, 20:40].mean().item(), abs=1e-4)
    ablated = run.value(Ablation(heads=((18, 6), (17, 3)), method="mean"))
    assert ablated > run.value()
    with torch.inference_mode():
        after = loaded.model(input_ids=tokens).logits
    assert torch.equal(before, after)
