"""Prompt texts -> token ids and answer tokens, shared by few-shot tasks and book probes.

Leading-space convention: a plain prompt ends with its separator WITHOUT a trailing space and the
answer is scored as the continuation ``" " + answer`` (" slow"). BPE tokenizers (SmolLM2, GPT-2,
Gemma) fold the space into the next word, so " slow" / " Paris" starts with a clean, distinctive
token, whereas a prompt ending in "-> " would leave a lone-space token and force the answer to be
tokenized without its space, a form the model rarely saw in running text.

The answer's tokens are read off ``tokenize(prompt + continuation)`` after the prompt's tokens,
which is robust to merges at the boundary. If the prompt's tokens are not a prefix of that (a merge
across the boundary), the continuation is tokenized alone; ``params["answer_id_fallbacks"]`` counts
how often that happened.

First tokens can collide: on SmolLM2's tokenizer " Doha" and " Dakar" start with the same piece,
so a first-token match cannot tell them apart. :func:`colliding_answers` finds, per tokenizer, the
answers whose first token another answer of the same task shares; those prompts are flagged
``full`` and scored on every answer token (teacher-forced, see ``icltest.scores.metrics``). A
one-token answer that is the first token of a longer one stays ambiguous even then.

BOS: plain prompts follow the rule of the random-token probes (``bos: auto``): the tokenizer's BOS
id is put first when it has one, exactly once (SmolLM2's tokenizer does not add its
``<|im_start|>``, id 1; Gemma's adds ``<bos>``, id 2 - both prompts now start with it once). Chat
prompts start with whatever the template writes. The id used is recorded in ``params["bos"]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from icltest.errors import InputError

CHAT_TEMPLATE_CHOICES = ("auto", "yes", "no")
BOS_CHOICES = ("auto", "yes", "no")


@dataclass
class TaskBatch:
    """Prompts and the answer tokens each should produce, shared by ICL tasks and book probes.

    Attributes:
        prompts: the prompt texts, each ending right before the answer.
        input_ids: token ids per prompt, ragged (batch them with `pad_left`), BOS included.
        answers: the bare expected answers ("Paris").
        answer_ids: the id of the answer's first token as it follows each prompt.
        continuations: the exact text appended after each prompt when scoring (" Paris").
        params: how the batch was built (task, shots, n, seed, split, bos, ...), for results.
        query_indices: index of each query item in the source data.
        demo_indices: indices of each prompt's demonstrations, in prompt order.
        answer_tokens: every token of each answer as it follows its prompt.
        full: per prompt, True when its first answer token is shared with another answer of the
            task, so it must be scored on all of ``answer_tokens``.
        spans: per prompt, span name -> token indices into that prompt's ``input_ids`` (BOS
            included in the indexing); see :mod:`icltest.probes.spans`. Empty unless asked for
            (``build_book_prompts(..., spans=True)``) and always empty with a chat template.
    """

    prompts: list[str]
    input_ids: list[list[int]]
    answers: list[str]
    answer_ids: list[int]
    continuations: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    query_indices: list[int] = field(default_factory=list)
    demo_indices: list[list[int]] = field(default_factory=list)
    answer_tokens: list[list[int]] = field(default_factory=list)
    full: list[bool] = field(default_factory=list)
    spans: list[dict[str, list[int]]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompts)


def use_chat_template(tokenizer: Any, chat_template: str) -> bool:
    """Resolve "auto"/"yes"/"no" against the tokenizer; "yes" without a template is an error."""
    if chat_template not in CHAT_TEMPLATE_CHOICES:
        raise ValueError(f"chat_template must be one of {CHAT_TEMPLATE_CHOICES}, got {chat_template!r}")
    has = bool(getattr(tokenizer, "chat_template", None))
    if chat_template == "yes" and not has:
        raise InputError("chat_template='yes' but the tokenizer has no chat template; use 'auto' or 'no'")
    return chat_template == "yes" or (chat_template == "auto" and has)


def bos_id_for(tokenizer: Any, bos: Any = "auto") -> int | None:
    """The BOS id plain prompts start with: the same rule as random-token probes' ``bos``."""
    if bos not in BOS_CHOICES + (True, False):
        raise ValueError(f"bos must be one of {BOS_CHOICES}, got {bos!r}")
    found = getattr(tokenizer, "bos_token_id", None)
    if bos in ("no", False):
        return None
    if found is None and bos in ("yes", True):
        raise InputError("bos: yes but the tokenizer defines no BOS token")
    return None if found is None else int(found)


