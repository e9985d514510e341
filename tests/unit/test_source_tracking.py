"""Source-tracking prompts and the probe's verdict on hand-made features with known answers."""
from __future__ import annotations

import re
import types

import numpy as np
import pytest

from icltest.claims import source_tracking as st
from icltest.probes.books import load_book
from icltest.probes.source import CONTEXT, MEMORY, build_source_prompts
from icltest.probes.splits import split_indices
from icltest.schema import load_spec

from test_tasks import _make_tokenizer  # noqa: E402  (the word-level test tokenizer)


@pytest.fixture(scope="module")
def tok():
    return _make_tokenizer()


def test_prompts_are_balanced_share_a_format_and_never_leak_the_answer(tok):
    batch, labels = build_source_prompts(tok, n=40, seed=3, split="test", shots=2)
    assert labels.count(CONTEXT) == labels.count(MEMORY) == 20
    open_answers = {it.answer for it in load_book("open_book")}
    closed = load_book("closed_book")
    test_closed = {closed[i].question for i in split_indices([it.question for it in closed], "test")}
    for text, answer, label in zip(batch.prompts, batch.answers, labels):
        blocks = text.split("\n\n")
        assert len(blocks) == 3  # two demonstrations and the query
        query = blocks[-1]
        context, question = query.split("\nQuestion: ")
        assert context  # every query has a context, whatever its source
        mentioned = re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", context) is not None
        assert mentioned == (label == CONTEXT)
        if label == MEMORY:
            assert question.removesuffix("\nAnswer:") in test_closed
        else:
            assert answer in open_answers
        # the demonstrations are one of each kind and do not state the query's answer
        demo_questions = [b.split("\nQuestion: ")[1].split("\nAnswer:")[0] for b in blocks[:2]]
        assert sum(q in {c.question for c in closed} for q in demo_questions) == 1
        assert all(re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", b) is None for b in blocks[:2])


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
    return {"x": x, "y": list(y), "confidence": rng.normal(size=n), "correct": np.ones(n, bool), "label": "fake"}


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
