"""ICL task and book probes: data loading, validation, seeded prompt building and answer tokens.

The tokenizer is a real `tokenizers` WordLevel model over every word in the shipped data, split by
the Whitespace pre-tokenizer (``\\w+|[^\\w\\s]+``) with a BOS post-processor. Because its splitting
rule is a plain regex, each test computes the expected ids itself (regex + vocab lookup) instead of
asking the tokenizer, so a wrong answer position in `encode_prompts` cannot agree with itself.
"""
from __future__ import annotations

import re
from importlib import resources

import pytest
import torch
import yaml

from icltest.errors import InputError
from icltest.probes.books import BOOK_KINDS, build_book_prompts, load_book
from icltest.probes.tasks import (
    Pair,
    PromptFormat,
    Task,
    TaskBatch,
    available_tasks,
    build_icl_prompts,
    load_task,
    pad_left,
    parse_task,
    score_first_token,
    use_chat_template,
)

WORD = re.compile(r"\w+|[^\w\s]+")
SHIPPED = ("antonym", "capitalize", "country_capital", "english_french", "present_past", "singular_plural")
EXTRA_WORDS = ("user", "assistant", "to", "Question", "Answer", "->", ":", "?")  # words the code adds
CHAT_TEMPLATE = (
    "{% for message in messages %}user : {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)


def _strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _data_texts() -> list[str]:
    """Every string value in the shipped data (parsed, so YAML quotes do not glue onto words)."""
    folder = resources.files("icltest").joinpath("data", "tasks")
    return [s for e in folder.iterdir() if e.name.endswith(".yaml")
            for s in _strings(yaml.safe_load(e.read_text(encoding="utf-8")))]


def _build_vocab() -> dict[str, int]:
    vocab = {"<bos>": 0, "<unk>": 1, "<pad>": 2}
    words = {w for text in _data_texts() for w in WORD.findall(text)} | set(EXTRA_WORDS)
    for w in sorted(words):
        vocab.setdefault(w, len(vocab))
    return vocab


VOCAB = _build_vocab()


def _make_tokenizer(chat_template: str | None = None):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(vocab=VOCAB, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 0)])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", unk_token="<unk>", pad_token="<pad>")
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


@pytest.fixture(scope="module")
def tok():
    return _make_tokenizer()


@pytest.fixture(scope="module")
def chat_tok():
    return _make_tokenizer(CHAT_TEMPLATE)


def _ids(text: str) -> list[int]:
    return [VOCAB[w] for w in WORD.findall(text)]


def _first_id(answer: str) -> int:
    return VOCAB[WORD.findall(answer)[0]]


def _mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


# ------------------------------------------------------------------------------- loading tasks

def test_available_tasks_lists_shipped_pair_tasks_only():
    names = available_tasks()
    assert set(SHIPPED) <= set(names)
    assert names == sorted(names)
    for kind in BOOK_KINDS:  # book files have items:, not pairs:
        assert kind not in names


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_task_loads_with_unique_inputs(name):
    task = load_task(name)
    assert task.name == name
    assert len(task.pairs) >= 20
    assert len({p.input for p in task.pairs}) == len(task.pairs)
    assert all(isinstance(p.input, str) and p.input.strip() for p in task.pairs)
    assert all(isinstance(p.output, str) and p.output.strip() for p in task.pairs)


@pytest.mark.parametrize("name", SHIPPED)
def test_no_shipped_answer_appears_in_another_pair(name):
    # A demonstration must never show a query's answer, so no output may be another pair's word.
    task = load_task(name)
    for i, pair in enumerate(task.pairs):
        for j, other in enumerate(task.pairs):
            if i != j:
                assert pair.output not in (other.input, other.output), (pair, other)


def test_every_available_task_loads():
    for name in available_tasks():
        assert load_task(name).name == name


def test_load_task_typo_suggests_the_close_name():
    with pytest.raises(InputError, match=r"unknown task 'antonymm'\. Did you mean 'antonym'\?") as err:
        load_task("antonymm")
    assert "singular_plural" in str(err.value)  # the available names are listed


