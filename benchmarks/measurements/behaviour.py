"""Behavioural numbers behind the shipped suites, seeds 0-2: python benchmarks/measurements/behaviour.py ALIAS."""
"""Measurements for the shipped SmolLM2 suite: seeds 0, 1, 2 of every behavioural claim."""
import json, sys, time
from icltest.session import Session
from icltest.models.loading import ModelSource
from icltest.runs.run import Ablation, Run
from icltest.schema.spec import MetricSpec, ProbeSpec, NaturalTextProbe
from icltest.scores.control import draw_random_heads
alias = sys.argv[1]
s = Session(); L = s.model(ModelSource(alias=alias))
out = {}
def rec(key, val):
    out[key] = val; print(key, val, flush=True)
IND = {"smollm2-135m": [(18,6),(17,3),(17,4),(17,5),(18,7)], "gemma3-270m": [(5,1),(11,2),(5,2)]}[alias]
for seed in (0, 1, 2):
    t = time.perf_counter()
    run = Run(s, L, MetricSpec(name="repeated_token_loss", part="second_half"), ProbeSpec(seed=seed))
    clean = run.value()
    for method in ("zero", "mean", "resample"):
        rec(f"induction_ablation/{method}/seed{seed}", [round(clean, 4), round(run.value(Ablation(heads=tuple(IND), method=method)), 4)])
    draws = draw_random_heads(L.adapter.n_layers, L.adapter.n_heads, len(IND), exclude=IND, draws=5, seed=0)
    rec(f"induction_ablation/control/seed{seed}", [round(run.value(Ablation(heads=tuple(d))) - clean, 4) for d in draws])
    rec(f"time/induction/seed{seed}", round(time.perf_counter() - t, 1))
    r2 = Run(s, L, MetricSpec(name="icl_score"), ProbeSpec(seed=seed))
    rec(f"icl_score/repeated/seed{seed}", round(r2.value(), 4))
    for length, window in ((400, 10), (300, 10)):
        try:
            r3 = Run(s, L, MetricSpec(name="icl_score", window=window), NaturalTextProbe(kind="natural_text", length=length, batch=16, seed=seed))
            from icltest.runs.run import icl_positions
            rec(f"icl_score/natural{length}w{window}/seed{seed}", [round(r3.value(), 4), icl_positions(r3.inputs.probe, None, None)])
        except ValueError as e:
            rec(f"icl_score/natural{length}/seed{seed}", str(e))
    for task in ("antonym", "capitalize", "present_past", "singular_plural", "country_capital", "english_french"):
        vals = []
        for shots in (0, 5):
            vals.append(round(Run(s, L, MetricSpec(name="accuracy", task=task, shots=shots, n=48, seed=seed)).value(), 4))
        rec(f"task/{task}/seed{seed}", vals)
    for task in ("open_book", "closed_book", "counterfactual"):
        rec(f"book/{task}/shots2/seed{seed}", round(Run(s, L, MetricSpec(name="recall", task=task, shots=2, n=48, seed=seed)).value(), 4))
json.dump(out, open(f"measure-{alias}.json", "w"), indent=1)
