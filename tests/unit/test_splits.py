"""Select / test splits of task items, and references drawn from inputs the judged run never sees.

Heads chosen on the items a claim then judges make the claim circular, and a mean-ablation
reference built from the same items (another seed only reorders them when every seed covers every
item) is not a separate input set. The split is a per-item hash of the item's own text, computed
independently here (sha256 of a fixed salt + the text), so the code cannot agree with itself.
"""
from __future__ import annotations

import hashlib
import math

import pytest
import yaml

from icltest.errors import InputError
from icltest.probes.books import BOOK_KINDS, build_book_prompts, load_book
from icltest.probes.tasks import Pair, Task, available_tasks, build_icl_prompts, load_task, parse_task
from test_tasks import _make_tokenizer  # the word-level tokenizer over the shipped data


def _side(text: str) -> str:
    return "test" if hashlib.sha256(("icltest split\n" + text).encode("utf-8")).digest()[0] & 1 else "select"


@pytest.fixture(scope="module")
def tok():
    return _make_tokenizer()


# Recorded counts (select, test) of the shipped data: a change here moves items between splits.
RECORDED = {"antonym": (35, 32), "capitalize": (24, 26), "country_capital": (33, 30), "english_french": (38, 46),
            "present_past": (36, 34), "singular_plural": (23, 30), "open_book": (20, 26), "closed_book": (20, 34),
            "counterfactual": (10, 10)}


def test_split_is_a_hash_of_each_items_text_with_recorded_counts():
    from icltest.probes.splits import split_of

    for name in available_tasks():
        task = load_task(name)
        sides = [split_of(p.input) for p in task.pairs]
        assert sides == [_side(p.input) for p in task.pairs]
        assert (sides.count("select"), sides.count("test")) == RECORDED[name]
    for kind in BOOK_KINDS:
        sides = [split_of(item.question) for item in load_book(kind)]
        assert sides == [_side(item.question) for item in load_book(kind)]
        assert (sides.count("select"), sides.count("test")) == RECORDED[kind]


def test_adding_an_item_moves_no_other_item():
    from icltest.probes.splits import split_indices

    base = load_task("antonym")
    data = {"name": "grown", "pairs": [{"input": p.input, "output": p.output} for p in base.pairs]}
    data["pairs"].insert(3, {"input": "early-bird", "output": "late-riser"})
    grown = parse_task(data, "grown.yaml")
    for split in ("select", "test"):
        before = {base.pairs[i].input for i in split_indices([p.input for p in base.pairs], split)}
        after = {grown.pairs[i].input for i in split_indices([p.input for p in grown.pairs], split)}
        assert before == after - {"early-bird"}


def test_counterfactual_items_share_the_split_of_their_closed_book_question():
    from icltest.probes.splits import split_of

    closed = {item.question for item in load_book("closed_book")}
    for item in load_book("counterfactual"):
        assert item.question in closed
        assert split_of(item.question) == _side(item.question)


@pytest.mark.parametrize("split", ["select", "test"])
def test_icl_prompts_use_one_split_for_queries_and_demonstrations(tok, split):
    task = load_task("antonym")
    batch = build_icl_prompts(task, tok, shots=5, n=60, seed=2, split=split)
    inside = {i for i, p in enumerate(task.pairs) if _side(p.input) == split}
    assert set(batch.query_indices) == inside  # n exceeds the split: every item of it is asked
    for q, demos in zip(batch.query_indices, batch.demo_indices):
        assert q not in demos and len(set(demos)) == 5
        assert set(demos) <= inside
    assert batch.params["split"] == split
    assert batch.params["items"] == len(inside) and batch.params["items_total"] == len(task.pairs)


def test_icl_prompts_judge_on_test_by_default(tok):
    batch = build_icl_prompts("capitalize", tok, shots=2, n=10, seed=0)
    assert batch.params["split"] == "test"
    task = load_task("capitalize")
    assert all(_side(task.pairs[q].input) == "test" for q in batch.query_indices)


def test_select_and_test_prompts_share_no_item(tok):
    a = build_icl_prompts("present_past", tok, shots=4, n=48, seed=0, split="select")
    b = build_icl_prompts("present_past", tok, shots=4, n=48, seed=0, split="test")
    used_a = set(a.query_indices) | {i for d in a.demo_indices for i in d}
    used_b = set(b.query_indices) | {i for d in b.demo_indices for i in d}
    assert used_a and used_b and not used_a & used_b