def test_load_task_unrelated_name_has_no_suggestion():
    with pytest.raises(InputError, match="unknown task 'zzqqxx'") as err:
        load_task("zzqqxx")
    assert "Did you mean" not in str(err.value)


def test_load_task_from_user_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        'name: "mine"\nprompt: {separator: " =>"}\npairs:\n'
        '  - {input: "a", output: "b"}\n  - {input: "c", output: "d"}\n',
        encoding="utf-8",
    )
    task = load_task(str(path))
    assert task.name == "mine"
    assert task.pairs == (Pair("a", "b"), Pair("c", "d"))
    assert task.prompt == PromptFormat(separator=" =>")
    assert task.prompt.demonstration(Pair("a", "b")) == "a => b"
    with pytest.raises(InputError, match="does not exist"):
        load_task(str(tmp_path / "missing.yaml"))


def test_load_task_user_file_with_bad_yaml(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(InputError, match="not valid YAML"):
        load_task(str(path))
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(InputError, match="expected a mapping at top level"):
        load_task(str(path))


# ------------------------------------------------------------------------------- parse_task

GOOD = {"name": "t", "pairs": [{"input": "a", "output": "b"}, {"input": "c", "output": "d"}]}


def _with(**changes):
    data = {**GOOD, **changes}
    return {k: v for k, v in data.items() if v is not None}


def test_parse_task_accepts_minimal_mapping():
    task = parse_task(dict(GOOD), "x.yaml")
    assert task == Task(name="t", description="", pairs=(Pair("a", "b"), Pair("c", "d")), prompt=PromptFormat())


@pytest.mark.parametrize(
    "data, match",
    [
        (_with(pairz=[]), r"unknown key\(s\) \['pairz'\]"),
        (_with(pairs=[{"input": "a", "output": "b"}, {"input": "a", "output": "c"}]), r"pairs\[1\] repeats input 'a'"),
        (_with(pairs=[{"input": "a", "output": "b"}, {"input": 3, "output": "c"}]), r"pairs\[1\]\.input must be a non-empty string"),
        (_with(pairs=[{"input": "a", "output": "b"}, {"input": "c", "output": "  "}]), r"pairs\[1\]\.output must be a non-empty string"),
        (_with(pairs=[{"input": "a", "output": "b"}, {"input": "c", "output": "d", "note": "x"}]), r"exactly input and output"),
        (_with(pairs=[{"input": "a", "output": "b"}]), "at least 2"),
        (_with(pairs="a -> b"), "at least 2"),
        (_with(name=None), "name must be a non-empty string"),
        (_with(prompt={"sep": " ->"}), r"unknown prompt key\(s\) \['sep'\]"),
        (_with(prompt={"separator": 5}), "prompt.separator must be a string"),
        (_with(prompt=[" ->"]), "prompt must be a mapping"),
    ],
)
def test_parse_task_rejects_bad_data(data, match):
    with pytest.raises(InputError, match=match) as err:
        parse_task(data, "where.yaml")
    assert str(err.value).startswith("where.yaml: ")


def test_parse_task_unquoted_yaml_boolean_is_explained():
    data = yaml.safe_load('name: "t"\npairs:\n  - {input: "a", output: yes}\n  - {input: "c", output: "d"}\n')
    assert data["pairs"][0]["output"] is True  # what YAML does to an unquoted yes
    with pytest.raises(InputError, match=r"pairs\[0\]\.output must be a non-empty string, got True.*quote"):
        parse_task(data, "t.yaml")


# -------------------------------------------------------------------------- build_icl_prompts

def test_icl_prompts_are_seeded(tok):
    a = build_icl_prompts("antonym", tok, shots=3, n=12, seed=11)
    b = build_icl_prompts("antonym", tok, shots=3, n=12, seed=11)
    c = build_icl_prompts("antonym", tok, shots=3, n=12, seed=12)
    assert a.prompts == b.prompts and a.answer_ids == b.answer_ids
    assert a.query_indices == b.query_indices and a.demo_indices == b.demo_indices
    assert a.prompts != c.prompts
    assert a.params == {"task": "antonym", "shots": 3, "n": 12, "seed": 11, "template": "plain",
                        "split": "test", "items": 32, "items_total": 67, "shuffled_labels": False,
                        "bos": VOCAB["<bos>"], "answer_id_fallbacks": 0, "colliding_answers": 0,
                        "full_answer_items": 0}


@pytest.mark.parametrize("shots", [0, 1, 4])
def test_icl_prompt_layout_and_query_never_a_demonstration(tok, shots):
    task = load_task("country_capital")
    batch = build_icl_prompts(task, tok, shots=shots, n=40, seed=3)
    assert len(batch) == 40
    all_demo_lines = {f"{p.input} -> {p.output}" for p in task.pairs}
    for prompt, q, demos, answer in zip(batch.prompts, batch.query_indices, batch.demo_indices, batch.answers):
        query = task.pairs[q]
        lines = prompt.split("\n")
        assert len(lines) == shots + 1
        assert lines[-1] == f"{query.input} ->"  # ends at the separator, no trailing space
        demo_lines = lines[:-1]
        assert len(set(demo_lines)) == shots
        assert all(line in all_demo_lines for line in demo_lines)
        assert f"{query.input} -> {query.output}" not in demo_lines
        assert not any(line.startswith(f"{query.input} ->") for line in demo_lines)
        assert q not in demos and len(demos) == shots
        assert demo_lines == [f"{task.pairs[i].input} -> {task.pairs[i].output}" for i in demos]
        assert answer == query.output


def test_icl_answer_ids_are_first_token_of_spaced_answer(tok):
    task = load_task("english_french")
    batch = build_icl_prompts(task, tok, shots=2, n=30, seed=0)
    assert batch.params["answer_id_fallbacks"] == 0
    for prompt, ids, answer, answer_id, cont in zip(
        batch.prompts, batch.input_ids, batch.answers, batch.answer_ids, batch.continuations
    ):
        assert cont == " " + answer
        assert ids == [VOCAB["<bos>"]] + _ids(prompt)  # plain prompts get the BOS special token
        assert answer_id == _first_id(answer)
        assert answer_id != VOCAB["<unk>"]


def test_icl_answer_id_fallback_when_boundary_merges(tok):
    # separator " to" + empty answer prefix: "hot tocold" merges "to" and the answer into one
    # unknown word, so the prompt's ids are not a prefix of the full text's; the answer is then
    # tokenized alone.
    pairs = (Pair("hot", "cold"), Pair("big", "small"), Pair("fast", "slow"))
    task = Task(name="merge", description="", pairs=pairs, prompt=PromptFormat(separator=" to", answer_prefix=""))
    batch = build_icl_prompts(task, tok, shots=1, n=3, seed=0, split="all")
    assert batch.params["answer_id_fallbacks"] == 3
    assert batch.continuations == batch.answers
    assert batch.answer_ids == [VOCAB[a] for a in batch.answers]
    assert sorted(batch.answers) == ["cold", "slow", "small"]  # n == len(pairs): each query once


def test_icl_queries_cycle_through_all_pairs(tok):
    task = load_task("antonym")
    batch = build_icl_prompts(task, tok, shots=1, n=len(task.pairs) + 5, seed=4, split="all")
    assert sorted(batch.query_indices[: len(task.pairs)]) == list(range(len(task.pairs)))
    batch = build_icl_prompts(task, tok, shots=1, n=40, seed=4)  # the test split: 32 items
    assert sorted(batch.query_indices[:32]) == sorted(set(batch.query_indices))


def test_icl_shots_bounds(tok):
    pairs = (Pair("hot", "cold"), Pair("big", "small"), Pair("fast", "slow"))
    task = Task(name="tiny", description="", pairs=pairs)
    batch = build_icl_prompts(task, tok, shots=2, n=3, seed=0, split="all")  # every other pair is shown
    for prompt, q in zip(batch.prompts, batch.query_indices):
        others = {f"{p.input} -> {p.output}" for i, p in enumerate(pairs) if i != q}
        assert set(prompt.split("\n")[:-1]) == others
    for bad in (3, -1, 1.5):
        with pytest.raises(InputError, match=r"shots must be an int in \[0, 2\]"):
            build_icl_prompts(task, tok, shots=bad, n=2, seed=0, split="all")
    with pytest.raises(ValueError, match="n must be >= 1"):
        build_icl_prompts(task, tok, shots=1, n=0, seed=0, split="all")


def test_icl_chat_template(tok, chat_tok):
    task = load_task("antonym")
    batch = build_icl_prompts(task, chat_tok, shots=1, n=4, seed=2, chat_template="auto")
    assert batch.params["template"] == "chat"
    for prompt, ids, q, answer_id, cont in zip(
        batch.prompts, batch.input_ids, batch.query_indices, batch.answer_ids, batch.continuations
    ):
        demo = task.pairs[batch.demo_indices[batch.query_indices.index(q)][0]]
        text = f"{demo.input} -> {demo.output}\n{task.pairs[q].input} ->"
        assert prompt == f"user : {text}\nassistant :"
        assert ids == _ids(prompt)  # no extra BOS: the template writes the specials
        assert cont == task.pairs[q].output  # bare answer after the generation prompt
        assert answer_id == _first_id(task.pairs[q].output)
    assert build_icl_prompts(task, chat_tok, shots=1, n=2, seed=2, chat_template="no").params["template"] == "plain"
    assert build_icl_prompts(task, tok, shots=1, n=2, seed=2, chat_template="auto").params["template"] == "plain"


def test_use_chat_template_choices(tok, chat_tok):
    assert use_chat_template(chat_tok, "auto") is True
    assert use_chat_template(chat_tok, "no") is False
    assert use_chat_template(tok, "auto") is False
    with pytest.raises(InputError, match="no chat template"):
        use_chat_template(tok, "yes")
    with pytest.raises(ValueError, match="chat_template must be one of"):
        use_chat_template(tok, "maybe")


# ------------------------------------------------------------------- scoring and padding

def _batch(answer_ids: list[int]) -> TaskBatch:
    n = len(answer_ids)
    return TaskBatch(prompts=["p"] * n, input_ids=[[1]] * n, answers=["a"] * n, answer_ids=answer_ids,
                     continuations=[" a"] * n)


def test_score_first_token_hand_made():
    batch = _batch([5, 7, 9, 2])
    assert score_first_token([5, 0, 9, 2], batch) == pytest.approx(0.75)
    assert score_first_token(torch.tensor([5, 7, 9, 2]), batch) == pytest.approx(1.0)
    assert score_first_token([7, 5, 2, 9], batch) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="got 3 predictions for a batch of 4"):
        score_first_token([5, 7, 9], batch)
    with pytest.raises(ValueError, match="empty batch"):
        score_first_token([], _batch([]))


