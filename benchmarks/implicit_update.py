"""Implicit rank-1 updates on a real model: how exact the identity is, per layer, and how ||dW|| grows.

    flock /tmp/icltest-real.lock .venv/bin/python benchmarks/implicit_update.py smollm2-135m
    flock /tmp/icltest-real.lock .venv/bin/python benchmarks/implicit_update.py gemma3-270m
    flock /tmp/icltest-real.lock .venv/bin/python benchmarks/implicit_update.py smollm2-135m 6 antonym   # one task
    flock /tmp/icltest-real.lock .venv/bin/python benchmarks/implicit_update.py smollm2-135m 4 text      # prose
    .venv/bin/python benchmarks/implicit_update.py tiny          # float32 vs float64 on tiny models

For each seed (0 / 1 / 2) and task (antonym, country_capital; 5 shots, test split, n items) and
each form (``mlp``: the MLP's output; ``block``: the block's output, with the down-projection and
post-norm patches), every layer's relative error ||patched(x) - with_context|| / ||with_context||
(max and median over items), the unpatched error (the context's effect), the applied patches'
sigma_2 / sigma_1, ||dW||_F; then the token-by-token growth of ||dW|| (Spearman of the step norm
against the number of context tokens, late / early step ratio). Writes
benchmarks/measurements/implicit_update-<model>.json.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from icltest.interventions import implicit_update as iu

SEEDS = (0, 1, 2)
TASKS = ("antonym", "country_capital")
OUT = Path(__file__).resolve().parent / "measurements"


def _r(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}") if x == x else x


def identity_rows(adapter, items, layers, through):
    t0 = time.perf_counter()
    res = iu.measure_identity(adapter, items, layers, through=through, rank_items=1)
    seconds = time.perf_counter() - t0
    rows = []
    for j, layer in enumerate(layers):
        errs = [row[j] for row in res["errors"]]
        base = [row[j] for row in res["unpatched"]]
        fro = [sum(v ** 2 for v in row[j].values()) ** 0.5 for row in res["fro"]]
        rows.append({"layer": layer, "max": _r(max(errs)), "median": _r(statistics.median(errs)),
                     "unpatched_median": _r(statistics.median(base)), "unpatched_min": _r(min(base)),
                     "dW_fro_median": _r(statistics.median(fro)), "rank_ratio": _r(res["rank_ratio"][j] or 0.0)})
    return rows, seconds


def growth_rows(adapter, items, layers):
    t0 = time.perf_counter()
    stats = iu.growth_stats(adapter, items, layers)
    seconds = time.perf_counter() - t0
    rows = []
    for layer in layers:
        s = stats[layer]
        rhos = [r for r in s["rho"] if r == r]
        m = min(len(t) for t in s["total"])
        mean_total = [statistics.fmean(t[i] for t in s["total"]) for i in range(m)]
        rows.append({"layer": layer, "rho_median": _r(statistics.median(rhos)) if rhos else None,
                     "rho_max": _r(max(rhos)) if rhos else None,
                     "late_early_median": _r(statistics.median(s["late_early"])),
                     "total_mean_curve": [_r(v, 3) for v in mean_total]})
    return rows, seconds


def real(alias: str, n: int, tasks: tuple[str, ...] = TASKS) -> dict:
    from icltest.models.loading import ModelSource
    from icltest.session import Session

    t0 = time.perf_counter()
    loaded = Session().model(ModelSource(alias=alias))
    load_s = time.perf_counter() - t0
    adapter, tok = loaded.adapter, loaded.tokenizer
    layers = list(range(adapter.n_layers))
    out = {"model": alias, "n": n, "shots": 5, "split": "test", "layers": layers, "load_seconds": round(load_s, 1),
           "runs": []}
    for task in tasks:
        for seed in SEEDS:
            items = iu.task_items(tok, task, shots=5, n=n, seed=seed)
            run = {"task": task, "seed": seed, "context_tokens": [len(i.context) for i in items],
                   "query_tokens": [len(i.query) for i in items]}
            for through in ("mlp", "block"):
                rows, secs = identity_rows(adapter, items, layers, through)
                run[through] = {"layers": rows, "seconds": round(secs, 2),
                                "max": max(r["max"] for r in rows),
                                "median_of_medians": _r(statistics.median(r["median"] for r in rows)),
                                "unpatched_min": min(r["unpatched_min"] for r in rows)}
                print(f"{alias} {task} seed {seed} {through}: max {run[through]['max']:.2e} "
                      f"median {run[through]['median_of_medians']:.2e} unpatched min "
                      f"{run[through]['unpatched_min']:.3f} ({secs:.1f} s)", flush=True)
            rows, secs = growth_rows(adapter, items, layers)
            run["growth"] = {"layers": rows, "seconds": round(secs, 2)}
            rhos = [r["rho_median"] for r in rows if r["rho_median"] is not None]
            print(f"  growth: rho median over layers {statistics.median(rhos):.3f}, max {max(rhos):.3f}, "
                  f"min {min(rhos):.3f}; late/early median "
                  f"{statistics.median(r['late_early_median'] for r in rows):.3f} ({secs:.1f} s)", flush=True)
            out["runs"].append(run)
    return out


def text(alias: str, n: int) -> dict:
    """C = a document's first 48 tokens, x = the next 8 (essays corpus), seeds 0 / 1 / 2."""
    from icltest.models.loading import ModelSource
    from icltest.session import Session

    loaded = Session().model(ModelSource(alias=alias))
    adapter, tok = loaded.adapter, loaded.tokenizer
    layers = list(range(adapter.n_layers))
    out = {"model": alias, "n": n, "input": "essays: context 48 tokens, query 8", "runs": []}
    for seed in SEEDS:
        items = iu.text_items(tok, corpus="essays", context=48, query=8, n=n, seed=seed)
        run = {"seed": seed}
        for through in ("mlp", "block"):
            rows, secs = identity_rows(adapter, items, layers, through)
            run[through] = {"layers": rows, "seconds": round(secs, 2), "max": max(r["max"] for r in rows),
                            "unpatched_min": min(r["unpatched_min"] for r in rows)}
            print(f"{alias} text seed {seed} {through}: max {run[through]['max']:.2e} unpatched min "
                  f"{run[through]['unpatched_min']:.3f} ({secs:.1f} s)", flush=True)
        rows, secs = growth_rows(adapter, items, layers)
        run["growth"] = {"layers": rows, "seconds": round(secs, 2)}
        out["runs"].append(run)
    return out


