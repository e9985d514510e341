"""SmolLM2 task claims re-measured on held-out (test-split) items, and the BOS change, seeds 0-2.

    python benchmarks/measurements/heldout.py [SECTION ...] [--seeds 0,1,2] [--draws 5] [--out FILE]

Sections (default: all): ``tasks`` (antonym / capitalize / present_past / singular_plural accuracy at
5 shots, 0 shots and 5 shots with shuffled labels), ``books`` (open / closed / counterfactual recall
at 2 shots), ``heads`` (the suite's in-context and parametric heads, mean-ablated, on open/closed-book
recall and the counterfactual logit difference, with ``--draws`` random 5-head draws), ``bos``
(5-shot task and 2-shot book accuracy with and without BOS, on every item and on the test split).
Every run judges the test split; mean-ablation references come from the select split. The same
runs as heads.py / counterfactual.py / behaviour.py, with the split and BOS made explicit.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import icltest.probes.books as books
import icltest.probes.tasks as tasks
from icltest.models.loading import ModelSource
from icltest.runs.run import Ablation, Run
from icltest.schema.spec import MetricSpec
from icltest.scores.control import draw_random_heads
from icltest.session import Session

TASKS = ("antonym", "capitalize", "present_past", "singular_plural")
INC = ((0, 3), (14, 3), (16, 0), (10, 8), (22, 1))   # suites/smollm2-135m.yaml, in-context heads
PAR = ((23, 4), (5, 6), (21, 5), (20, 5), (1, 0))    # parametric heads
OUT: dict[str, object] = {}


def rec(key: str, value: object) -> None:
    OUT[key] = value
    print(key, json.dumps(value), flush=True)


@contextlib.contextmanager
def prompts(split: str, bos: str):
    """Build every task prompt with this split / BOS rule (the run layer always asks for auto BOS)."""
    originals = tasks.build_icl_prompts, books.build_book_prompts

    def wrap(fn):
        return lambda *a, **k: fn(*a, **{**k, "split": split if k.get("split") == "test" else k.get("split"), "bos": bos})
    tasks.build_icl_prompts, books.build_book_prompts = wrap(originals[0]), wrap(originals[1])
    try:
        yield
    finally:
        tasks.build_icl_prompts, books.build_book_prompts = originals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sections", nargs="*", default=["tasks", "books", "heads", "bos"])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--out", default="heldout-smollm2.json")
    args = parser.parse_args()
    s = Session()
    L = s.model(ModelSource(alias="smollm2-135m"))
    seeds = [int(x) for x in args.seeds.split(",")]
    for seed in seeds:
        t = time.perf_counter()
        if "tasks" in args.sections:
            for task in TASKS:
                runs = {k: Run(s, L, MetricSpec(name="accuracy", task=task, n=48, seed=seed, **kw)) for k, kw in
                        (("5", {"shots": 5}), ("0", {"shots": 0}), ("5-shuffled", {"shots": 5, "shuffled_labels": True}))}
                rec(f"task/{task}/seed{seed}", {k: round(r.value(), 4) for k, r in runs.items()}
                    | {"inputs": runs["5"].inputs.label})
        if "books" in args.sections:
            for task in ("open_book", "closed_book", "counterfactual"):
                run = Run(s, L, MetricSpec(name="recall", task=task, shots=2, n=48, seed=seed))
                rec(f"book/{task}/seed{seed}", {"recall": round(run.value(), 4), "inputs": run.inputs.label})
        if "heads" in args.sections:
            for task, metric in (("open_book", "recall"), ("closed_book", "recall"), ("counterfactual", "logit_diff")):
                run = Run(s, L, MetricSpec(name=metric, task=task, shots=2, n=48, seed=seed))
                clean = run.value()
                for name, heads in (("incontext", INC), ("parametric", PAR)):
                    if task == "counterfactual" and name == "parametric":
                        continue
                    row = {"clean": round(clean, 4),
                           "drop": round(clean - run.value(Ablation(heads=heads, method="mean")), 4)}
                    # random draws only where the suite's claim has its control (the target metric)
                    if (task, name) in (("open_book", "incontext"), ("closed_book", "parametric"),
                                        ("counterfactual", "incontext")):
                        draws = draw_random_heads(30, 9, 5, exclude=heads, draws=args.draws, seed=0)
                        ctrl = [round(clean - run.value(Ablation(heads=tuple(d), method="mean")), 4) for d in draws]
                        row |= {"control_drops": ctrl, "control_mean": round(statistics.mean(ctrl), 4),
                                "control_sd": round(statistics.stdev(ctrl), 4) if len(ctrl) > 1 else None}
                    rec(f"heads/{task}/{name}/seed{seed}", row | {"inputs": run.inputs.label})
        if "bos" in args.sections:
            for split, bos in (("all", "no"), ("test", "no"), ("test", "auto")):
                with prompts(split, bos):
                    for task in TASKS + ("open_book", "closed_book"):
                        book = task.endswith("_book")
                        run = Run(s, L, MetricSpec(name="recall" if book else "accuracy", task=task,
                                                   shots=2 if book else 5, n=48, seed=seed))
                        rec(f"bos/{split}/{bos}/{task}/seed{seed}", {"value": round(run.value(), 4),
                                                                      "inputs": run.inputs.label})
        print(f"seed {seed}: {time.perf_counter() - t:.0f} s", flush=True)
    with open(args.out, "w") as f:
        json.dump(OUT, f, indent=1)


if __name__ == "__main__":
    main()
