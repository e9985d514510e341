"""The run layer on the constructed model: stacked variants equal one-by-one runs, in fewer passes."""
from __future__ import annotations

import math

import pytest

from icltest.models.adapters import Adapter
from icltest.models.loading import LoadedModel, ModelSource
from icltest.runs.metrics import METRICS, TASK_METRICS, problems
from icltest.runs.run import Ablation, Run
from icltest.schema.spec import MetricSpec, ProbeSpec
from icltest.session import Session
from icltest.testing import build_known_circuit


@pytest.fixture(scope="module")
def loaded():
    kc = build_known_circuit()
    return LoadedModel(kc.model, kc.tokenizer, Adapter.for_model(kc.model), ModelSource(path="known-circuit"))


VARIANTS = [Ablation(heads=((l, h),), method=m) for m in ("zero", "mean", "resample") for l in (0, 1) for h in (0, 1, 2)]


@pytest.mark.parametrize("metric", [MetricSpec(name="repeated_token_loss", part="second_half"),
                                    MetricSpec(name="icl_score")])
def test_stacked_variants_equal_one_by_one(loaded, metric):
    probe = ProbeSpec(length=12, repeats=2, batch=4, seed=0)
    one = Session()
    single = Run(one, loaded, metric, probe, stack=1).values(VARIANTS)
    many = Session()
    stacked_run = Run(many, loaded, metric, probe, stack=5)
    stacked = stacked_run.values(VARIANTS)
    for a, b in zip(single, stacked):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5)
    # 18 variants: one by one 18 passes; stacked 5 per pass -> 4 passes (+2 reference captures each)
    assert one.forward_passes == 18 + 1
    assert many.forward_passes == 4 + 1
    # the induction head (L1H0) is the one that matters, as the construction says
    zero = dict(zip(VARIANTS, stacked))
    if metric.name == "repeated_token_loss":
        assert zero[Ablation(heads=((1, 0),))] > 3.0 > zero[Ablation(heads=((1, 1),))]


def test_values_are_cached_per_variant(loaded):
    session = Session()
    run = Run(session, loaded, MetricSpec(name="repeated_token_loss"), ProbeSpec(length=12, batch=4), stack=4)
    run.values(VARIANTS[:3])
    passes = session.forward_passes
    assert run.values(VARIANTS[:3] + [None]) [:3] == run.values(VARIANTS[:3])
    assert session.forward_passes == passes + 1  # only the clean run was new


def test_metric_table_drives_validation():
    assert set(TASK_METRICS) == {"accuracy", "recall", "answer_prob", "answer_logprob", "logit_diff"}
    assert METRICS["repeated_token_loss"].harm == "increase" and METRICS["recall"].harm == "drop"
    assert problems("logit_diff", {"task": "open_book"}) == [
        "metric logit_diff reads logit of the context's answer minus the remembered one, same position: "
        "it needs task: counterfactual"]
    assert problems("icl_score", {"part": "first"}) == ["metric icl_score does not use part"]
    assert problems("recall", {}) == ["metric recall needs a task (e.g. task: open_book or task: antonym)"]


def test_answer_logprob_reads_the_answer_tokens_log_probability():
    import torch

    from icltest.attribution.patching import answer_logprob

    logits = torch.zeros(2, 2, 5)
    logits[0, -1, 3] = 2.0  # row 0: first token only
    logits[1, 0, 1] = 1.0   # row 1 (full): tokens 1 then 4
    logits[1, 1, 4] = 3.0
    got = answer_logprob(logits, [[3, 9], [1, 4]], [False, True])
    expected0 = 2.0 - torch.log(torch.exp(torch.tensor(2.0)) + 4)
    expected1 = (1.0 - torch.log(torch.exp(torch.tensor(1.0)) + 4)) + (3.0 - torch.log(torch.exp(torch.tensor(3.0)) + 4))
    torch.testing.assert_close(got, torch.stack([expected0, expected1]))
