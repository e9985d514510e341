"""Top-3 induction heads, zero vs mean ablation, 19 random draws (specs/induction.yaml): python benchmarks/measurements/spec_controls.py"""
import json
from icltest.session import Session
from icltest.models.loading import ModelSource
from icltest.runs.run import Ablation, Run
from icltest.schema.spec import MetricSpec, ProbeSpec
from icltest.scores.control import draw_random_heads
from icltest.scores.ranking import top_heads
s = Session()
for alias in ("smollm2-135m", "gemma3-270m"):
    L = s.model(ModelSource(alias=alias)); ad = L.adapter
    for seed in (0, 1):
        pr = s.pattern_run(L, ProbeSpec(seed=seed))
        heads = tuple(sorted((l, h) for l, h, _ in top_heads(pr.scores["induction"], 3)))
        run = Run(s, L, MetricSpec(name="repeated_token_loss", part="second_half"), ProbeSpec(seed=seed))
        clean = run.value()
        for method in ("zero", "mean"):
            t = run.value(Ablation(heads=heads, method=method)) - clean
            draws = draw_random_heads(ad.n_layers, ad.n_heads, 3, exclude=heads, draws=19, seed=0)
            eff = [v - clean for v in run.values([Ablation(heads=tuple(d), method=method) for d in draws])]
            print(json.dumps({"model": alias, "seed": seed, "heads": heads, "method": method, "target": round(t, 3),
                              "controls_sorted": sorted(round(e, 2) for e in eff)}), flush=True)
