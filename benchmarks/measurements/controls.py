"""Control statistics (19 random same-count draws, control seed 0) for the shipped ablation claims.

    python benchmarks/measurements/controls.py smollm2-135m [SEEDS...]
    python benchmarks/measurements/controls.py gemma3-270m [SEEDS...]
    ICLTEST_ONLY=induction-heads-are-necessary python benchmarks/measurements/controls.py smollm2-135m

One JSON line per (claim, seed): the target effect, the draws' mean / sd / max, the permutation p
and z, computed with the same functions the ablation claim uses. Task claims judge held-out
("test") items; their references come from the other split.
"""
from __future__ import annotations

import json
import os
import sys

from icltest.models.loading import ModelSource
from icltest.runs.run import Ablation, Run
from icltest.schema.spec import MetricSpec, ProbeSpec
from icltest.scores.control import control_summary, draw_random_heads
from icltest.session import Session

IN_CONTEXT = ((0, 3), (10, 8), (14, 3), (16, 0), (22, 1))
PARAMETRIC = ((1, 0), (5, 6), (20, 5), (21, 5), (23, 4))
CLAIMS = {
    "smollm2-135m": [
        ("induction-heads-are-necessary", ((17, 3), (17, 4), (17, 5), (18, 6), (18, 7)), "zero",
         dict(name="repeated_token_loss", part="second_half"), "increase"),
        ("open-book-needs-in-context-heads", IN_CONTEXT, "mean", dict(name="recall", task="open_book", shots=2), "drop"),
        ("closed-book-needs-parametric-heads", PARAMETRIC, "mean", dict(name="recall", task="closed_book", shots=2), "drop"),
        ("counterfactual-context-needs-in-context-heads", IN_CONTEXT, "mean",
         dict(name="logit_diff", task="counterfactual", shots=2), "drop"),
    ],
    "gemma3-270m": [
        ("induction-heads-are-necessary", ((5, 1), (5, 2), (11, 2)), "zero",
         dict(name="repeated_token_loss", part="second_half"), "increase"),
    ],
}


def main() -> None:
    alias = sys.argv[1]
    seeds = [int(s) for s in sys.argv[2:]] or [0, 1, 2]
    only = [c for c in os.environ.get("ICLTEST_ONLY", "").split(",") if c]
    session = Session()
    loaded = session.model(ModelSource(alias=alias))
    adapter = loaded.adapter
    for claim_id, heads, method, fields, direction in CLAIMS[alias]:
        if only and claim_id not in only:
            continue
        draws = draw_random_heads(adapter.n_layers, adapter.n_heads, len(heads), exclude=heads, draws=19, seed=0)
        for seed in seeds:
            task = fields.get("task") is not None
            metric = MetricSpec(**fields, **({"n": 48, "seed": seed} if task else {}))
            run = Run(session, loaded, metric, ProbeSpec(seed=seed))
            clean = run.value()
            sign = 1 if direction == "increase" else -1
            target = sign * (run.value(Ablation(heads=heads, method=method)) - clean)
            effects = [sign * (v - clean) for v in run.values([Ablation(heads=tuple(d), method=method) for d in draws])]
            s = control_summary(target, effects)
            print(json.dumps({"claim": claim_id, "seed": seed, "inputs": run.inputs.label, "clean": round(clean, 4),
                              "target": round(target, 4), "mean": round(s["mean"], 4), "sd": round(s["sd"], 4),
                              "max": round(s["max"], 4), "p": round(s["p"], 4), "z": round(s["z"], 2)}), flush=True)


if __name__ == "__main__":
    main()