def test_pad_left_hand_made():
    ids, mask = pad_left([[1, 2, 3], [4], [5, 6]], pad_id=9)
    assert ids.dtype == torch.long and mask.dtype == torch.long
    assert ids.tolist() == [[1, 2, 3], [9, 9, 4], [9, 5, 6]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]
    with pytest.raises(ValueError, match="at least one sequence"):
        pad_left([], pad_id=0)
    with pytest.raises(ValueError, match="empty sequence"):
        pad_left([[1], []], pad_id=0)


# ------------------------------------------------------------------------------ book probes

def test_open_book_prompt_holds_context_with_answer(tok):
    items = load_book("open_book")
    batch = build_book_prompts("open_book", tok, n=30, seed=1)
    assert batch.params["task"] == "open_book" and batch.params["answer_id_fallbacks"] == 0
    for prompt, ids, q, answer, answer_id in zip(
        batch.prompts, batch.input_ids, batch.query_indices, batch.answers, batch.answer_ids
    ):
        item = items[q]
        assert prompt == f"{item.context}\nQuestion: {item.question}\nAnswer:"
        context = prompt.split("\nQuestion:")[0]
        assert _mentions(context, answer)
        assert answer == item.answer
        assert ids == [VOCAB["<bos>"]] + _ids(prompt)
        assert answer_id == _first_id(answer)


