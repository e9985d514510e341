"""Task scoring that measures the task: full answers where first tokens collide, shuffled-label
baselines, and one BOS rule for every prompt.

Expected values are computed here by hand (hand-made logits, regex tokenization) or by running the
constructed model on each prompt alone, never by asking the code under test.
"""
from __future__ import annotations

import math

import pytest
import torch
import yaml

from icltest.errors import InputError
from icltest.probes.books import build_book_prompts, load_book
from icltest.probes.tasks import Pair, Task, build_icl_prompts, encode_prompts, load_task
from test_tasks import VOCAB, _make_tokenizer


@pytest.fixture(scope="module")
def tok():
    return _make_tokenizer()


# ------------------------------------------------------------------ pure scoring on hand-made logits

def _logits(rows: list[list[int]], vocab: int = 6) -> torch.Tensor:
    """[n, K, vocab] logits whose argmax at each kept position is the given id (score 5 vs 0)."""
    out = torch.zeros(len(rows), len(rows[0]), vocab)
    for r, row in enumerate(rows):
        for k, winner in enumerate(row):
            out[r, k, winner] = 5.0
    return out


def test_full_answers_need_every_token_first_token_answers_only_the_first():
    from icltest.scores.metrics import answer_matches

    logits = _logits([[0, 2, 3],    # full [2, 3]: both right
                      [0, 2, 1],    # full [2, 4]: first right, second wrong -> wrong
                      [4, 4, 1],    # first-token [1, 4]: only the last position counts -> right
                      [1, 2, 3]])   # first-token [2]: last position says 3 -> wrong
    got = answer_matches(logits, [[2, 3], [2, 4], [1, 4], [2]], [True, True, False, False])
    assert got.tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="answer of 4 tokens but only 3 positions"):
        answer_matches(logits, [[1, 2, 3, 4], [2], [1], [2]], [True, False, False, False])


def test_full_answer_probability_is_the_product_of_teacher_forced_token_probabilities():
    from icltest.scores.metrics import answer_probability

    logits = _logits([[0, 2, 3], [4, 4, 1]])
    hi = math.exp(5) / (math.exp(5) + 5)  # the winner's probability at a position (vocab 6)
    lo = 1 / (math.exp(5) + 5)
    got = answer_probability(logits, [[2, 3], [1, 4]], [True, False])
    assert got[0].item() == pytest.approx(hi * hi, rel=1e-5)
    assert got[1].item() == pytest.approx(hi, rel=1e-5)  # first token only: the last position's p(1)
    assert answer_probability(logits, [[2, 5], [0]], [True, False])[1].item() == pytest.approx(lo, rel=1e-5)


# ------------------------------------------------------------------ collisions -> full answers

def test_answers_sharing_a_first_token_are_scored_in_full(tok):
    from icltest.probes.tasks import colliding_answers

    pairs = (Pair("up", "hot cold"), Pair("down", "hot day"), Pair("left", "big"), Pair("right", "small"))
    assert colliding_answers(tok, [p.output for p in pairs]) == frozenset({"hot cold", "hot day"})
    task = Task(name="collide", description="", pairs=pairs)
    batch = build_icl_prompts(task, tok, shots=0, n=4, seed=0, split="all")
    for answer, tokens, full in zip(batch.answers, batch.answer_tokens, batch.full):
        assert tokens == [VOCAB[w] for w in answer.split()]
        assert full == answer.startswith("hot ")
    assert batch.params["colliding_answers"] == 2
    assert batch.params["full_answer_items"] == 2


def test_no_collision_in_the_word_level_data(tok):
    from icltest.probes.tasks import colliding_answers

    for name in ("antonym", "country_capital"):
        task = load_task(name)
        assert colliding_answers(tok, [p.output for p in task.pairs]) == frozenset()


# ------------------------------------------------------------------ shuffled-label baseline

@pytest.mark.parametrize("seed", [0, 3])
def test_shuffled_labels_keep_queries_and_demonstrations_and_move_every_output(tok, seed):
    task = load_task("antonym")
    plain = build_icl_prompts(task, tok, shots=5, n=30, seed=seed)
    shuffled = build_icl_prompts(task, tok, shots=5, n=30, seed=seed, shuffled_labels=True)
    assert shuffled.query_indices == plain.query_indices and shuffled.demo_indices == plain.demo_indices
    assert shuffled.answers == plain.answers and shuffled.answer_ids == plain.answer_ids
    assert shuffled.params["shuffled_labels"] is True and plain.params["shuffled_labels"] is False
    for prompt, demos in zip(shuffled.prompts, shuffled.demo_indices):
        lines = prompt.split("\n")[:-1]
        inputs = [line.split(" -> ")[0] for line in lines]
        outputs = [line.split(" -> ")[1] for line in lines]
        assert inputs == [task.pairs[i].input for i in demos]
        assert sorted(outputs) == sorted(task.pairs[i].output for i in demos)
        assert all(out != task.pairs[i].output for out, i in zip(outputs, demos))  # no fixed point


def test_shuffled_labels_need_two_demonstrations(tok):
    with pytest.raises(InputError, match="shuffled labels need at least 2 demonstrations"):
        build_icl_prompts("antonym", tok, shots=1, n=4, seed=0, shuffled_labels=True)


