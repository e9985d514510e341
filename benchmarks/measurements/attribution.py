"""Measure the attribution claim kinds on a real model at several seeds (numbers for the suites).

    python benchmarks/measurements/attribution.py --model smollm2-135m [--seeds 0,1,2] [--json out.json]

1. Heads chosen on the *select* split (attribution patching, open-book and closed-book prompts,
   2 shots, n 32, seed 0): top in-context, parametric and counterfactual heads.
2. The same scores on the *test* split at each seed: the chosen heads' ranks there.
3. Direct logit attribution on repeated random tokens (the suite's probe, seed s): the top
   induction head's direct effect on the copied token, its rank among all heads.
4. Logit lens on open-book prompts: share of answers in the top 10 after each layer.
5. Source tracking (conflict prompts labelled by the model's answer, n 96 a split): held-out
   AUROC of the probe, the confidence and summed-heads baselines, permutation draws.
Direct effects are on centred logits (the claim's default).
"""
from __future__ import annotations

import argparse
import json
import time
import types

import torch

from icltest.claims import head_attribution as ha
from icltest.claims import logit_attribution as la
from icltest.claims import source_tracking as st
from icltest.models.loading import ModelSource
from icltest.schema.spec import ProbeSpec
from icltest.scores.ranking import top_heads
from icltest.session import Session


def ctx_for(session, loaded, probe=None):
    return types.SimpleNamespace(session=session, loaded=loaded, probe_spec=probe or ProbeSpec(),
                                 location=lambda key: f"<measure>:{key}")


def claim(**kw):
    base = dict(shots=2, n=32, seed=0, split="test", agreement=None, heads=None, layers=None, lens=None, task=None,
                chat_template="no", features="heads", control=None)
    base.update(kw)
    return types.SimpleNamespace(**base)


def name(l, h):
    return f"L{l}H{h}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    session = Session()
    loaded = session.model(ModelSource(alias=args.model))
    ctx = ctx_for(session, loaded)
    seeds = [int(s) for s in args.seeds.split(",")]
    out: dict = {"model": args.model}
    t = time.perf_counter()
    chosen = {}
    for role in ("in_context", "parametric", "counterfactual"):
        score, info = ha.role_score(claim(role=role, split="select"), ctx)
        chosen[role] = [(l, h) for l, h, _ in top_heads(score, args.top)]
        print(f"select split, {role}: " + ", ".join(f"{name(l, h)}={v:+.5f}" for l, h, v in top_heads(score, args.top)),
              f"({info['seconds']} s)", flush=True)
    out["chosen_on_select"] = {k: [name(*p) for p in v] for k, v in chosen.items()}
    from icltest.attribution.roles import task_or_retrieval
    from icltest.scores.span_attention import book_span_attention

    score, _ = ha.role_score(claim(role="in_context", split="select"), ctx)
    top10 = [(l, h) for l, h, _ in top_heads(score, 10)]
    spans, _ = book_span_attention(loaded, "open_book", shots=2, n=32, seed=0, split="select")
    out["in_context_roles"] = task_or_retrieval(top10, spans.mass, spans.uniform)
    print("top-10 in-context heads (select), task or retrieval:", out["in_context_roles"], flush=True)
    out["test_ranks"] = {}
    for seed in seeds:
        for role, heads in chosen.items():
            score, info = ha.role_score(claim(role=role, seed=seed), ctx)
            ranks = ha._ranks(score)
            row = {name(*p): int(ranks[p]) for p in heads}
            out["test_ranks"].setdefault(role, {})[seed] = row
            print(f"test split seed {seed}, {role} ranks: {row}; clean {info['clean_metric']}", flush=True)
    out["dla"], out["lens"], out["source"] = {}, {}, {}
    for seed in seeds:
        probe = ProbeSpec(length=50, repeats=2, batch=16, seed=seed)
        pctx = ctx_for(session, loaded, probe)
        c = claim(heads=types.SimpleNamespace(top=1, by="induction"), task=None, centred=True,
                  expect=types.SimpleNamespace(margin=lambda v: v))
        effects, label, _ = la._effects(c, pctx)
        table = effects.heads.mean(0)
        run = session.pattern_run(loaded, probe)
        (il, ih, iscore), = top_heads(run.scores["induction"], 1)
        best = top_heads(table, 3)
        out["dla"][seed] = {"top_induction": name(il, ih), "its_direct_effect": round(float(table[il, ih]), 4),
                            "its_rank": int((table > table[il, ih]).sum()) + 1,
                            "top_direct": [[name(l, h), round(v, 4)] for l, h, v in best],
                            "all_heads_mean": round(float(table.mean()), 4), "all_heads_sd": round(float(table.std()), 4),
                            "sum_check": float((effects.total() - effects.logit).abs().max())}
        print(f"DLA seed {seed}: {out['dla'][seed]}", flush=True)
        lc = claim(lens=types.SimpleNamespace(layer=-1, top=10), task="open_book", seed=seed)
        lens, _, _ = la._effects(lc, ctx)
        frac = lens.top_fraction(10)
        out["lens"][seed] = [round(float(v), 3) for v in frac]
        print(f"lens open_book seed {seed} (top-10 share; col 0 embed, col L+1 after layer L): {out['lens'][seed]}", flush=True)
        sc = claim(n=96, min_class=5, seed=seed, control=types.SimpleNamespace(draws=19, seed=0, expect=None),
                   expect=types.SimpleNamespace(auroc=None))
        m = st.measure(sc, st.targets(sc)[0], ctx)
        out["source"][seed] = {"auroc": round(m.value, 4), **{k: m.details[k] for k in
                                                                ("train_auroc", "confidence_auroc", "heads_sum_auroc",
                                                                 "answered", "control")}}
        print(f"source tracking seed {seed}: {out['source'][seed]}", flush=True)
    out["seconds"] = round(time.perf_counter() - t, 1)
    print(f"total {out['seconds']} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
