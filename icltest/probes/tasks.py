"""Few-shot in-context-learning tasks: data files -> seeded prompt batches -> answer accuracy.

A task is a list of (input, output) pairs shipped as YAML under `icltest/data/tasks/`. A prompt is
`shots` demonstrations followed by a query, one per line, in the form `input -> output`:

    hot -> cold
    big -> small
    fast ->

Queries and their demonstrations come from one split of the task's pairs (``test`` unless asked
otherwise; see :mod:`icltest.probes.splits`), and a query's own pair is never among its
demonstrations. How prompts become token ids and answer tokens (the leading-space convention,
BOS, first-token collisions) is :mod:`icltest.probes.prompts`.

With a chat template the prompt text becomes one user message and the answer follows the
generation prompt, which ends at the start of the assistant turn; there the continuation is the
bare output ("slow", no leading space), as a chat model writes its reply.
"""
from __future__ import annotations

import difflib
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import yaml

from icltest.errors import InputError
from icltest.probes.prompts import (  # noqa: F401  (re-exported: the public home of task prompts)
    CHAT_TEMPLATE_CHOICES,
    TaskBatch,
    bos_id_for,
    colliding_answers,
    encode_prompts,
    pad_left,
    task_label,
    use_chat_template,
)
from icltest.probes.splits import ALL, check_split, derangement, split_indices

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


# ---------------------------------------------------------------------------------- sampling

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


def split_params(split: str, pool: Sequence[int], total: int) -> dict[str, Any]:
    """What a result records about the items a batch drew from."""
    return {"split": split, "items": len(pool), "items_total": total}


def shuffled_rng(seed: int) -> random.Random:
    """The generator of shuffled labels: separate from the query / demonstration generator, so a
    shuffled-label batch has exactly the queries and demonstrations of the plain one."""
    return random.Random(f"icltest shuffled labels {int(seed)}")


def build_icl_prompts(
    task: Task | str,
    tokenizer: Any,
    *,
    shots: int,
    n: int,
    seed: int,
    chat_template: str = "no",
    split: str = "test",
    shuffled_labels: bool = False,
    bos: Any = "auto",
    full_answers: bool = True,
) -> TaskBatch:
    """Build n seeded few-shot prompts from one split; a query's own pair is never a demonstration.

    Args:
        task: a Task or a task name for `load_task`.
        tokenizer: a Hugging Face tokenizer.
        shots: demonstrations per prompt (0 gives the bare query), drawn from the query's split.
        n: number of prompts; queries repeat (with fresh demonstrations) when n exceeds the split.
        seed: seeds both the query order and the demonstrations.
        chat_template: "no" (plain text), "yes" (one user message), or "auto" (if the tokenizer has one).
        split: "test" (judging), "select" (choosing heads) or "all" (every pair).
        shuffled_labels: the same queries and demonstrations, with the demonstrations' outputs
            permuted among themselves so that none keeps its own (needs shots >= 2): a baseline
            that keeps the prompt format and the inputs but breaks the input -> output mapping.
        bos: BOS rule for plain prompts (see :mod:`icltest.probes.prompts`).
        full_answers: flag answers whose first token collides for full-answer scoring.
    """
    if isinstance(task, str):
        task = load_task(task)
    check_split(split)
    pool = split_indices([p.input for p in task.pairs], split)
    where = f"split {split}: {len(pool)} of {len(task.pairs)} items" if split != ALL else f"{len(task.pairs)} items"
    if not isinstance(shots, int) or isinstance(shots, bool) or shots < 0 or shots > len(pool) - 1:
        raise InputError(f"shots must be an int in [0, {max(0, len(pool) - 1)}] for task {task.name!r} "
                         f"({where}), got {shots!r}")
    if shuffled_labels and shots < 2:
        raise InputError(f"shuffled labels need at least 2 demonstrations to permute, got shots={shots}")
    chat = use_chat_template(tokenizer, chat_template)
    rng, relabel = random.Random(seed), shuffled_rng(seed)
    queries = [pool[i] for i in sample_queries(len(pool), n, rng)]
    fmt = task.prompt
    texts, demos = [], []
    for q in queries:
        chosen = rng.sample([i for i in pool if i != q], shots)
        shown = [task.pairs[i] for i in chosen]
        if shuffled_labels:
            perm = derangement(shots, relabel)
            shown = [Pair(pair.input, shown[perm[j]].output) for j, pair in enumerate(shown)]
        lines = [fmt.demonstration(pair) for pair in shown] + [fmt.query(task.pairs[q].input)]
        texts.append(fmt.delimiter.join(lines))
        demos.append(chosen)
    params = {"task": task.name, "shots": shots, "n": n, "seed": seed, "template": "chat" if chat else "plain",
              **split_params(split, pool, len(task.pairs)), "shuffled_labels": bool(shuffled_labels)}
    prefix = "" if chat else fmt.answer_prefix
    collide = colliding_answers(tokenizer, [p.output for p in task.pairs], prefix) if full_answers else frozenset()
    batch = encode_prompts(tokenizer, texts, [task.pairs[q].output for q in queries], chat=chat,
                           answer_prefix=fmt.answer_prefix, params=params, bos=bos, full_answers=collide)
    batch.query_indices = queries
    batch.demo_indices = demos
    return batch


# ----------------------------------------------------------------------------------- scoring

def score_first_token(pred_ids: Sequence[int], batch: TaskBatch) -> float:
    """Fraction of prompts whose predicted next token is the answer's first token.

    First-token accuracy needs one forward pass and no decoding, but it credits any answer that
    starts like the right one; the run layer scores colliding answers in full instead
    (``TaskBatch.full``).
    """
    preds = [int(p) for p in (pred_ids.tolist() if hasattr(pred_ids, "tolist") else pred_ids)]
    if len(batch) == 0:
        raise ValueError("cannot score an empty batch")
    if len(preds) != len(batch.answer_ids):
        raise ValueError(f"got {len(preds)} predictions for a batch of {len(batch.answer_ids)} prompts")
    return sum(p == a for p, a in zip(preds, batch.answer_ids)) / len(preds)