def _encode(tokenizer: Any, text: str) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def colliding_answers(tokenizer: Any, answers: Sequence[str], answer_prefix: str = " ") -> frozenset[str]:
    """Answers whose first token (of ``answer_prefix + answer``) another, different answer shares."""
    by_first: dict[int, set[str]] = {}
    for answer in set(answers):
        ids = _encode(tokenizer, answer_prefix + answer)
        if not ids:
            raise InputError(f"answer {answer!r} tokenizes to nothing; check the task data")
        by_first.setdefault(ids[0], set()).add(answer)
    return frozenset(a for group in by_first.values() if len(group) > 1 for a in group)


def encode_prompts(
    tokenizer: Any,
    texts: Sequence[str],
    answers: Sequence[str],
    *,
    chat: bool,
    answer_prefix: str = " ",
    params: dict[str, Any] | None = None,
    bos: Any = "auto",
    full_answers: frozenset[str] = frozenset(),
) -> TaskBatch:
    """Tokenize prompt texts and find each answer's tokens in context.

    Args:
        full_answers: answers to score on every token (normally :func:`colliding_answers`).
        bos: "auto" (the tokenizer's BOS first, once, when it has one), "yes" or "no"; plain
            prompts only - a chat template writes its own special tokens.
    """
    bos_id = None if chat else bos_id_for(tokenizer, bos)
    prompts, ids, answer_ids, tokens, continuations, full = [], [], [], [], [], []
    fallbacks = 0
    for text, answer in zip(texts, answers):
        if chat:
            prompt = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
            )
            continuation = answer
        else:
            prompt, continuation = text, answer_prefix + answer
        prompt_ids = _encode(tokenizer, prompt)
        whole = _encode(tokenizer, prompt + continuation)
        if len(whole) > len(prompt_ids) and whole[: len(prompt_ids)] == prompt_ids:
            tail = whole[len(prompt_ids):]
        else:
            fallbacks += 1
            tail = _encode(tokenizer, continuation)
            if not tail:
                raise InputError(f"answer {answer!r} tokenizes to nothing; check the task data")
        if bos_id is not None and prompt_ids[:1] != [bos_id]:
            prompt_ids = [bos_id] + prompt_ids
        prompts.append(prompt)
        ids.append(prompt_ids)
        answer_ids.append(tail[0])
        tokens.append(tail)
        continuations.append(continuation)
        full.append(answer in full_answers and len(tail) > 1)
    out = dict(params or {})
    if chat:  # record the template's own BOS, if it writes one
        template_bos = getattr(tokenizer, "bos_token_id", None)
        bos_id = template_bos if template_bos is not None and ids and ids[0][:1] == [template_bos] else None
    out["bos"] = bos_id
    out["answer_id_fallbacks"] = fallbacks
    out["colliding_answers"] = len(full_answers)
    out["full_answer_items"] = sum(full)
    return TaskBatch(prompts=prompts, input_ids=ids, answers=list(answers), answer_ids=answer_ids,
                     continuations=continuations, params=out, answer_tokens=tokens, full=full)


def task_label(params: dict[str, Any]) -> str:
    """One line naming a task input set: what a failure message and a report show."""
    bos = params.get("bos")
    parts = [f"shots={params['shots']}", f"n={params['n']}", f"seed={params['seed']}", params["template"],
             f"split={params['split']}: {params['items']} of {params['items_total']} items",
             f"bos={'id ' + str(bos) if bos is not None else 'none'}"]
    if params.get("shuffled_labels"):
        parts.append("shuffled labels")
    if params.get("full_answer_items"):
        parts.append(f"full answers on {params['full_answer_items']} prompts")
    return f"task {params['task']}({', '.join(parts)}; reference split {params['reference_split']})"


def pad_id(tokenizer: Any) -> int:
    """The id that pads left-padded batches: the tokenizer's pad token, else EOS, else 0 (the
    attention mask hides it either way)."""
    found = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(found or 0)


def pad_left(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad ragged id lists so every prompt's last token sits at position -1.

    Returns:
        (input_ids, attention_mask), both LongTensor [batch, max_len]; the mask is 0 on padding.
    """
    if not sequences:
        raise ValueError("pad_left needs at least one sequence")
    if any(len(s) == 0 for s in sequences):
        raise ValueError("pad_left got an empty sequence; every prompt needs at least one token")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq):] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, width - len(seq):] = 1
    return ids, mask