def tiny() -> dict:
    """float32 vs float64 on every tiny architecture: the float32 error is rounding."""
    from icltest.models.adapters import Adapter
    from icltest.testing.tiny_configs import CONFIGS, build_tiny

    out = {}
    for name in CONFIGS:
        for dtype in (torch.float32, torch.float64):
            model = build_tiny(name).to(dtype)
            adapter = Adapter.for_model(model)
            g = torch.Generator().manual_seed(0)
            items = [iu.Item((0,), tuple(torch.randint(1, 50, (16,), generator=g).tolist()),
                             tuple(torch.randint(1, 50, (6,), generator=g).tolist())) for _ in range(4)]
            layers = list(range(adapter.n_layers))
            for through in ("mlp", "block"):
                res = iu.measure_identity(adapter, items, layers, through=through)
                errs = [e for row in res["errors"] for e in row]
                out[f"{name} {str(dtype)[6:]} {through}"] = {"max": _r(max(errs)), "median": _r(statistics.median(errs))}
                print(name, dtype, through, f"max {max(errs):.2e}", flush=True)
    return out


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    torch.set_num_threads(2)
    tasks = tuple(sys.argv[3].split(",")) if len(sys.argv) > 3 else TASKS
    if which == "tiny":
        result = tiny()
    elif tasks == ("text",):
        result = text(which, n)
    else:
        result = real(which, n, tasks)
    OUT.mkdir(exist_ok=True)
    suffix = "" if tasks == TASKS or which == "tiny" else "-" + "-".join(tasks)
    path = OUT / f"implicit_update-{which}{suffix}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", path)