def test_closed_book_prompt_has_no_context(tok):
    items = load_book("closed_book")
    assert all(item.context == "" for item in items)
    batch = build_book_prompts("closed_book", tok, n=len(items), seed=2, split="all")
    assert sorted(batch.query_indices) == list(range(len(items)))
    for prompt, q, answer, answer_id in zip(batch.prompts, batch.query_indices, batch.answers, batch.answer_ids):
        assert prompt == f"Question: {items[q].question}\nAnswer:"
        assert not _mentions(prompt, answer)
        assert answer_id == _first_id(answer)


def test_counterfactual_context_contradicts_with_the_answer(tok):
    items = load_book("counterfactual")
    batch = build_book_prompts("counterfactual", tok, n=10, seed=0)
    for prompt, q, answer in zip(batch.prompts, batch.query_indices, batch.answers):
        assert prompt.startswith(items[q].context + "\nQuestion: ")
        assert _mentions(items[q].context, answer)
        assert prompt.endswith("\nAnswer:")


@pytest.mark.parametrize("kind", BOOK_KINDS)
def test_book_demonstrations_never_contain_the_query_answer(tok, kind):
    # Many shots over every item several times, so items whose answer another item mentions
    # (closed book: "Eiffel Tower -> France" vs "capital of France? -> Paris") are surely exercised.
    items = load_book(kind)
    batch = build_book_prompts(kind, tok, n=4 * len(items), seed=5, shots=10, split="all")
    for prompt, q, demos, answer in zip(batch.prompts, batch.query_indices, batch.demo_indices, batch.answers):
        blocks = prompt.split("\n\n")
        assert len(blocks) == 11
        assert q not in demos and len(set(demos)) == 10
        for block, i in zip(blocks[:-1], demos):
            assert block.endswith(f"\nAnswer: {items[i].answer}")
            assert not _mentions(block, answer), (answer, block)
        assert blocks[-1].endswith("\nAnswer:")
        assert answer == items[q].answer


