"""Choose SmolLM2's in-context / parametric heads on the select split, judge them on the test split.

    python benchmarks/measurements/reselect.py [--seeds 0,1,2]

The selection is the one suites/smollm2-135m.yaml describes, now on the select split only (the same
as ``icltest scan --model smollm2-135m --ablate --method mean --metric answer_prob --task
{open_book,closed_book} --shots 2 --n 16 --seed 1``): every head mean-ablated alone; "in-context"
= the five whose ablation lowers open-book answer probability most relative to closed-book,
"parametric" the reverse. The chosen sets are then judged like the suite's claims on the test split
(recall at 2 shots, counterfactual logit difference), which the selection never saw.
"""
from __future__ import annotations

import argparse
import json
import time

from icltest.models.loading import ModelSource
from icltest.runs.run import Ablation, Run
from icltest.schema.spec import MetricSpec
from icltest.session import Session

SHIPPED = {"incontext": ((0, 3), (14, 3), (16, 0), (10, 8), (22, 1)),
           "parametric": ((23, 4), (5, 6), (21, 5), (20, 5), (1, 0))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    s = Session()
    L = s.model(ModelSource(alias="smollm2-135m"))
    heads = [(l, h) for l in range(L.adapter.n_layers) for h in range(L.adapter.n_heads)]
    effect = {}
    for task in ("open_book", "closed_book"):
        t = time.perf_counter()
        run = Run(s, L, MetricSpec(name="answer_prob", task=task, shots=2, n=16, seed=1, split="select"))
        clean = run.value()
        values = []
        for start in range(0, len(heads), 30):
            values += run.values([Ablation(heads=(h,), method="mean") for h in heads[start:start + 30]])
            print(f"  {task}: {len(values)} heads, {time.perf_counter() - t:.0f} s", flush=True)
        effect[task] = {h: v - clean for h, v in zip(heads, values)}
        print(f"scan {task}: {run.inputs.label}, clean {clean:.4f}, {time.perf_counter() - t:.0f} s", flush=True)
    score = {h: effect["closed_book"][h] - effect["open_book"][h] for h in heads}  # > 0: open book hurt more
    chosen = {"incontext": tuple(sorted(heads, key=lambda h: -score[h])[:5]),
              "parametric": tuple(sorted(heads, key=lambda h: score[h])[:5])}
    for name, picked in chosen.items():
        print(name, [f"L{l}H{h}" for l, h in picked],
              "open", [round(effect["open_book"][h], 4) for h in picked],
              "closed", [round(effect["closed_book"][h], 4) for h in picked],
              "shared with the suite's set:", sorted(set(picked) & set(SHIPPED[name])), flush=True)
    out: dict[str, object] = {"chosen": {k: [list(h) for h in v] for k, v in chosen.items()}}
    for seed in [int(x) for x in args.seeds.split(",")]:
        for task, metric in (("open_book", "recall"), ("closed_book", "recall"), ("counterfactual", "logit_diff")):
            run = Run(s, L, MetricSpec(name=metric, task=task, shots=2, n=48, seed=seed))
            clean = run.value()
            row = {"clean": round(clean, 4)}
            for name, picked in chosen.items():
                if task != "counterfactual" or name == "incontext":
                    row[f"{name}_drop"] = round(clean - run.value(Ablation(heads=picked, method="mean")), 4)
            out[f"{task}/seed{seed}"] = row
            print(f"{task}/seed{seed}", json.dumps(row), run.inputs.label, flush=True)
    with open("reselect-smollm2.json", "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
