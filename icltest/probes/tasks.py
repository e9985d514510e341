"""Few-shot in-context-learning tasks: data files -> seeded prompt batches -> first-token accuracy.

A task is a list of (input, output) pairs shipped as YAML under `icltest/data/tasks/`. A prompt is
`shots` demonstrations followed by a query, one per line, in the form `input -> output`:

    hot -> cold
    big -> small
    fast ->

Leading-space convention: the prompt ends with the separator WITHOUT a trailing space and the
answer is scored as the continuation `" " + output` (" slow"). BPE tokenizers (SmolLM2, GPT-2,
Gemma) fold the space into the next word, so " slow" / " Paris" is one clean, distinctive token,
whereas a prompt ending in "-> " would leave a lone-space token and force the answer to be
tokenized without its space, a form the model rarely saw in running text.

The answer's first token is read off `tokenize(prompt + continuation)` at the position right after
the prompt's tokens, which is robust to merges at the boundary. If the prompt's tokens are not a
prefix of that (a merge across the boundary), the continuation is tokenized alone and its first
token is used; `params["answer_id_fallbacks"]` counts how often that happened.

With a chat template the prompt text becomes one user message and the answer follows the
generation prompt, which ends at the start of the assistant turn; there the continuation is the
bare output ("slow", no leading space), as a chat model writes its reply.
"""
from __future__ import annotations

import difflib
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from icltest.errors import InputError

CHAT_TEMPLATE_CHOICES = ("auto", "yes", "no")
_PROMPT_KEYS = {"input_prefix", "separator", "answer_prefix", "delimiter"}
_TASK_KEYS = {"name", "description", "prompt", "pairs"}


@dataclass(frozen=True)
class PromptFormat:
    """How one pair is written. Defaults give `input -> output` lines.

    Attributes:
        input_prefix: text before each input (e.g. "Q: "); empty by default.
        separator: text between input and answer; the prompt ends with it.
        answer_prefix: text between separator and output in demonstrations, and the start of the
            scored continuation (a space: see the module docstring).
        delimiter: text between demonstrations.
    """

    input_prefix: str = ""
    separator: str = " ->"
    answer_prefix: str = " "
    delimiter: str = "\n"

    def demonstration(self, pair: Pair) -> str:
        return f"{self.input_prefix}{pair.input}{self.separator}{self.answer_prefix}{pair.output}"

    def query(self, text: str) -> str:
        return f"{self.input_prefix}{text}{self.separator}"


@dataclass(frozen=True)
class Pair:
    """One task example."""

    input: str
    output: str


@dataclass(frozen=True)
class Task:
    """A named few-shot task. Loaded from YAML so users can add their own without code."""

    name: str
    description: str
    pairs: tuple[Pair, ...]
    prompt: PromptFormat = PromptFormat()


@dataclass
class TaskBatch:
    """Prompts and the answer token each should produce, shared by ICL tasks and book probes.

    Attributes:
        prompts: the prompt texts, each ending right before the answer.
        input_ids: token ids per prompt, ragged (batch them with `pad_left`).
        answers: the bare expected answers ("Paris").
        answer_ids: the id of the answer's first token as it follows each prompt.
        continuations: the exact text appended after each prompt when scoring (" Paris").
        params: how the batch was built (task, shots, n, seed, template, ...), for results.
        query_indices: index of each query item in the source data.
        demo_indices: indices of each prompt's demonstrations, in prompt order.
    """

    prompts: list[str]
    input_ids: list[list[int]]
    answers: list[str]
    answer_ids: list[int]
    continuations: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    query_indices: list[int] = field(default_factory=list)
    demo_indices: list[list[int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompts)


# --------------------------------------------------------------------------------------- loading

def _data_dir() -> Any:
    return resources.files("icltest").joinpath("data", "tasks")


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping at top level, got {type(data).__name__}")
    return data


def _string(value: Any, where: str, key: str) -> str:
    # Unquoted YAML turns yes/no/true/false/on/off into booleans; say so, since it is the usual cause.
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            f"{where}: {key} must be a non-empty string, got {value!r}"
            " (quote words like \"yes\", \"no\", \"true\", \"off\" in YAML)"
        )
    return value


