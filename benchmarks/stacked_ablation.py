"""Single-head ablation sweep: one variant per forward pass vs K variants stacked in the batch.

    python benchmarks/stacked_ablation.py [--model smollm2-135m] [--heads 36] [--stack 16]
        [--metric answer_prob --task open_book --shots 2 --n 16] [--device cpu]

Both sweeps ablate the same heads on the same inputs in one process, so the ratio is measured
in one run; the largest difference between the two value lists shows they compute the same thing.
Prints one JSON line. No asserts: this is a measurement, not a test.
"""
from __future__ import annotations

import argparse
import json
import time

from icltest.models.loading import ModelSource
from icltest.runs.run import Ablation, Run
from icltest.schema.spec import MetricSpec, ProbeSpec
from icltest.session import Session


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--heads", type=int, default=36, help="first N heads in layer order (0 = all)")
    parser.add_argument("--stack", type=int, default=16)
    parser.add_argument("--metric", default="answer_prob")
    parser.add_argument("--task", default="open_book")
    parser.add_argument("--shots", type=int, default=2)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--method", default="zero")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    session = Session()
    loaded = session.model(ModelSource(alias=args.model, device=args.device))
    adapter = loaded.adapter
    if args.metric in ("repeated_token_loss", "icl_score"):
        metric = MetricSpec(name=args.metric)
    else:
        metric = MetricSpec(name=args.metric, task=args.task, shots=args.shots, n=args.n)
    heads = [(l, h) for l in range(adapter.n_layers) for h in range(adapter.n_heads)]
    heads = heads[: args.heads] if args.heads else heads
    variants = [Ablation(heads=(pair,), method=args.method) for pair in heads]
    out = {"model": args.model, "device": args.device, "metric": metric.model_dump(exclude_none=True),
           "method": args.method, "heads": len(heads), "stack": args.stack}
    values = {}
    for label, stack in (("one_by_one", 1), ("stacked", args.stack)):
        run = Run(session, loaded, metric, ProbeSpec(), stack=stack)
        run.value()  # clean run and inputs outside the timing
        if args.method != "zero":
            run.value(variants[0])  # reference capture outside the timing
            run._values.pop(variants[0])
        start = time.perf_counter()
        values[label] = run.values(variants)
        out[f"{label}_s"] = round(time.perf_counter() - start, 3)
    out["ratio"] = round(out["one_by_one_s"] / out["stacked_s"], 2)
    out["max_abs_diff"] = max(abs(a - b) for a, b in zip(values["one_by_one"], values["stacked"]))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
