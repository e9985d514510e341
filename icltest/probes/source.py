"""Conflict prompts for source tracking: the context says one thing, memory another, and the model's
own answer says which source won.

Every prompt is a closed-book question behind a context that contradicts world knowledge, in one
of four statement forms built from the closed-book items::

    What is the capital of X?         ->  In this story, the capital of X is <B>.
    What language is spoken in X?     ->  In this story, the language spoken in X is <B>.
    In which country is X? (...are)   ->  In this story, X is in <B>.
    On which continent is X?          ->  In this story, X is on <B>.

``B`` is the true answer of another item of the same form in the same split, so every answer
word plays both roles across prompts (the context's answer in one, the remembered answer in
another) and the question wording is shared by both classes. After the model runs, a prompt is
labelled *context* when its greedy first token is B's, *memory* when it is the true answer A's,
and dropped otherwise (:func:`label_by_output`). The demonstrations are the same mix for every
prompt (for 2 shots: an open-book item and a closed-book item behind an unrelated context, in
random order) and never mention A or B.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from icltest.errors import InputError
from icltest.probes.books import BookItem, _mentions, load_book
from icltest.probes.prompts import TaskBatch, encode_prompts
from icltest.probes.splits import check_split, split_indices

CONTEXT, MEMORY = 1, 0
FORMS: tuple[tuple[str, str], ...] = (
    (r"^What is the capital of (.+)\?$", "In this story, the capital of {x} is {b}."),
    (r"^What language is spoken in (.+)\?$", "In this story, the language spoken in {x} is {b}."),
    (r"^In which country (?:is|are) (.+)\?$", "In this story, {x} {verb} in {b}."),
    (r"^On which continent is (.+)\?$", "In this story, {x} is on {b}."),
)


@dataclass(frozen=True)
class Conflict:
    """A closed-book question whose context states another answer."""

    question: str
    memory: str  # the true answer (A)
    context_answer: str  # the answer the context states (B)
    context: str

    def text(self) -> str:
        return BookItem(self.question, self.context_answer, self.context).text()


def _form(question: str) -> tuple[int, str, str] | None:
    for k, (pattern, _) in enumerate(FORMS):
        m = re.match(pattern, question)
        if m:
            verb = "are" if question.startswith("In which country are") else "is"
            return k, m.group(1), verb
    return None


def conflict_pool(split: str) -> list[tuple[int, int, str, str]]:
    """Closed-book items of ``split`` with a statement form: (item index, form, subject, verb)."""
    items = load_book("closed_book")
    pool = split_indices([it.question for it in items], split)
    out = []
    for i in pool:
        found = _form(items[i].question)
        if found is not None:
            out.append((i, *found))
    return out


def _first_id(tokenizer: Any, word: str) -> int:
    return int(encode_prompts(tokenizer, ["Answer:"], [word], chat=False, bos="no").answer_ids[0])


def build_source_prompts(tokenizer: Any, *, n: int, seed: int, split: str = "test", shots: int = 2,
                         bos: Any = "auto") -> tuple[TaskBatch, list[tuple[int, int]]]:
    """n conflict prompts from ``split`` and, per prompt, (context answer's first token, remembered
    answer's first token); pairs whose first tokens coincide on this tokenizer are never drawn."""
    check_split(split)
    if shots % 2:
        raise InputError(f"source-tracking prompts take an even number of shots (half of each kind), got {shots}")
    closed, open_items = load_book("closed_book"), load_book("open_book")
    pool = conflict_pool(split)
    open_pool = split_indices([it.question for it in open_items], split)
    closed_pool = split_indices([it.question for it in closed], split)
    first = {closed[i].answer: _first_id(tokenizer, closed[i].answer) for i, *_ in pool}
    # an item needs another of its form whose answer starts with a different token
    pool = [p for p in pool if any(f == p[1] and first[closed[j].answer] != first[closed[p[0]].answer]
                                   for j, f, *_ in pool)]
    if not pool:
        raise InputError(f"split {split} has no pair of conflicting answers on this tokenizer")
    rng = random.Random(seed)
    texts, answers, ids = [], [], []
    for _ in range(n):
        i, form, subject, verb = rng.choice(pool)
        a = closed[i].answer
        b = rng.choice([closed[j].answer for j, f, *_ in pool if f == form and first[closed[j].answer] != first[a]])
        template = FORMS[form][1]
        query = Conflict(closed[i].question, a, b, template.format(x=subject, b=b, verb=verb))

        def clean(text: str) -> bool:
            return not _mentions(text, a) and not _mentions(text, b)

        half = shots // 2
        open_demos = [open_items[j] for j in open_pool if clean(open_items[j].text(True))]
        closed_demos = [closed[j] for j in closed_pool if j != i and clean(closed[j].text(True))]
        contexts = [open_items[j].context for j in open_pool if clean(open_items[j].context)]
        if half > min(len(open_demos), len(closed_demos)) or not contexts:
            raise InputError(f"shots={shots} but split {split} has too few items to serve as demonstrations")
        shown = rng.sample(open_demos, half)
        shown += [BookItem(c.question, c.answer, rng.choice([t for t in contexts if not _mentions(t, c.answer)] or contexts))
                  for c in rng.sample(closed_demos, half)]
        rng.shuffle(shown)
        texts.append("\n\n".join([it.text(with_answer=True) for it in shown] + [query.text()]))
        answers.append(b)
        ids.append((first[b], first[a]))
    params = {"task": "source", "shots": shots, "n": n, "seed": seed, "split": split, "template": "plain",
              "conflict_items": len(pool)}
    batch = encode_prompts(tokenizer, texts, answers, chat=False, params=params, bos=bos)
    return batch, ids


def label_by_output(predicted: list[int], ids: list[tuple[int, int]]) -> list[int | None]:
    """Per prompt: CONTEXT when the model's first token is the context answer's, MEMORY when it is
    the remembered answer's, None when it is neither."""
    out: list[int | None] = []
    for p, (ctx_id, mem_id) in zip(predicted, ids):
        out.append(CONTEXT if p == ctx_id else MEMORY if p == mem_id else None)
    return out
