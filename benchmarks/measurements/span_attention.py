"""Attention mass from the last prompt token on the question and answer spans of open-book prompts.

    python benchmarks/measurements/span_attention.py [--models smollm2-135m gemma3-270m] [--json out.json]

Per model: open_book prompts from the test split, shots 2, n 32, seeds 0 and 1; every head's mass
on each span (icltest.scores.span_attention), the top 8 heads per span (mean over the seeds, with
each seed's value) against the span's uniform share (chance), and the mass of named heads.
"""
from __future__ import annotations

import argparse
import json
import time

from icltest.models.loading import ModelSource
from icltest.scores.ranking import top_heads
from icltest.scores.span_attention import book_span_attention
from icltest.session import Session

SPANS = ("question", "answer")
ALL_SPANS = ("question", "answer", "context", "demonstrations", "prompt_format")
NAMED = {"smollm2-135m": [(16, 0), (19, 1), (20, 1), (29, 1), (11, 6), (0, 3), (14, 3), (10, 8), (22, 1)]}
SEEDS = (0, 1)
SHOTS, N, TOP = 2, 32, 8


def name(l: int, h: int) -> str:
    return f"L{l}H{h}"


def measure(session: Session, alias: str) -> dict:
    loaded = session.model(ModelSource(alias=alias))
    runs = {}
    for seed in SEEDS:
        start = time.perf_counter()
        result, batch = book_span_attention(loaded, "open_book", shots=SHOTS, n=N, seed=seed, split="test")
        runs[seed] = result
        lengths = [len(ids) for ids in batch.input_ids]
        print(f"{alias} seed {seed}: {len(batch)} prompts, {min(lengths)}-{max(lengths)} tokens, "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    mean = {s: sum(runs[seed].mass[s] for seed in SEEDS) / len(SEEDS) for s in ALL_SPANS}
    uniform = {s: {seed: runs[seed].uniform[s] for seed in SEEDS} for s in ALL_SPANS}
    out = {"alias": alias, "shots": SHOTS, "n": N, "seeds": list(SEEDS), "split": "test", "task": "open_book",
           "uniform": uniform, "top": {}, "named": {}}
    for span in SPANS:
        rows = []
        for l, h, v in top_heads(mean[span], TOP):
            rows.append({"head": name(l, h), "mean": round(v, 4),
                         "per_seed": [round(float(runs[seed].mass[span][l, h]), 4) for seed in SEEDS],
                         "other_span": {o: round(float(mean[o][l, h]), 4) for o in ALL_SPANS if o != span}})
        out["top"][span] = rows
    named = NAMED.get(alias) or sorted({(l, h) for s in SPANS for l, h, _ in top_heads(mean[s], TOP)})
    for l, h in named:
        out["named"][name(l, h)] = {s: {"mean": round(float(mean[s][l, h]), 4),
                                        "per_seed": [round(float(runs[seed].mass[s][l, h]), 4) for seed in SEEDS]}
                                    for s in ALL_SPANS}
    return out


def show(res: dict) -> None:
    u = res["uniform"]
    print(f"\n== {res['alias']}: {res['task']}, shots {res['shots']}, n {res['n']}, seeds {res['seeds']}, "
          f"split {res['split']}; attention from the last prompt token")
    print("uniform share (chance): " + ", ".join(
        f"{s} " + "/".join(f"{u[s][seed]:.4f}" for seed in res["seeds"]) for s in ALL_SPANS))
    for span in SPANS:
        mean_u = sum(u[span].values()) / len(u[span])
        print(f"-- top {TOP} heads by mass on {span} (mean over seeds; seeds; x chance; mass on the other span)")
        other = [s for s in SPANS if s != span][0]
        for row in res["top"][span]:
            print(f"  {row['head']:>7}  {row['mean']:.4f}  ({', '.join(f'{v:.4f}' for v in row['per_seed'])})  "
                  f"{row['mean'] / mean_u:5.1f}x  {other} {row['other_span'][other]:.4f}")
    print("-- named heads: mass on question / answer (mean; seeds) | context, demonstrations, prompt_format")
    for head, spans in res["named"].items():
        q, a = spans["question"], spans["answer"]
        print(f"  {head:>7}  question {q['mean']:.4f} ({', '.join(f'{v:.4f}' for v in q['per_seed'])})  "
              f"answer {a['mean']:.4f} ({', '.join(f'{v:.4f}' for v in a['per_seed'])})  | "
              f"{spans['context']['mean']:.4f}, {spans['demonstrations']['mean']:.4f}, {spans['prompt_format']['mean']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    session = Session()
    results = []
    for alias in args.models:  # one model at a time
        res = measure(session, alias)
        show(res)
        results.append(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
