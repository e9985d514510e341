"""Concept injection (`kind: steering`) on a real model: gains, controls, sweeps, detection, per seed.

    flock /tmp/icltest-real.lock .venv/bin/python benchmarks/steering.py smollm2-135m
    flock /tmp/icltest-real.lock .venv/bin/python benchmarks/steering.py gemma3-270m
    flock /tmp/icltest-real.lock .venv/bin/python benchmarks/steering.py gemma3-270m --seeds 1,2 --append

Writes benchmarks/measurements/steering-<model>.json. Each seed sets the control draws' seed and a
seeded sample of 40 of the 50 shipped reference words.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from icltest.claims import steering
from icltest.claims.base import ClaimContext, Target
from icltest.models.loading import ModelSource
from icltest.session import Session

CONCEPTS = ["ocean", "bread", "music", "fire", "dog"]
LAYERS = [0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0]
CONFIGS = {
    # the seed's pseudo code: plain "Tell me about {word}", raw multiplier
    "plain-raw": dict(chat_template="no", scale="raw", layer=0.5, strength=1.0,
                      sweep={"strengths": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
                             "layers": LAYERS}),
    # Anthropic's setting: chat-format concept prompts; strength in units of the residual norm
    "chat-norm": dict(chat_template="yes", scale="norm", layer=0.5, strength=0.5,
                      sweep={"strengths": [0.125, 0.25, 0.5, 1.0, 2.0],
                             "layers": LAYERS}),
}


def main(alias: str, chat_seeds: tuple[int, ...] = (0,), seeds: tuple[int, ...] = (0, 1, 2),
         append: bool = False) -> None:
    session = Session()
    loaded = session.model(ModelSource(alias=alias))
    path = Path(__file__).parent / "measurements" / f"steering-{alias}.json"
    out: dict = {"model": alias, "n_layers": loaded.adapter.n_layers, "concepts": CONCEPTS, "runs": []}
    if append and path.exists():  # keep the runs of other seeds (e.g. seed 0's sweeps) and add these
        out["runs"] = [r for r in json.loads(path.read_text())["runs"] if r["seed"] not in seeds]
    chat = bool(getattr(loaded.tokenizer, "chat_template", None))
    out["chat_template"] = chat  # gemma3-270m (the base checkpoint) has none: no chat-norm runs, no detection probe
    for name, cfg in CONFIGS.items():
        if name == "chat-norm" and not chat:
            continue
        for seed in (seeds if name == "plain-raw" else chat_seeds):
            spec = dict(id="bench", kind="steering", concepts=CONCEPTS, reference_n=40, seed=seed, generate=16,
                        expect={"gain": ">= 0"}, control={"draws": 19, "seed": seed},
                        detection={"new_tokens": 24} if seed == 0 and chat else None, **cfg)
            if seed != 0:  # sweeps (and detection) at seed 0 only: the shared CPU's time
                spec["sweep"] = None
            claim = steering.Schema.model_validate({k: v for k, v in spec.items() if v is not None})
            ctx = ClaimContext(session, loaded, None, lambda path: str(path))
            for concept in CONCEPTS:
                t0 = time.time()
                m = steering.measure(claim, Target(concept), ctx)
                v = steering.judge(claim, Target(concept), m)
                out["runs"].append({"config": name, "seed": seed, "concept": concept, "gain": m.value,
                                    "seconds": round(time.time() - t0, 2), "summary": v.summary, "details": m.details})
                print(name, seed, concept, round(m.value, 3), v.summary[:200], flush=True)
                path.write_text(json.dumps(out, indent=1, default=str))  # after every run
    print("wrote", path)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--chat-seeds", default="0", help="chat-norm seeds (default 0 only: the shared CPU's time)")
    ap.add_argument("--seeds", default="0,1,2", help="plain-raw seeds")
    ap.add_argument("--append", action="store_true", help="keep the JSON's runs of other seeds")
    args = ap.parse_args()
    main(args.model, tuple(int(x) for x in args.chat_seeds.split(",")), tuple(int(x) for x in args.seeds.split(",")),
         args.append)