def _available_in_data() -> dict[str, str]:
    found = {}
    for entry in _data_dir().iterdir():
        if entry.name.endswith(".yaml"):
            found[entry.name[: -len(".yaml")]] = entry.read_text(encoding="utf-8")
    return found


def available_tasks() -> list[str]:
    """Names of the shipped pair tasks (book probes, which have `items:` not `pairs:`, excluded)."""
    names = []
    for name, text in _available_in_data().items():
        data = yaml.safe_load(text)
        if isinstance(data, dict) and "pairs" in data:
            names.append(name)
    return sorted(names)


def parse_task(data: dict[str, Any], where: str) -> Task:
    """Validate a task mapping (from YAML); `where` names the source in error messages."""
    unknown = set(data) - _TASK_KEYS
    if unknown:
        raise InputError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TASK_KEYS)}")
    name = _string(data.get("name"), where, "name")
    prompt_data = data.get("prompt") or {}
    if not isinstance(prompt_data, dict):
        raise InputError(f"{where}: prompt must be a mapping with keys {sorted(_PROMPT_KEYS)}")
    bad = set(prompt_data) - _PROMPT_KEYS
    if bad:
        raise InputError(f"{where}: unknown prompt key(s) {sorted(bad)}; allowed: {sorted(_PROMPT_KEYS)}")
    for key, value in prompt_data.items():
        if not isinstance(value, str):
            raise InputError(f"{where}: prompt.{key} must be a string, got {value!r}")
    raw_pairs = data.get("pairs")
    if not isinstance(raw_pairs, list) or len(raw_pairs) < 2:
        raise InputError(f"{where}: pairs must be a list of at least 2 {{input, output}} mappings")
    pairs = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_pairs):
        if not isinstance(raw, dict) or set(raw) != {"input", "output"}:
            raise InputError(f"{where}: pairs[{i}] must be a mapping with exactly input and output, got {raw!r}")
        pair = Pair(_string(raw["input"], where, f"pairs[{i}].input"), _string(raw["output"], where, f"pairs[{i}].output"))
        if pair.input in seen:
            raise InputError(f"{where}: pairs[{i}] repeats input {pair.input!r}; inputs must be unique")
        seen.add(pair.input)
        pairs.append(pair)
    return Task(name=name, description=str(data.get("description") or ""), pairs=tuple(pairs),
                prompt=PromptFormat(**prompt_data))


def load_task(name: str) -> Task:
    """Load a shipped task by name, or a user's task file by path (ends in .yaml/.yml).

    Raises:
        InputError: unknown name (with the available names and a did-you-mean), or a bad file.
    """
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise InputError(f"task file {name!r} does not exist")
        return parse_task(_read_yaml(path.read_text(encoding="utf-8"), str(path)), str(path))
    names = available_tasks()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InputError(f"unknown task {name!r}.{hint} Available: {', '.join(names)} (or a path to a .yaml file)")
    text = _data_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return parse_task(_read_yaml(text, f"{name}.yaml"), f"{name}.yaml")


# ---------------------------------------------------------------------------------- tokenization

def use_chat_template(tokenizer: Any, chat_template: str) -> bool:
    """Resolve "auto"/"yes"/"no" against the tokenizer; "yes" without a template is an error."""
    if chat_template not in CHAT_TEMPLATE_CHOICES:
        raise ValueError(f"chat_template must be one of {CHAT_TEMPLATE_CHOICES}, got {chat_template!r}")
    has = bool(getattr(tokenizer, "chat_template", None))
    if chat_template == "yes" and not has:
        raise InputError("chat_template='yes' but the tokenizer has no chat template; use 'auto' or 'no'")
    return chat_template == "yes" or (chat_template == "auto" and has)


def _encode(tokenizer: Any, text: str, special: bool) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=special)["input_ids"]]


