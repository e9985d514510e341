"""Spans in book prompts, their masks in padded batches, and attention mass on them.

Expected values come from outside the code under test: span tokens from a regex over the item's
own text (the word-level tokenizer splits by the same regex), attention from the constructed
model's known heads (icltest/testing/known_circuit.py) and from the attention maps Hugging Face
returns with ``output_attentions=True``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from icltest.errors import InputError
from icltest.probes.books import book_spans, build_book_prompts, load_book
from icltest.probes.prompts import pad_left
from icltest.probes.spans import book_char_ranges, span_masks, token_spans
from icltest.scores.span_attention import measure_span_attention, span_attention
from test_tasks import CHAT_TEMPLATE, VOCAB, _make_tokenizer

WORD = re.compile(r"\w+|[^\w\s]+")


@pytest.fixture(scope="module")
def tok():
    return _make_tokenizer()


def _ids(text: str) -> list[int]:
    return [VOCAB[w] for w in WORD.findall(text)]


# ------------------------------------------------------------------ spans in book prompts

@pytest.mark.parametrize("kind", ["open_book", "counterfactual", "closed_book"])
def test_book_spans_hold_the_query_parts(tok, kind: str) -> None:
    items = load_book(kind)
    batch = build_book_prompts(kind, tok, n=10, seed=2, shots=2, spans=True)
    assert len(batch.spans) == len(batch)
    for ids, spans, q, prompt in zip(batch.input_ids, batch.spans, batch.query_indices, batch.prompts):
        item = items[q]
        assert ids[0] == VOCAB["<bos>"]  # BOS is index 0: spans count it
        picked = {name: [ids[i] for i in index] for name, index in spans.items()}
        assert picked["question"] == _ids(item.question)
        assert picked["context"] == _ids(item.context)
        # the answer's occurrences in the context: every occurrence, nothing else
        n_mentions = len(re.findall(rf"(?<!\w){re.escape(item.answer)}(?!\w)", item.context))
        assert picked["answer"] == _ids(item.answer) * n_mentions
        if kind != "closed_book":
            assert n_mentions >= 1
        assert picked["prompt_format"] == [VOCAB["Question"], VOCAB[":"], VOCAB["Answer"], VOCAB[":"]]
        demo_text = prompt[: prompt.rindex("\n\n")]
        assert picked["demonstrations"] == _ids(demo_text)
        # the query's spans follow the demonstrations, in prompt order
        assert max(spans["demonstrations"]) < min(spans["prompt_format"])
        if item.context:
            assert max(spans["answer"]) <= max(spans["context"]) < min(spans["question"])


def test_no_shots_no_demonstrations_and_spans_are_opt_in(tok) -> None:
    batch = build_book_prompts("open_book", tok, n=4, seed=0, shots=0, spans=True)
    assert all(s["demonstrations"] == [] for s in batch.spans)
    assert all(1 in s["context"] for s in batch.spans)  # the context starts right after BOS
    assert build_book_prompts("open_book", tok, n=4, seed=0, shots=0).spans == []


def test_chat_template_prompts_have_no_spans() -> None:
    chat = _make_tokenizer(CHAT_TEMPLATE)
    batch = build_book_prompts("open_book", chat, n=3, seed=0, shots=1, chat_template="yes", spans=True)
    assert batch.spans == []


def test_ids_that_are_not_the_prompts_are_refused(tok) -> None:
    batch = build_book_prompts("open_book", tok, n=2, seed=0, shots=1)
    batch.input_ids[1] = batch.input_ids[1][:-1]
    with pytest.raises(InputError, match="not the prompt's input_ids"):
        book_spans(batch, tok)


def test_a_token_joins_a_span_when_its_characters_overlap_it() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<bos>": 0, "ab": 1, "cd": 2, "e": 3}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<bos>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    t = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>")
    text = "ab cd e"  # tokens at chars [0,2) [3,5) [6,7)
    got = token_spans(t, text, [0, 1, 2, 3], {"x": [(1, 4)], "gap": [(2, 3)], "two": [(0, 1), (6, 7)]}, bos_id=0)
    assert got == {"x": [1, 2], "gap": [], "two": [1, 3]}
    assert token_spans(t, text, [1, 2, 3], {"x": [(1, 4)]}) == {"x": [0, 1]}  # no BOS: no shift


def test_char_ranges_refuse_a_prompt_that_is_not_the_query() -> None:
    with pytest.raises(InputError, match="does not end with its query"):
        book_char_ranges("something else", "Q?", "A", "A is here.")


# ------------------------------------------------------------------ masks in padded batches

def test_span_masks_shift_by_the_padding_and_keep_teacher_forced_rows() -> None:
    # row 0: 3 tokens, row 1: 5 tokens (a prompt of 3 + 2 teacher-forced answer tokens), row 2: 4
    ids, mask = pad_left([[9, 9, 9], [9, 9, 9, 9, 9], [9, 9, 9, 9]], 0)
    spans = [{"q": [1, 2], "a": []}, {"q": [0, 2], "a": [1]}, {"q": [3], "a": [0]}]
    got = span_masks(spans, mask)
    assert got["q"].tolist() == [[False, False, False, True, True],
                                 [True, False, True, False, False],
                                 [False, False, False, False, True]]
    assert got["a"].tolist() == [[False] * 5,
                                 [False, True, False, False, False],
                                 [False, True, False, False, False]]
    assert list(span_masks(spans, mask, names=["a"])) == ["a"]


@pytest.mark.parametrize("spans, message", [
    ([], "no spans"),
    ([{"q": [0]}], "1 rows of spans for a batch of 2"),
    ([{"q": [0]}, {"x": [0]}], "row 1 has no span 'q'"),
    ([{"q": [0]}, {"q": [3]}], "row 1 span 'q' has indices outside its 2 tokens"),
])
def test_span_mask_errors(spans, message) -> None:
    _, mask = pad_left([[1, 2, 3], [1, 2]], 0)
    with pytest.raises(ValueError, match=re.escape(message)):
        span_masks(spans, mask)


# ------------------------------------------------------------------ attention mass: the constructed model

@pytest.fixture(scope="module")
def circuit():
    from icltest.models.adapters import Adapter
    from icltest.models.loading import LoadedModel, ModelSource
    from icltest.testing import build_known_circuit

    kc = build_known_circuit()
    return LoadedModel(kc.model, kc.tokenizer, Adapter.for_model(kc.model), ModelSource(path="known-circuit"))


def _masks(width: int, rows: int, **where: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
    out = {}
    for name, cells in where.items():
        m = torch.zeros(rows, width, dtype=torch.bool)
        for r, c in cells:
            m[r, c] = True
        out[name] = m
    return out


def test_known_heads_put_their_attention_where_they_are_built_to(circuit) -> None:
    # Row 0: the last token (6) occurs earlier at position 2. Row 1 is left-padded by 1: its own
    # positions 0..4 sit in columns 1..5, and its last token (3) occurs earlier at its position 1.
    ids, mask = pad_left([[0, 5, 6, 7, 8, 6], [0, 3, 4, 7, 3]], 0)
    spans = _masks(6, 2,
                   copy=[(0, 2), (1, 2)],          # the earlier copy of the last token
                   after=[(0, 3), (1, 3)],         # the token after that copy
                   previous=[(0, 4), (1, 4)],      # the position before the last
                   rest=[(0, 0), (0, 1), (0, 5), (1, 1), (1, 5)])  # everything else, incl. the last token
    got = measure_span_attention(circuit, ids, mask, spans)
    dup, prev, ind = (0, 1), (0, 0), (1, 0)
    for r in range(2):
        assert got.per_prompt["copy"][r][dup].item() > 0.99       # duplicate-token head
        assert got.per_prompt["previous"][r][prev].item() > 0.99  # previous-token head
        assert got.per_prompt["after"][r][ind].item() > 0.99      # induction head
    # Zero-weight heads attend uniformly over the row's real tokens: a span's share of them.
    # Row 0: 6 tokens; row 1: 5 tokens (padding must not count).
    expect = {"copy": [1 / 6, 1 / 5], "after": [1 / 6, 1 / 5], "previous": [1 / 6, 1 / 5], "rest": [3 / 6, 2 / 5]}
    for name, values in expect.items():
        for r, value in enumerate(values):
            for head in [(0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]:
                assert got.per_prompt[name][r][head].item() == pytest.approx(value, abs=1e-5)
            assert got.uniform_per_prompt[name][r].item() == pytest.approx(value, abs=1e-6)
        assert got.uniform[name] == pytest.approx(sum(values) / 2, abs=1e-6)
        assert got.mass[name][1, 3].item() == pytest.approx(sum(values) / 2, abs=1e-5)
    # the four spans partition each row's tokens: every head's mass sums to 1
    total = sum(got.per_prompt[name] for name in spans)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
    assert got.forward_passes == 1
    assert set(span_attention(circuit, ids, mask, spans)) == set(spans)


def test_query_position_other_than_the_last(circuit) -> None:
    ids, mask = pad_left([[0, 5, 6, 7, 5, 9]], 0)
    spans = _masks(6, 1, first=[(0, 1)], late=[(0, 5)])
    got = measure_span_attention(circuit, ids, mask, spans, query=4)  # token 5, seen first at 1
    assert got.per_prompt["first"][0][0, 1].item() > 0.99  # duplicate-token head
    assert got.per_prompt["late"][0].abs().max().item() < 1e-6  # position 5 is after the query
    assert got.uniform["first"] == pytest.approx(1 / 5) and got.uniform["late"] == 0.0


def test_measure_rejects_spans_on_padding_and_bad_shapes(circuit) -> None:
    ids, mask = pad_left([[0, 5, 6], [0, 5]], 0)
    with pytest.raises(ValueError, match="covers padding"):
        measure_span_attention(circuit, ids, mask, _masks(3, 2, s=[(1, 0)]))
    with pytest.raises(ValueError, match="does not match ids"):
        measure_span_attention(circuit, ids, mask, {"s": torch.zeros(2, 4, dtype=torch.bool)})
    with pytest.raises(ValueError, match="on padding"):
        measure_span_attention(circuit, ids, mask, _masks(3, 2, s=[(0, 1)]), query=0)


# ------------------------------------------------------------------ attention mass: real architectures, tiny

@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "gpt2"])
def test_mass_matches_the_attention_maps_the_model_returns(arch: str) -> None:
    from transformers import AutoModelForCausalLM

    from icltest.models.adapters import Adapter
    from icltest.models.loading import LoadedModel, ModelSource
    from icltest.testing.tiny_configs import CONFIGS

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(CONFIGS[arch](), attn_implementation="eager").eval()
    loaded = LoadedModel(model, None, Adapter.for_model(model), ModelSource(path=arch))
    g = torch.Generator().manual_seed(1)
    rows = [torch.randint(1, 50, (length,), generator=g).tolist() for length in (7, 4, 6)]
    ids, mask = pad_left(rows, 0)
    spans = {"a": torch.rand(ids.shape, generator=g) < 0.4, "b": torch.rand(ids.shape, generator=g) < 0.4}
    for m in spans.values():
        m &= mask.bool()
    got = measure_span_attention(loaded, ids, mask, spans, chunk=2)
    assert got.forward_passes == 2
    # independently: each row alone, unpadded, attention maps as the model returns them
    for r, row in enumerate(rows):
        with torch.no_grad():
            maps = model(input_ids=torch.tensor([row]), output_attentions=True).attentions
        pad = ids.shape[1] - len(row)
        for name, m in spans.items():
            keys = m[r, pad:].float()
            for layer, att in enumerate(maps):
                want = (att[0, :, -1, :] * keys).sum(-1)
                assert torch.allclose(got.per_prompt[name][r, layer], want, atol=1e-4), (arch, name, r, layer)


# ------------------------------------------------------------------ the claim's schema

HEAD = "schema_version: 1\nmodel: smollm2-135m\nclaims:\n"


def _errors(tmp_path: Path, text: str) -> str:
    from icltest.schema import SpecError, load_spec

    path = tmp_path / "s.yaml"
    path.write_text(HEAD + text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return str(info.value)


def test_head_attention_claims_validate(tmp_path: Path) -> None:
    from icltest.schema import load_spec

    (tmp_path / "s.yaml").write_text(HEAD + (
        "  - id: retrieval\n    kind: head_attention\n    heads: [19.1, L20H1]\n    span: answer\n"
        "    shots: 2\n    expect: '>= 0.3'\n    over_uniform: '>= 3'\n"
        "  - id: task\n    kind: head_attention\n    heads: {top: 4, by: attention}\n    span: question\n"
        "    task: closed_book\n    expect: '>= 0.1'\n"
        "  - id: demos\n    kind: head_attention\n    heads: {layers: '0-2'}\n    span: demonstrations\n"
        "    shots: 1\n    task: counterfactual\n    split: select\n    expect: '< 0.9'\n"))
    claims = load_spec(tmp_path / "s.yaml").spec.claims
    a, b, c = claims
    assert (a.task, a.shots, a.n, a.seed, a.split, a.chat_template) == ("open_book", 2, 48, 0, "test", "no")
    assert [(h.layer, h.head) for h in a.heads] == [(19, 1), (20, 1)] and str(a.over_uniform) == ">= 3"
    assert b.heads.top == 4 and b.heads.by == "attention" and b.over_uniform is None
    assert c.heads.layers == [0, 1, 2] and c.split == "select"
    from icltest.claims import head_attention

    assert [t.id for t in head_attention.targets(a)] == ["L19H1", "L20H1"]
    assert [t.id for t in head_attention.targets(b)] == ["top4"]
    assert [t.id for t in head_attention.targets(c)] == ["layers0-2"]


@pytest.mark.parametrize("claim, line, col, fragment", [
    # closed-book prompts have no context: no answer span (the error is at the span line)
    ("    heads: [1.0]\n    task: closed_book\n    span: answer\n    expect: '>= 0.3'\n", 8, 11,
     "claims[0].span: closed_book prompts have no context, so no answer span"),
    ("    heads: [1.0]\n    span: demonstrations\n    expect: '>= 0.3'\n", 7, 11,
     "span demonstrations needs shots >= 1"),
    ("    heads: [1.0]\n    span: answr\n    expect: '>= 0.3'\n", 7, 11, "got 'answr' (did you mean 'answer'?)"),
    # (the loader reports a bad `by` at the mapping's `top` value, as it does for head_score)
    ("    heads: {top: 3, by: induction}\n    span: answer\n    expect: '>= 0.3'\n", 6, 18,
     "got 'induction'; expected one of: attention"),
    ("    heads: [1.0]\n    span: answer\n", 4, 5, "expect"),
])
def test_head_attention_spec_errors_point_at_the_line(tmp_path: Path, claim: str, line: int, col: int,
                                                        fragment: str) -> None:
    out = _errors(tmp_path, "  - id: a\n    kind: head_attention\n" + claim)
    assert f"{tmp_path / 's.yaml'}:{line}:{col}" in out, out
    assert fragment in out, out