def test_book_prompts_seeded_and_errors(tok):
    a = build_book_prompts("closed_book", tok, n=8, seed=9, shots=1)
    b = build_book_prompts("closed_book", tok, n=8, seed=9, shots=1)
    c = build_book_prompts("closed_book", tok, n=8, seed=10, shots=1)
    assert a.prompts == b.prompts and a.demo_indices == b.demo_indices
    assert a.prompts != c.prompts
    with pytest.raises(ValueError, match="unknown book kind 'open-book'"):
        build_book_prompts("open-book", tok, n=2, seed=0)
    with pytest.raises(ValueError, match="shots must be a non-negative int"):
        build_book_prompts("open_book", tok, n=2, seed=0, shots=-1)
    with pytest.raises(InputError, match=r"shots=100 but only \d+ counterfactual items"):
        build_book_prompts("counterfactual", tok, n=2, seed=0, shots=100)


def test_load_book_validation(tmp_path, monkeypatch):
    import icltest.probes.books as books

    monkeypatch.setattr(books, "_data_dir", lambda: tmp_path)

    def write(kind: str, body: str) -> None:
        (tmp_path / f"{kind}.yaml").write_text(body, encoding="utf-8")

    write("closed_book", 'items:\n  - {question: "Q1?", answer: "A"}\n  - {question: "Q2?", answer: "B", context: "B."}\n')
    with pytest.raises(ValueError, match=r"items\[1\] is closed-book and must not have a context"):
        load_book("closed_book")
    write("open_book", 'items:\n  - {question: "Q1?", answer: "A", context: "A is here."}\n'
                       '  - {question: "Q2?", answer: "B", context: "Bob is here."}\n')
    with pytest.raises(ValueError, match=r"items\[1\] answer 'B' does not appear in its context"):
        load_book("open_book")
    write("counterfactual", 'items:\n  - {question: "Q1?", answer: "A", context: "A."}\n  - {question: "Q2?", answer: "B"}\n')
    with pytest.raises(ValueError, match=r"items\[1\] needs a context"):
        load_book("counterfactual")
    write("closed_book", 'items:\n  - {question: "Q1?", answer: "A"}\n')
    with pytest.raises(ValueError, match="at least 2"):
        load_book("closed_book")
