"""Function vectors on the shipped models: zero-shot / k-shot / FV accuracy, layer sweep, random-vector control.

    flock /tmp/icltest-real.lock .venv/bin/python benchmarks/function_vector.py --model smollm2-135m --part main
    flock /tmp/icltest-real.lock .venv/bin/python benchmarks/function_vector.py --model smollm2-135m --part agreement
    flock /tmp/icltest-real.lock .venv/bin/python benchmarks/function_vector.py --model smollm2-135m --part roles

Parts (each merged into benchmarks/measurements/function_vector-<model>.json under its own key):

- ``main``: per task and seed, the ``function_vector`` claim with the top ``--top`` heads by CIE
  (attribution), injected at the default layer (n_layers // 3) with a 19-draw random-vector
  control, and the FV at every layer (the sweep);
- ``agreement``: attribution CIE vs exact CIE (one patch per head) on one task, seed 0: Spearman
  over every head, and the top-10 overlap;
- ``roles``: FVs from the top ``--top`` in-context heads and the top parametric heads
  (open-book vs closed-book attribution contrast, select split) instead of the CIE heads.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "measurements"


def context(alias: str) -> Any:
    from icltest.claims.base import ClaimContext
    from icltest.models.loading import ModelSource
    from icltest.session import Session

    session = Session()
    loaded = session.model(ModelSource(alias=alias))
    return ClaimContext(session=session, loaded=loaded, probe_spec=None, location=lambda key: f"<benchmark>:{key}")


def run_claim(ctx: Any, spec: dict[str, Any]) -> dict[str, Any]:
    from icltest.claims import function_vector as FV

    claim = FV.Schema.model_validate({"id": "bench", "kind": "function_vector", "expect": {"gain": ">= 0"}, **spec})
    start = time.perf_counter()
    m = FV.measure(claim, FV.targets(claim)[0], ctx)
    d = dict(m.details)
    c = d.get("control", {})
    return {
        "spec": spec, "layer": d["layer"], "zero_shot": d["zero_shot"], "k_shot": d["k_shot"], "fv_accuracy": d["accuracy"],
        "gain": d["gain"], "recall": d["recall"], "fv_norm": d["fv_norm"], "heads": d["heads"],
        "control": {k: c.get(k) for k in ("mean", "sd", "max", "p", "z", "position", "random_accuracy_mean")} if c else None,
        "best_layer": d.get("best_layer"), "sweep": d["sweeps"][0]["points"] if "sweeps" in d else None,
        "seconds": round(time.perf_counter() - start, 2),
    }


def part_main(ctx: Any, tasks: list[str], seeds: list[int], top: int, scale: float) -> list[dict[str, Any]]:
    rows = []
    for task in tasks:
        for seed in seeds:
            row = run_claim(ctx, {"task": task, "seed": seed, "heads": {"top": top}, "scale": scale,
                                  "control": {"draws": 19, "seed": 0}})
            rows.append(row)
            print(f"{task} seed {seed}: zero {row['zero_shot']:.3f} k-shot {row['k_shot']:.3f} FV@{row['layer']} "
                  f"{row['fv_accuracy']:.3f} (random {row['control']['random_accuracy_mean']:.3f}, p {row['control']['p']:.3f}, "
                  f"z {row['control']['z']:.2f}) best L{row['best_layer']['layer']} {row['best_layer']['accuracy']:.3f} "
                  f"[{row['seconds']}s]", flush=True)
    return rows


def part_agreement(ctx: Any, task: str, shots: int, n: int) -> dict[str, Any]:
    from icltest.claims import function_vector as FV
    from icltest.interventions.function_vectors import cie_attribution, cie_exact, rank_heads, spearman

    claim = FV.Schema.model_validate({"id": "bench", "kind": "function_vector", "task": task, "shots": shots, "n": n,
                                      "heads": {"top": 10}, "expect": {"gain": ">= 0"}})
    means, _ = FV._means(claim, ctx)
    prompts, _ = FV._prompt_set(claim, ctx, shuffled=True)
    t0 = time.perf_counter()
    attr = cie_attribution(ctx.loaded, prompts, means)
    t1 = time.perf_counter()
    exact = cie_exact(ctx.loaded, prompts, means)
    t2 = time.perf_counter()
    top_a, top_e = set(rank_heads(attr, 10)), set(rank_heads(exact, 10))
    out = {"task": task, "shots": shots, "n": n, "seed": 0, "spearman": round(spearman(attr, exact), 4),
           "top10_overlap": len(top_a & top_e), "attribution_seconds": round(t1 - t0, 2), "exact_seconds": round(t2 - t1, 2),
           "top_exact": [[f"L{l}H{h}", round(float(exact[l, h]), 5), round(float(attr[l, h]), 5)] for l, h in rank_heads(exact, 10)]}
    print(json.dumps(out), flush=True)
    return out


def part_roles(ctx: Any, tasks: list[str], seeds: list[int], top: int, scale: float) -> list[dict[str, Any]]:
    from icltest.claims import head_attribution as HA
    from icltest.interventions.function_vectors import rank_heads

    rows = []
    for role in ("in_context", "parametric"):
        hclaim = HA.Schema.model_validate({"id": "r", "kind": "head_attribution", "role": role, "split": "select",
                                           "heads": [[0, 0]], "expect": {"rank": ">= 1"}})
        score, _ = HA.role_score(hclaim, ctx)
        heads = sorted(rank_heads(score, top))
        for task in tasks:
            for seed in seeds:
                row = run_claim(ctx, {"task": task, "seed": seed, "heads": [[l, h] for l, h in heads], "scale": scale,
                                      "control": {"draws": 19, "seed": 0}})
                row["role"] = role
                rows.append(row)
                print(f"{role} {task} seed {seed}: FV@{row['layer']} {row['fv_accuracy']:.3f} (zero {row['zero_shot']:.3f}, "
                      f"k-shot {row['k_shot']:.3f}, random {row['control']['random_accuracy_mean']:.3f}, p {row['control']['p']:.3f}) "
                      f"best L{row['best_layer']['layer']} {row['best_layer']['accuracy']:.3f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--part", choices=("main", "agreement", "roles", "all"), required=True)
    ap.add_argument("--role-seeds", default="0")
    ap.add_argument("--tasks", default="antonym,capitalize,country_capital")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--key", default=None, help="key in the JSON (default: the part)")
    args = ap.parse_args()
    tasks, seeds = args.tasks.split(","), [int(s) for s in args.seeds.split(",")]
    ctx = context(args.model)
    command = (f"benchmarks/function_vector.py --model {args.model} --part {args.part} --tasks {args.tasks} "
               f"--seeds {args.seeds} --top {args.top} --scale {args.scale} --role-seeds {args.role_seeds}")
    parts = ("main", "agreement", "roles") if args.part == "all" else (args.part,)
    for part in parts:
        start = time.perf_counter()
        if part == "main":
            result: Any = part_main(ctx, tasks, seeds, args.top, args.scale)
        elif part == "agreement":
            result = [part_agreement(ctx, tasks[0], 5, 32)]
        else:
            result = part_roles(ctx, tasks, [int(s) for s in args.role_seeds.split(",")], args.top, args.scale)
        save(args.model, args.key or part, {"command": command, "seconds": round(time.perf_counter() - start, 1), "rows": result})


def save(model: str, key: str, value: Any) -> None:
    path = OUT / f"function_vector-{model}.json"
    data = json.loads(path.read_text()) if path.exists() else {"model": model}
    data[key] = value
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
