"""In-context vs parametric head sets on open/closed-book recall with random controls: python benchmarks/measurements/heads.py [SEED ...]."""
import json, sys, time
from icltest.session import Session
from icltest.models.loading import ModelSource
from icltest.runs.run import Ablation, Run
from icltest.schema.spec import MetricSpec
from icltest.scores.control import draw_random_heads
s = Session(); L = s.model(ModelSource(alias="smollm2-135m"))
SETS = {"incontext": [(0,3),(14,3),(16,0),(10,8),(22,1)], "parametric": [(23,4),(5,6),(21,5),(20,5),(1,0)]}
out = {}
for seed in [int(a) for a in sys.argv[1:]] or (0, 2):
    t = time.perf_counter()
    for task in ("open_book", "closed_book"):
        run = Run(s, L, MetricSpec(name="recall", task=task, shots=2, n=48, seed=seed))
        clean = run.value()
        for name, heads in SETS.items():
            key = f"{task}/{name}/mean/seed{seed}"
            out[key] = [round(clean, 4), round(run.value(Ablation(heads=tuple(heads), method="mean")), 4)]
            print(key, out[key], "drop", round(out[key][0]-out[key][1], 4), flush=True)
            draws = draw_random_heads(30, 9, 5, exclude=heads, draws=5, seed=0)
            key = f"{task}/{name}/control-mean/seed{seed}"
            out[key] = [round(clean - run.value(Ablation(heads=tuple(d), method="mean")), 4) for d in draws]
            print(key, out[key], flush=True)
    print("seconds", round(time.perf_counter() - t, 1), flush=True)
json.dump(out, open("heads.json", "w"), indent=1)