@pytest.mark.parametrize("kind", BOOK_KINDS)
def test_book_prompts_use_one_split(tok, kind):
    items = load_book(kind)
    for split in ("select", "test"):
        batch = build_book_prompts(kind, tok, n=40, seed=1, shots=2, split=split)
        inside = {i for i, item in enumerate(items) if _side(item.question) == split}
        assert set(batch.query_indices) <= inside
        assert all(set(d) <= inside and q not in d for q, d in zip(batch.query_indices, batch.demo_indices))
        assert batch.params["split"] == split and batch.params["items"] == len(inside)
    assert build_book_prompts(kind, tok, n=4, seed=0).params["split"] == "test"


def test_too_many_shots_for_the_split_names_the_split(tok):
    pairs = tuple(Pair(f"w{i}", f"v{i}") for i in range(6))
    task = Task(name="small", description="", pairs=pairs)
    size = sum(_side(p.input) == "test" for p in pairs)
    with pytest.raises(InputError, match=rf"shots must be an int in \[0, {size - 1}\].*split test: {size} of 6"):
        build_icl_prompts(task, tok, shots=size, n=2, seed=0)


def test_metric_spec_split_field():
    from pydantic import ValidationError

    from icltest.schema.spec import MetricSpec

    assert MetricSpec(name="recall", task="open_book").split is None  # the run reads None as test
    assert MetricSpec(name="recall", task="open_book", split="select").split == "select"
    with pytest.raises(ValidationError, match="metric repeated_token_loss does not use split"):
        MetricSpec(name="repeated_token_loss", split="test")
    with pytest.raises(ValidationError):
        MetricSpec(name="recall", task="open_book", split="train")


def test_scan_selects_on_the_select_split_by_default():
    from icltest.cli import _scan_metric, build_parser

    args = build_parser().parse_args(["scan", "--model", "m", "--ablate", "--metric", "answer_prob",
                                      "--task", "open_book", "--shots", "2"])
    assert args.split == "select"
    assert _scan_metric(args).split == "select"
    args = build_parser().parse_args(["scan", "--model", "m", "--ablate", "--metric", "recall", "--task",
                                      "closed_book", "--split", "test"])
    assert _scan_metric(args).split == "test"
    args = build_parser().parse_args(["scan", "--model", "m", "--ablate"])
    assert _scan_metric(args).split is None  # repeated_token_loss: no items to split


# ------------------------------------------------------------------ references on the constructed model

@pytest.fixture(scope="module")
def loaded():
    from icltest.models.adapters import Adapter
    from icltest.models.loading import LoadedModel, ModelSource
    from icltest.testing import build_known_circuit

    kc = build_known_circuit()
    return LoadedModel(kc.model, kc.tokenizer, Adapter.for_model(kc.model), ModelSource(path="known-circuit"))


def _word_task(tmp_path) -> str:
    path = tmp_path / "words.yaml"
    pairs = [{"input": f"t{i}", "output": f"t{i + 20}"} for i in range(1, 21)]
    path.write_text(yaml.safe_dump({"name": "words", "pairs": pairs}), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("split, other", [(None, "select"), ("test", "select"), ("select", "test")])
def test_task_reference_comes_from_the_other_split(loaded, tmp_path, split, other):
    from icltest.runs.run import Ablation, Run
    from icltest.schema.spec import MetricSpec
    from icltest.session import Session

    path = _word_task(tmp_path)
    run = Run(Session(), loaded, MetricSpec(name="accuracy", task=path, shots=1, n=12, seed=0, split=split))
    assert run.inputs.params["split"] == (split or "test")
    reference = run._reference_inputs()
    assert reference.params["split"] == other and reference.params["seed"] == 1
    # each prompt ends "<query> ->": the token before the separator is the query item
    judged = {int(row[-2]) for row in run.inputs.tokens}
    refs = {int(row[-2]) for row in reference.tokens}
    assert judged and refs and not judged & refs
    run.value(Ablation(heads=((1, 0),), method="mean"))
    described = run.describe()
    assert described["reference_split"] == other
    assert f"split={split or 'test'}" in described["inputs"]


def test_natural_text_reference_uses_documents_the_probe_does_not(loaded):
    from icltest.runs.run import Ablation, Run
    from icltest.schema.spec import MetricSpec, NaturalTextProbe
    from icltest.session import Session

    probe = NaturalTextProbe(kind="natural_text", length=40, batch=16, seed=0)
    run = Run(Session(), loaded, MetricSpec(name="icl_score", late=30, early=10, window=2), probe)
    reference = run._reference_inputs()
    judged, used = set(run.inputs.params["documents"]), set(reference.params["documents"])
    assert len(judged) == 16 and used and not judged & used
    assert reference.tokens.shape == run.inputs.tokens.shape  # tiled to the batch: resample pairs rows
    resample = Ablation(heads=((1, 0),), method="resample")
    assert math.isfinite(run.value(resample))  # resample pairs each judged row with a reference row
