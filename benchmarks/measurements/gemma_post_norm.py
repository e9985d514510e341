"""Gemma 3 induction-head ablation with post_norm frozen vs live, probe seeds 0-2 (suites/gemma3-270m.yaml)."""
import json, sys
from icltest.session import Session
from icltest.models.loading import ModelSource
from icltest.runs.run import Ablation, Run
from icltest.schema.spec import MetricSpec, ProbeSpec
from icltest.scores.control import draw_random_heads
s = Session(); L = s.model(ModelSource(alias="gemma3-270m")); ad = L.adapter
heads = ((5, 1), (11, 2), (5, 2))
for seed in (0, 1, 2):
    run = Run(s, L, MetricSpec(name="repeated_token_loss", part="second_half"), ProbeSpec(seed=seed))
    clean = run.value()
    row = {"seed": seed, "clean": round(clean, 4)}
    for mode in ("frozen", "live"):
        row[mode] = round(run.value(Ablation(heads=heads, post_norm=mode)) - clean, 4)
        draws = draw_random_heads(ad.n_layers, ad.n_heads, 3, exclude=heads, draws=5, seed=0)
        eff = [v - clean for v in run.values([Ablation(heads=tuple(d), post_norm=mode) for d in draws])]
        row[mode + "_controls"] = [round(e, 3) for e in eff]
    print(json.dumps(row), flush=True)