def test_shuffled_book_answers(tok):
    items = load_book("open_book")
    plain = build_book_prompts("open_book", tok, n=12, seed=1, shots=3)
    shuffled = build_book_prompts("open_book", tok, n=12, seed=1, shots=3, shuffled_labels=True)
    assert shuffled.demo_indices == plain.demo_indices and shuffled.answers == plain.answers
    for prompt, demos in zip(shuffled.prompts, shuffled.demo_indices):
        shown = [block.rsplit("\nAnswer: ", 1)[1] for block in prompt.split("\n\n")[:-1]]
        assert sorted(shown) == sorted(items[i].answer for i in demos)
        assert all(s != items[i].answer for s, i in zip(shown, demos))


def test_metric_spec_shuffled_labels_needs_two_shots():
    from pydantic import ValidationError

    from icltest.schema.spec import MetricSpec

    assert MetricSpec(name="accuracy", task="antonym", shots=3, shuffled_labels=True).shuffled_labels
    with pytest.raises(ValidationError, match="shuffled_labels needs shots >= 2"):
        MetricSpec(name="accuracy", task="antonym", shots=1, shuffled_labels=True)


# ------------------------------------------------------------------ BOS: one rule for probes and prompts

def _tokenizer_without_post_processor(bos: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(vocab=VOCAB, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    kwargs = {"bos_token": "<bos>"} if bos else {}
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", **kwargs)


def test_bos_is_prepended_once_when_the_tokenizer_has_one(tok):
    adds = encode_prompts(tok, ["hot ->"], ["cold"], chat=False)             # its post-processor adds <bos>
    lacks = encode_prompts(_tokenizer_without_post_processor(True), ["hot ->"], ["cold"], chat=False)
    none = encode_prompts(_tokenizer_without_post_processor(False), ["hot ->"], ["cold"], chat=False)
    off = encode_prompts(tok, ["hot ->"], ["cold"], chat=False, bos="no")
    expected = [VOCAB["<bos>"], VOCAB["hot"], VOCAB["->"]]
    assert adds.input_ids == [expected] and lacks.input_ids == [expected]
    assert adds.params["bos"] == lacks.params["bos"] == VOCAB["<bos>"]
    assert none.input_ids == [expected[1:]] and none.params["bos"] is None
    assert off.input_ids == [expected[1:]] and off.params["bos"] is None
    assert adds.answer_ids == lacks.answer_ids == none.answer_ids == [VOCAB["cold"]]


def test_the_bos_rule_matches_random_token_probes():
    from icltest.probes import vocab_from_tokenizer

    lacks = _tokenizer_without_post_processor(True)
    batch = build_icl_prompts("antonym", lacks, shots=2, n=3, seed=0)
    assert all(ids[0] == vocab_from_tokenizer(lacks).bos_id and ids[1] != ids[0] for ids in batch.input_ids)
    assert batch.params["bos"] == vocab_from_tokenizer(lacks).bos_id


# ------------------------------------------------------------------ the run layer on the constructed model

@pytest.fixture(scope="module")
def loaded():
    from icltest.models.adapters import Adapter
    from icltest.models.loading import LoadedModel, ModelSource
    from icltest.testing import build_known_circuit

    kc = build_known_circuit()
    return LoadedModel(kc.model, kc.tokenizer, Adapter.for_model(kc.model), ModelSource(path="known-circuit"))


def test_run_scores_colliding_answers_in_full(loaded, tmp_path):
    from icltest.runs.run import Run
    from icltest.schema.spec import MetricSpec
    from icltest.session import Session

    pairs = [{"input": f"t{i}", "output": f"t{i + 20}"} for i in range(1, 15)]
    pairs += [{"input": "t15", "output": "t50 t51"}, {"input": "t16", "output": "t50 t52"},
              {"input": "t17", "output": "t53 t51"}]
    path = tmp_path / "collide.yaml"
    path.write_text(yaml.safe_dump({"name": "collide", "pairs": pairs}), encoding="utf-8")
    model = loaded.model
    for name in ("accuracy", "answer_prob"):
        run = Run(Session(), loaded, MetricSpec(name=name, task=str(path), shots=2, n=24, seed=0, split="select"))
        assert run.inputs.params["full_answer_items"] == sum(run.inputs.full) > 0
        expected = []
        inputs = run.inputs
        for row, mask, answer, full in zip(inputs.tokens, inputs.mask, inputs.answer_tokens, inputs.full):
            ids = row[mask.bool()]
            with torch.no_grad():
                probs = torch.softmax(model(input_ids=ids[None]).logits[0].float(), -1)
            if full:  # the input is prompt + answer[:-1]; the last len(answer) positions predict it
                assert ids[-(len(answer) - 1):].tolist() == answer[:-1]
                steps = probs[-len(answer):]
            else:
                steps = probs[-1:]
                answer = answer[:1]
            if name == "accuracy":
                expected.append(float(all(int(s.argmax()) == a for s, a in zip(steps, answer))))
            else:
                expected.append(math.prod(float(s[a]) for s, a in zip(steps, answer)))
        assert run.value() == pytest.approx(sum(expected) / len(expected), abs=1e-5)
