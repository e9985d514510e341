"""Source-tracking prompts and the probe's verdict on hand-made features with known answers."""
from __future__ import annotations

import re
import types

import numpy as np
import pytest

from icltest.claims import source_tracking as st
from icltest.probes.books import load_book
from icltest.probes.source import CONTEXT, MEMORY, build_source_prompts, label_by_output
from icltest.probes.splits import split_indices
from icltest.schema import load_spec

from test_tasks import _make_tokenizer  # noqa: E402  (the word-level test tokenizer)


@pytest.fixture(scope="module")
def tok():
    return _make_tokenizer()


def test_conflict_prompts_share_wording_and_answers_across_sources(tok):
    batch, ids = build_source_prompts(tok, n=60, seed=3, split="test", shots=2)
    closed = {it.question: it.answer for it in load_book("closed_book")}
    test_questions = {q for q in closed if q in {load_book("closed_book")[i].question for i in
                                                 split_indices(list(closed), "test")}}
    context_answers, memory_answers = set(), set()
    for text, context_answer, (ctx_id, mem_id) in zip(batch.prompts, batch.answers, ids):
        blocks = text.split("\n\n")
        assert len(blocks) == 3  # two demonstrations and the query
        context, question = blocks[-1].split("\nQuestion: ")
        question = question.removesuffix("\nAnswer:")
        assert question in test_questions  # a held-out closed-book question
        memory = closed[question]
        assert context.startswith("In this story, ") and context.endswith(f" {context_answer}.")
        assert context_answer != memory and ctx_id != mem_id
        assert re.search(rf"(?<!\w){re.escape(memory)}(?!\w)", text) is None  # memory answer nowhere in the prompt
        for demo in blocks[:2]:  # demonstrations mention neither answer
            assert re.search(rf"(?<!\w){re.escape(context_answer)}(?!\w)", demo) is None
        context_answers.add(context_answer)
        memory_answers.add(memory)
    assert len(context_answers & memory_answers) >= 5  # answer words play both roles


def test_labels_follow_the_models_answer():
    assert label_by_output([5, 7, 9], [(5, 6), (6, 7), (1, 2)]) == [CONTEXT, MEMORY, None]


def test_odd_shots_are_refused(tok):
    from icltest.errors import InputError

    with pytest.raises(InputError, match="even number of shots"):
        build_source_prompts(tok, n=4, seed=0, shots=1)


def _claim(tmp_path, control=""):
    path = tmp_path / "s.yaml"
    path.write_text("schema_version: 1\nmodel: x\nclaims:\n"
                    f"  - {{id: s, kind: source_tracking, n: 40, expect: {{auroc: '>= 0.9'}}{control}}}\n")
    return load_spec(path).spec.claims[0]


def _fake(features):
    def fake(claim, ctx, split):
        return features[split]
    return fake


def _data(rng, n, signal):
    y = np.array([1, 0] * (n // 2))
    x = rng.normal(size=(n, 30))
    x[:, 4] += signal * (2 * y - 1)  # one feature carries the source
    return {"x": x, "y": list(y), "confidence": rng.normal(size=n), "heads_sum": rng.normal(size=n),
            "counts": {"context": n // 2, "memory": n // 2, "neither": 0}, "label": "fake"}


def test_a_separating_feature_passes_and_beats_the_permutation_draws(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    monkeypatch.setattr(st, "_features", _fake({"select": _data(rng, 60, 3.0), "test": _data(rng, 60, 3.0)}))
    claim = _claim(tmp_path, ", control: {draws: 19, expect: {p: '<= 0.1'}}")
    m = st.measure(claim, st.targets(claim)[0], types.SimpleNamespace())
    verdict = st.judge(claim, st.targets(claim)[0], m)
    assert m.value > 0.95 and verdict.passed
    assert m.details["control"]["p"] == 0.05 and m.details["control"]["mean"] < 0.75
    assert 0.3 < m.details["confidence_auroc"] < 0.7  # noise


def test_no_signal_fails_both_the_bound_and_the_control(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    monkeypatch.setattr(st, "_features", _fake({"select": _data(rng, 60, 0.0), "test": _data(rng, 60, 0.0)}))
    claim = _claim(tmp_path, ", control: {draws: 19, expect: {p: '<= 0.1'}}")
    m = st.measure(claim, st.targets(claim)[0], types.SimpleNamespace())
    verdict = st.judge(claim, st.targets(claim)[0], m)
    assert m.value < 0.75 and not verdict.passed
    assert m.details["control"]["p"] > 0.1
