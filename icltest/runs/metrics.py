"""The one table of metrics: name -> the inputs it needs, how it is read, which direction is harm.

The schema takes its allowed names and per-metric fields from here, the CLI its choices, and the
run layer its cache key (task metrics ignore the token probe). Torch-free on purpose.
"""
from __future__ import annotations

from dataclasses import dataclass

TASK_FIELDS: tuple[str, ...] = ("task", "shots", "n", "seed", "chat_template", "split", "shuffled_labels")


@dataclass(frozen=True)
class MetricInfo:
    """One metric.

    Attributes:
        inputs: "probe" (a token probe: repeated random tokens, prose) or "task" (prompts with
            an answer, left-padded, read at the last position).
        fields: the spec fields it reads besides ``name`` (every other field is an error).
        harm: the direction an ablation that breaks the behaviour moves it ("increase" for a
            loss, "drop" for an accuracy); controls and scans report effects in this direction.
        reads: how the number is read, for docs and reports.
        task: the only task it accepts, if any.
        probe_kind: the only probe kind it accepts, if any.
    """

    inputs: str
    fields: tuple[str, ...]
    harm: str
    reads: str
    task: str | None = None
    probe_kind: str | None = None


METRICS: dict[str, MetricInfo] = {
    "repeated_token_loss": MetricInfo(
        "probe", ("part",), "increase", "mean next-token loss (nats) on the chosen repeats of a random segment",
        probe_kind="repeated_random"),
    "icl_score": MetricInfo(
        "probe", ("late", "early", "window"), "increase",
        "loss at a late token minus loss at an early one (Olsson et al.; negative = in-context learning)"),
    "accuracy": MetricInfo("task", TASK_FIELDS, "drop", "first-token exact match of the answer at the last position"),
    "recall": MetricInfo("task", TASK_FIELDS, "drop", "first-token exact match of the answer (open/closed book)"),
    "answer_prob": MetricInfo("task", TASK_FIELDS, "drop", "probability of the answer's first token"),
    "answer_logprob": MetricInfo(
        "task", TASK_FIELDS, "drop",
        "log-probability of the answer (first token; every token where first tokens collide); what head attribution differentiates"),
    "logit_diff": MetricInfo(
        "task", TASK_FIELDS, "drop", "logit of the context's answer minus the remembered one, same position",
        task="counterfactual"),
}
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)
TASK_METRICS: tuple[str, ...] = tuple(name for name, info in METRICS.items() if info.inputs == "task")
ALL_FIELDS: tuple[str, ...] = tuple(dict.fromkeys(f for info in METRICS.values() for f in info.fields))


def problems(name: str, given: dict[str, object]) -> list[str]:
    """What is wrong with the fields set for metric ``name`` (empty: fine). Used by the schema."""
    info = METRICS[name]
    out = []
    if info.inputs == "task" and given.get("task") is None:
        out.append(f"metric {name} needs a task (e.g. task: open_book or task: antonym)")
    if info.task is not None and given.get("task") not in (None, info.task):
        out.append(f"metric {name} reads {info.reads}: it needs task: {info.task}")
    wrong = [f for f in ALL_FIELDS if given.get(f) is not None and f not in info.fields and f != "seed"]
    if wrong:
        out.append(f"metric {name} does not use {', '.join(wrong)}")
    return out