def encode_prompts(
    tokenizer: Any,
    texts: Sequence[str],
    answers: Sequence[str],
    *,
    chat: bool,
    answer_prefix: str = " ",
    params: dict[str, Any] | None = None,
) -> TaskBatch:
    """Tokenize prompt texts and find each answer's first token in context.

    Plain prompts get the tokenizer's special tokens (Gemma needs its BOS); chat prompts do not,
    because the template already writes them.
    """
    prompts, ids, answer_ids, continuations = [], [], [], []
    fallbacks = 0
    for text, answer in zip(texts, answers):
        if chat:
            prompt = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
            )
            continuation = answer
        else:
            prompt, continuation = text, answer_prefix + answer
        prompt_ids = _encode(tokenizer, prompt, special=not chat)
        full = _encode(tokenizer, prompt + continuation, special=not chat)
        if len(full) > len(prompt_ids) and full[: len(prompt_ids)] == prompt_ids:
            first = full[len(prompt_ids)]
        else:
            fallbacks += 1
            alone = _encode(tokenizer, continuation, special=False)
            if not alone:
                raise InputError(f"answer {answer!r} tokenizes to nothing; check the task data")
            first = alone[0]
        prompts.append(prompt)
        ids.append(prompt_ids)
        answer_ids.append(first)
        continuations.append(continuation)
    out_params = dict(params or {})
    out_params["answer_id_fallbacks"] = fallbacks
    return TaskBatch(prompts=prompts, input_ids=ids, answers=list(answers), answer_ids=answer_ids,
                     continuations=continuations, params=out_params)


def sample_queries(count: int, n: int, rng: random.Random) -> list[int]:
    """n query indices: a seeded permutation, repeated (reshuffled) when n exceeds the data."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    order: list[int] = []
    while len(order) < n:
        perm = list(range(count))
        rng.shuffle(perm)
        order.extend(perm)
    return order[:n]


def build_icl_prompts(
    task: Task | str,
    tokenizer: Any,
    *,
    shots: int,
    n: int,
    seed: int,
    chat_template: str = "no",
) -> TaskBatch:
    """Build n seeded few-shot prompts; each query's own pair is never among its demonstrations.

    Args:
        task: a Task or a task name for `load_task`.
        tokenizer: a Hugging Face tokenizer.
        shots: demonstrations per prompt (0 gives the bare query).
        n: number of prompts; queries repeat (with fresh demonstrations) when n > len(pairs).
        seed: seeds both the query order and the demonstrations.
        chat_template: "no" (plain text), "yes" (one user message), or "auto" (if the tokenizer has one).
    """
    if isinstance(task, str):
        task = load_task(task)
    if not isinstance(shots, int) or shots < 0 or shots > len(task.pairs) - 1:
        raise InputError(f"shots must be an int in [0, {len(task.pairs) - 1}] for task {task.name!r}, got {shots!r}")
    chat = use_chat_template(tokenizer, chat_template)
    rng = random.Random(seed)
    queries = sample_queries(len(task.pairs), n, rng)
    fmt = task.prompt
    texts, demos = [], []
    for q in queries:
        others = [i for i in range(len(task.pairs)) if i != q]
        chosen = rng.sample(others, shots)
        lines = [fmt.demonstration(task.pairs[i]) for i in chosen] + [fmt.query(task.pairs[q].input)]
        texts.append(fmt.delimiter.join(lines))
        demos.append(chosen)
    params = {"task": task.name, "shots": shots, "n": n, "seed": seed,
              "template": "chat" if chat else "plain"}
    batch = encode_prompts(tokenizer, texts, [task.pairs[q].output for q in queries], chat=chat,
                           answer_prefix=fmt.answer_prefix, params=params)
    batch.query_indices = queries
    batch.demo_indices = demos
    return batch


# ----------------------------------------------------------------------------------- scoring

def score_first_token(pred_ids: Sequence[int], batch: TaskBatch) -> float:
    """Fraction of prompts whose predicted next token is the answer's first token.

    First-token accuracy needs one forward pass and no decoding; the data are chosen so the first
    token of each answer is distinctive.
    """
    preds = [int(p) for p in (pred_ids.tolist() if hasattr(pred_ids, "tolist") else pred_ids)]
    if len(batch) == 0:
        raise ValueError("cannot score an empty batch")
    if len(preds) != len(batch.answer_ids):
        raise ValueError(f"got {len(preds)} predictions for a batch of {len(batch.answer_ids)} prompts")
    return sum(p == a for p, a in zip(preds, batch.answer_ids)) / len(preds)


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
