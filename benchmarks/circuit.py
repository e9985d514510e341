"""Circuit claims on a real model: necessity, faithfulness (MIB f) and CPR / CMD curves.

Runs `kind: circuit` claims through the claim code at probe seeds 0 / 1 / 2 and writes
benchmarks/measurements/circuit-<model>.json. Claims already measured (model, claim, seed)
in the JSON are skipped, so a run cut short resumes. Usage (one real-model job at a time):
    flock /tmp/icltest-real.lock .venv/bin/python benchmarks/circuit.py smollm2-135m gemma3-270m [seeds...] [--budget=S]
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
import types
from pathlib import Path

from icltest.claims import circuit as cc
from icltest.models.loading import ModelSource
from icltest.schema import load_spec
from icltest.schema.spec import ProbeSpec
from icltest.session import Session

LOSS = "metric: {name: repeated_token_loss, part: second_half}"
NAMED = {  # induction heads + previous-token heads from the suites' head_score claims
    "smollm2-135m": "[18.6, 17.3, 17.4, 17.5, 18.7, 16.0, 11.1, 2.1, 1.2]",
    "gemma3-270m": "[5.1, 5.2, 11.2, 2.3, 4.1]",
}
CURVE = "curve: {ranking: attribution, sizes: [0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0]}"


def claims(model: str) -> dict[str, str]:
    named = NAMED[model]
    nec = "expect: {necessity: {increase: '>= 0'}}"
    return {
        "spec: induction-circuit-at-the-copy-positions":
            f"heads: [{{top: 3, by: induction}}, {{top: 2, by: previous_token}}], positions: second_half, {LOSS}, "
            "expect: {necessity: {increase: '>= 1.0'}, faithfulness: '>= 0.5'}",
        "spec: attribution-ranked-heads-recover-copying":
            f"heads: {{top: 3, by: induction}}, {LOSS}, expect: {{necessity: {{increase: '>= 1.0'}}}}, "
            "curve: {ranking: attribution, sizes: [0.02, 0.05, 0.1, 0.2, 0.5, 1.0], expect: {cpr: '>= 0.3'}}",
        "named mean second_half": f"heads: {named}, positions: second_half, {LOSS}, "
                                  "expect: {necessity: {increase: '>= 1.0'}, faithfulness: '>= 0.5'}",
        "named mean": f"heads: {named}, {LOSS}, {nec}",
        "named zero": f"heads: {named}, ablation: zero, {LOSS}, {nec}",
        "attribution curve mean (fine sizes)": f"heads: {{top: 3, by: induction}}, {LOSS}, {nec}, {CURVE}",
        "top3-induction mean second_half": f"heads: {{top: 3, by: induction}}, positions: second_half, {LOSS}, {nec}",
        "top3+prev zero second_half": f"heads: [{{top: 3, by: induction}}, {{top: 2, by: previous_token}}], ablation: zero, "
                                      f"positions: second_half, {LOSS}, {nec}",
        "named counterfactual": f"heads: {named}, ablation: counterfactual, {LOSS}, {nec}",
        "top3+prev control faithfulness second_half": f"heads: [{{top: 3, by: induction}}, {{top: 2, by: previous_token}}], "
                                                      f"positions: second_half, {LOSS}, {nec}, "
                                                      "control: {statistic: faithfulness, draws: 19, seed: 0, expect: {p: '<= 0.1'}}",
        "attribution curve mean second_half": f"heads: {{top: 3, by: induction}}, positions: second_half, {LOSS}, {nec}, {CURVE}",
    }


def main() -> None:
    args = sys.argv[1:]
    models = [a for a in args if not a.isdigit() and not a.startswith("--")]
    seeds = [int(a) for a in args if a.isdigit()] or [0, 1, 2]
    budget = next((float(a.split("=")[1]) for a in args if a.startswith("--budget=")), 1e9)
    session = Session()
    loaded = {m: session.model(ModelSource(alias=m)) for m in models}
    outs = {}
    for m in models:
        path = Path(f"benchmarks/measurements/circuit-{m}.json")
        outs[m] = json.loads(path.read_text()) if path.exists() else {"model": m, "results": {}}
    start_all = time.perf_counter()
    names = list(claims(models[0]))
    for name in names:
        for m in models:
            body = claims(m)[name]
            for seed in seeds:
                if str(seed) in outs[m]["results"].get(name, {}):
                    continue
                if time.perf_counter() - start_all > budget:
                    print("time budget spent", flush=True)
                    return
                with tempfile.TemporaryDirectory() as tmp:
                    spec = Path(tmp) / "s.yaml"
                    spec.write_text(f"schema_version: 1\nmodel: {m}\nclaims:\n  - {{id: a, kind: circuit, {body}}}\n")
                    claim = load_spec(spec).spec.claims[0]
                probe = ProbeSpec(length=50, repeats=2, batch=16, seed=seed)
                ctx = types.SimpleNamespace(session=session, loaded=loaded[m], probe_spec=probe, location=lambda k: str(k))
                start = time.perf_counter()
                target = cc.targets(claim)[0]
                meas = cc.measure(claim, target, ctx)
                verdict = cc.judge(claim, target, meas)
                seconds = time.perf_counter() - start
                d = {k: v for k, v in meas.details.items() if k != "sweeps"}
                outs[m]["results"].setdefault(name, {})[str(seed)] = {
                    "spec": body, "seconds": round(seconds, 1), "passed": verdict.passed, "summary": verdict.summary,
                    "details": d}
                print(f"[{m} seed {seed}] {name} ({seconds:.1f}s): {verdict.summary}", flush=True)
                Path(f"benchmarks/measurements/circuit-{m}.json").write_text(json.dumps(outs[m], indent=1, default=str))


if __name__ == "__main__":
    main()
