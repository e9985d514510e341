"""Attribution patching vs exact per-head mean ablation: time and rank agreement, in one run.

    python benchmarks/attribution_vs_ablation.py --model smollm2-135m --task open_book
        [--shots 2 --n 16 --seed 1 --split select] [--skip-exact] [--json out.json]

Both read the same Run (same prompts, same reference means from the other split of the items,
metric: the answer's log-probability). The exact scan mean-ablates each head alone (one forward
pass over the prompts per head); attribution patching estimates all heads from one forward and one
backward pass per chunk of prompts. Prints both timings, their ratio, Spearman's rho over all
heads, the top heads of each, and the heads where they disagree most (rank difference).
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from scipy.stats import spearmanr

from icltest.attribution.patching import attribute_heads
from icltest.models.loading import ModelSource
from icltest.runs.run import Ablation, Run
from icltest.schema.spec import MetricSpec
from icltest.session import Session


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--task", default="open_book")
    p.add_argument("--shots", type=int, default=2)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--split", default="select")
    p.add_argument("--skip-exact", action="store_true")
    p.add_argument("--layers", help="compare only heads of these layers, e.g. 14-19 (default: all)")
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    session = Session()
    loaded = session.model(ModelSource(alias=args.model))
    metric = "logit_diff" if args.task == "counterfactual" else "answer_logprob"
    run = Run(session, loaded, MetricSpec(name=metric, task=args.task, shots=args.shots, n=args.n,
                                          seed=args.seed, split=args.split))
    run._reference("heads")  # both methods share it: not timed
    t = time.perf_counter()
    clean = run.value()
    t_clean = time.perf_counter() - t
    t = time.perf_counter()
    attr = attribute_heads(run)
    t_attr = time.perf_counter() - t
    est = attr.mean_effect()
    L, H = est.shape
    if args.layers:
        from icltest.schema.base import _layer_list

        layers = _layer_list(args.layers)
    else:
        layers = list(range(L))
    heads = [(l, h) for l in layers for h in range(H)]
    out = {"model": args.model, "inputs": run.inputs.label, "metric": metric, "clean": clean,
           "clean_forward_seconds": round(t_clean, 2), "attribution_seconds": round(t_attr, 2), "attribution_passes": attr.passes,
           "attribution_top": [[f"L{l}H{h}", round(float(est[l, h]), 4)] for l, h in sorted(heads, key=lambda x: float(est[x]))[:10]]}
    print(f"{run.inputs.label}\nclean {metric} {clean:.4f} ({t_clean:.1f} s, one forward pass)\nattribution: {t_attr:.1f} s, {attr.passes} forward+backward passes")
    print("attribution, most supporting (most negative estimated change):", out["attribution_top"])
    if not args.skip_exact:
        t = time.perf_counter()
        exact_values = run.values([Ablation(heads=(h,), method="mean") for h in heads])
        t_exact = time.perf_counter() - t
        exact = torch.full((L, H), float("nan"))
        for (l, h), v in zip(heads, exact_values):
            exact[l, h] = v - clean
        e_sel = torch.tensor([float(est[p]) for p in heads])
        x_sel = torch.tensor([float(exact[p]) for p in heads])
        rho = spearmanr(e_sel.numpy(), x_sel.numpy()).statistic
        r_est, r_exa = torch.zeros(L, H, dtype=torch.long), torch.zeros(L, H, dtype=torch.long)
        for p, a, b in zip(heads, e_sel.argsort().argsort().tolist(), x_sel.argsort().argsort().tolist()):
            r_est[p], r_exa[p] = a, b
        gap = (r_est - r_exa).abs()
        worst = sorted(heads, key=lambda x: -int(gap[x]))[:8]
        top_exact = sorted(heads, key=lambda x: float(exact[x]))[:10]
        top_attr = sorted(heads, key=lambda x: float(est[x]))[:10]
        out.update({"layers": args.layers or "all", "exact_seconds": round(t_exact, 1), "ratio": round(t_exact / t_attr, 1), "spearman": round(float(rho), 4),
                    "exact_top": [[f"L{l}H{h}", round(float(exact[l, h]), 4)] for l, h in top_exact],
                    "top10_overlap": len(set(top_exact) & set(top_attr)),
                    "disagree": [[f"L{l}H{h}", int(r_est[l, h]), int(r_exa[l, h]), round(float(est[l, h]), 4),
                                  round(float(exact[l, h]), 4)] for l, h in worst]})
        print(f"exact mean-ablation scan: {t_exact:.1f} s ({len(heads)} heads); ratio {t_exact / t_attr:.1f}x")
        print(f"Spearman over all {len(heads)} heads: {rho:.3f}; top-10 overlap {out['top10_overlap']}")
        print("exact, most supporting:", out["exact_top"])
        print("largest rank disagreements [head, attribution rank, exact rank, estimate, exact]:", out["disagree"])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
