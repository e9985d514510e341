"""Counterfactual logit difference, clean and with head sets ablated: python benchmarks/measurements/counterfactual.py."""
from icltest.session import Session
from icltest.models.loading import ModelSource
from icltest.runs.run import Ablation, Run
from icltest.schema.spec import MetricSpec
from icltest.scores.control import draw_random_heads
s = Session(); L = s.model(ModelSource(alias="smollm2-135m"))
INC = ((0,3),(14,3),(16,0),(10,8),(22,1)); PAR = ((23,4),(5,6),(21,5),(20,5),(1,0))
for seed in (0, 1, 2):
    run = Run(s, L, MetricSpec(name="logit_diff", task="counterfactual", shots=2, n=48, seed=seed))
    c = run.value()
    i = run.value(Ablation(heads=INC, method="mean")); p = run.value(Ablation(heads=PAR, method="mean"))
    ctrl = [round(c - run.value(Ablation(heads=tuple(d), method="mean")), 3) for d in draw_random_heads(30, 9, 5, exclude=INC, draws=5, seed=0)]
    print(f"seed {seed}: clean {c:.3f}  in-context ablated {i:.3f} (drop {c-i:.3f})  parametric ablated {p:.3f} (drop {c-p:.3f})  control drops {ctrl}", flush=True)
