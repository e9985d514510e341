"""`icltest` command line: scan a model's heads, render reports.

`icltest scan` is the exploratory twin of the pytest plugin: it runs the same probe and the
same scores, prints layer x head tables with the top heads, and writes them as JSON so that
thresholds for a new suite can be read off measured numbers.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from icltest.runs.metrics import METRIC_NAMES

SCAN_SCORES = ("induction", "previous_token", "duplicate_token", "prefix_matching")


def _model_source(args: argparse.Namespace) -> Any:
    from icltest.models.aliases import ALIASES
    from icltest.models.loading import ModelSource

    common = {"dtype": args.dtype, "device": args.device}
    if args.path:
        return ModelSource(path=args.path, gguf_file=args.gguf_file, **common)
    if args.model in ALIASES:
        return ModelSource(alias=args.model, **common)
    if args.model and Path(args.model).is_dir():
        return ModelSource(path=args.model, gguf_file=args.gguf_file, **common)
    return ModelSource(id=args.model, revision=args.revision, gguf_file=args.gguf_file, **common)


def format_table(name: str, table: Any, top: int) -> str:
    """A layer x head grid (2 decimals) followed by the top heads."""
    from icltest.scores.ranking import top_heads

    n_layers, n_heads = table.shape
    lines = [f"== {name} (rows: layers, columns: heads) =="]
    lines.append("     " + "".join(f"{'H' + str(h):>6}" for h in range(n_heads)))
    for layer in range(n_layers):
        cells = "".join(f"{float(v):6.2f}" for v in table[layer])
        lines.append(f"L{layer:<3} {cells}")
    best = ", ".join(f"L{l}H{h}={v:.3f}" for l, h, v in top_heads(table, top))
    lines.append(f"top {top}: {best}")
    return "\n".join(lines)


def cmd_scan(args: argparse.Namespace) -> int:
    from icltest.models.aliases import ModelUnavailable
    from icltest.scores.ranking import top_heads
    from icltest.session import Session
    from icltest.schema.spec import ProbeSpec

    from pydantic import ValidationError

    from icltest.errors import InputError

    session = Session(cache_dir=Path(args.cache) if args.cache else None, progress=not args.quiet)
    if args.attribute:
        bad = [t for t in _attribution_tasks(args) if t not in ATTRIBUTION_TASKS]
        if bad:
            print(f"icltest scan --attribute: --task {bad} not supported; choose from {', '.join(ATTRIBUTION_TASKS)}",
                  file=sys.stderr)
            return 2
    scores = [s.strip() for s in args.scores.split(",") if s.strip()]
    unknown = [s for s in scores if s not in SCAN_SCORES]
    if unknown:
        print(f"icltest scan: unknown score(s) {unknown}; choose from {', '.join(SCAN_SCORES)}", file=sys.stderr)
        return 2
    if args.write_spec:  # scan at each --spec-seeds seed and write a starter spec (icltest/starter.py)
        from icltest.starter import cmd_write_spec

        return cmd_write_spec(args, scores)
    try:
        loaded = session.model(_model_source(args))
    except ModelUnavailable as exc:
        print(f"icltest scan: {exc}", file=sys.stderr)
        return 2
    info = loaded.info
    print(f"model {info['name']}: {info['architecture']}, {info['n_layers']} layers x {info['n_heads']} heads "
          f"({info['n_kv_heads']} kv), loaded in {info['load_seconds']} s (cache {info.get('cache', 'n/a')})",
          file=sys.stderr)
    probe = ProbeSpec(length=args.length, repeats=args.repeats, batch=args.batch, seed=args.seed, bos=args.bos)
    run = session.pattern_run(loaded, probe)
    print(f"probe {run.probe.label}: forward {run.seconds} s", file=sys.stderr)
    for name in scores:
        print(format_table(name, run.scores[name], args.top))
        print()
    ablation = _ablation_scan(session, loaded, args, probe) if args.ablate else None
    try:
        attribution = _attribution_scan(session, loaded, args) if args.attribute else None
    except (InputError, ValidationError) as exc:
        print(f"icltest scan --attribute: {_one_line(exc)}", file=sys.stderr)
        return 2
    if args.json:
        from icltest.report import environment

        payload = {
            "model": {k: v for k, v in info.items() if k != "source"} | {"source": info.get("source")},
            "probe": run.probe.params,
            "scores": {name: [[round(float(v), 5) for v in row] for row in run.scores[name]] for name in scores},
            "top": {name: [{"head": f"L{l}H{h}", "value": round(v, 5)} for l, h, v in top_heads(run.scores[name], args.top)]
                    for name in scores},
            "forward_seconds": run.seconds,
            "env": environment(),
        }
        if ablation is not None:
            payload["ablation"] = ablation
        if attribution is not None:
            payload["attribution"] = attribution
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _ablation_scan(session: Any, loaded: Any, args: argparse.Namespace, probe: Any) -> dict[str, Any]:
    """Ablate every head (of --layers) alone and tabulate the metric's change.

    The single-head variants are stacked in the batch (--stack per forward pass), so the scan
    costs (heads / stack) forward passes of stack x the input batch.
    """
    import torch
    from tqdm import tqdm

    from icltest.runs.metrics import METRICS
    from icltest.runs.run import Ablation, Run
    from icltest.scores.ranking import top_heads

    info = METRICS[args.metric]
    metric = _scan_metric(args)
    run = Run(session, loaded, metric, probe, stack=args.stack)
    adapter = loaded.adapter
    layers = _layers_arg(args.layers, adapter.n_layers)
    clean = run.value()
    effects = torch.full((adapter.n_layers, adapter.n_heads), float("nan"))
    heads = [(l, h) for l in layers for h in range(adapter.n_heads)]
    variants = [Ablation(heads=(pair,), method=args.method, post_norm=args.post_norm) for pair in heads]
    step = max(1, args.stack or run._group(len(variants), min(16, run.inputs.tokens.shape[0]), 1))
    print(f"ablation scan: {args.method}-ablating {len(heads)} heads one at a time, {step} per forward pass, "
          f"on {run.inputs.label}; clean {metric.name} = {clean:.4f}", file=sys.stderr)
    with tqdm(total=len(heads), desc="heads", unit="head", disable=args.quiet, file=sys.stderr) as bar:
        for start in range(0, len(variants), step):
            group = variants[start:start + step]
            for variant, value in zip(group, run.values(group)):
                (layer, head), = variant.heads
                effects[layer, head] = value - clean
            bar.update(len(group))
    # Losses get worse by going up, accuracies by going down: rank by the harmful direction.
    direction = info.harm
    harm = effects if direction == "increase" else -effects
    print(format_table(f"{metric.name} change when ablated (ablated - clean)", effects, 0).rsplit("\n", 1)[0])
    best = ", ".join(f"L{l}H{h}={float(effects[l, h]):+.4f}" for l, h, _ in top_heads(harm, args.top))
    print(f"top {args.top} by {direction}: {best}")
    print()
    return {
        "metric": metric.model_dump(exclude_none=True), "inputs": run.inputs.label, "method": args.method,
        "post_norm": args.post_norm if adapter.post_norm else "n/a (pre-norm model)",
        "clean": round(clean, 5), "direction": direction,
        "effects": [[None if v != v else round(float(v), 5) for v in row] for row in effects],
        "top": [{"head": f"L{l}H{h}", "effect": round(float(effects[l, h]), 5)} for l, h, _ in top_heads(harm, args.top)],
        "seconds": round(run.seconds, 2), "stack": step,
    }


ATTRIBUTION_TASKS = ("open_book", "closed_book", "counterfactual")


def _attribution_tasks(args: argparse.Namespace) -> list[str]:
    return [t.strip() for t in (args.task or "open_book,closed_book").split(",") if t.strip()]


def _one_line(exc: Exception) -> str:
    """A user error as one line: pydantic's first error message, else the exception's text."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(map(str, first.get('loc', ())))}: {first.get('msg')}"
    return str(exc)


def _attribution_scan(session: Any, loaded: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Rank every head by attribution patching on each --task (one forward + one backward pass per
    chunk of prompts); with open_book and closed_book both given, also the in-context / parametric
    contrast."""
    from icltest.attribution.patching import attribute_heads
    from icltest.attribution.roles import in_context_score
    from icltest.runs.run import Run
    from icltest.schema.spec import MetricSpec
    from icltest.scores.ranking import top_heads

    tasks = _attribution_tasks(args)
    out: dict[str, Any] = {"method": "attribution patching: estimated change of the metric when each head is "
                                     "mean-ablated (reference: the other split); relevance = minus that", "tasks": {}}
    relevance = {}
    for task in tasks:
        name = "logit_diff" if task == "counterfactual" else "answer_logprob"
        run = Run(session, loaded, MetricSpec(name=name, task=task, shots=args.shots, n=args.n, seed=args.seed,
                                              split=args.split))
        attr = attribute_heads(run)
        rel = -attr.mean_effect()
        relevance[task] = rel
        print(f"attribution on {run.inputs.label}: {attr.seconds:.1f} s for {attr.passes} forward+backward "
              f"pass(es); clean {name} {float(attr.metric.mean()):.4f}", file=sys.stderr)
        print(format_table(f"{task} relevance ({name}, + supports the answer)", rel, 0).rsplit("\n", 1)[0])
        top = [{"head": f"L{l}H{h}", "relevance": round(v, 5)} for l, h, v in top_heads(rel, args.top)]
        print(f"top {args.top}: " + ", ".join(f"{t['head']}={t['relevance']:+.4f}" for t in top) + "\n")
        out["tasks"][task] = {"inputs": run.inputs.label, "metric": name, "seconds": round(attr.seconds, 2),
                              "clean": round(float(attr.metric.mean()), 5),
                              "relevance": [[round(float(v), 5) for v in row] for row in rel], "top": top}
    if "open_book" in relevance and "closed_book" in relevance:
        score = in_context_score(relevance["open_book"], relevance["closed_book"])
        for role, table in (("in_context", score), ("parametric", -score)):
            top = [{"head": f"L{l}H{h}", "score": round(v, 5)} for l, h, v in top_heads(table, args.top)]
            print(f"top {args.top} {role}: " + ", ".join(f"{t['head']}={t['score']:+.5f}" for t in top))
            out[role] = top
        out["in_context_roles"] = _task_or_retrieval(loaded, args, [(l, h) for l, h, _ in top_heads(score, args.top)])
        print()
    return out


def _task_or_retrieval(loaded: Any, args: argparse.Namespace, heads: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Where the top in-context heads look from the last prompt token: question (task head) or the
    answer inside the context (retrieval head); one forward pass on the open-book prompts."""
    from icltest.attribution.roles import task_or_retrieval
    from icltest.errors import InputError
    from icltest.scores.span_attention import book_span_attention

    try:
        spans, _ = book_span_attention(loaded, "open_book", shots=args.shots, n=args.n, seed=args.seed, split=args.split)
    except InputError as exc:
        print(f"task / retrieval split skipped: {exc}", file=sys.stderr)
        return []
    rows = task_or_retrieval(heads, spans.mass, spans.uniform)
    print(f"in-context heads by attention from the last token (chance: question {spans.uniform['question']:.3f}, "
          f"answer {spans.uniform['answer']:.3f}):")
    for r in rows:
        print(f"  {r['head']}: question {r['question']:.3f} ({r['question_over_chance']}x), answer {r['answer']:.3f} "
              f"({r['answer_over_chance']}x) -> {r['role']} head")
    return rows


def _scan_metric(args: argparse.Namespace) -> Any:
    """The metric an ablation scan tabulates. Task metrics read the ``--split`` items: ``select`` by
    default, so heads chosen from a scan are judged by claims on items the scan never saw."""
    from icltest.runs.metrics import METRICS
    from icltest.schema.spec import MetricSpec

    info = METRICS[args.metric]
    fields: dict[str, Any] = {"name": args.metric}
    if info.inputs == "task":
        fields.update(task=args.task or info.task or "open_book", shots=args.shots, n=args.n, seed=args.seed,
                      split=args.split)
    elif "part" in info.fields:
        fields["part"] = "second_half"
    return MetricSpec(**fields)


def _layers_arg(text: str | None, n_layers: int) -> list[int]:
    if not text:
        return list(range(n_layers))
    from icltest.schema.spec import _layer_list

    layers = _layer_list(text)
    bad = [l for l in layers if l >= n_layers]
    if bad:
        raise SystemExit(f"icltest scan: --layers {bad} out of range (model has layers 0-{n_layers - 1})")
    return layers


def cmd_report(args: argparse.Namespace) -> int:
    """Markdown to stdout, or to --markdown PATH; --html PATH writes the self-contained HTML report.

    Exit 0 when no claim failed, 1 when one did, 2 when the file is not a readable report.
    """
    from icltest.report import render_markdown, write_html, write_markdown

    try:
        report = json.loads(Path(args.json).read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"icltest report: cannot read {args.json}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"icltest report: {args.json} is not JSON ({exc})", file=sys.stderr)
        return 2
    if not (isinstance(report, dict) and isinstance(report.get("summary"), dict) and isinstance(report.get("claims"), list)):
        print(f"icltest report: {args.json} is not an icltest report (no summary / claims); write one with "
              "pytest --icl-json PATH", file=sys.stderr)
        return 2
    if args.markdown:
        write_markdown(report, Path(args.markdown))
    if args.html:
        write_html(report, Path(args.html))
    if not (args.markdown or args.html):
        print(render_markdown(report))
    return 0 if report["summary"].get("failed", 0) == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icltest", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    scan = sub.add_parser("scan", help="score every head on a probe and print layer x head tables")
    scan.add_argument("--model", help="alias (smollm2-135m, gemma3-270m), hub id, or local folder")
    scan.add_argument("--path", help="local model folder (with --gguf-file for a GGUF in it)")
    scan.add_argument("--gguf-file", dest="gguf_file")
    scan.add_argument("--revision")
    scan.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    scan.add_argument("--device", default="cpu")
    scan.add_argument("--cache", help="dequantized-weights cache folder")
    scan.add_argument("--length", type=int, default=50, help="random segment length (default 50)")
    scan.add_argument("--repeats", type=int, default=2, help="segment repeats (default 2)")
    scan.add_argument("--batch", type=int, default=16)
    scan.add_argument("--seed", type=int, default=0)
    scan.add_argument("--bos", default="auto", choices=("auto", "yes", "no"))
    scan.add_argument("--scores", default="induction,previous_token,duplicate_token,prefix_matching")
    scan.add_argument("--top", type=int, default=5)
    scan.add_argument("--json", help="write the tables as JSON to this path")
    scan.add_argument("--quiet", action="store_true", help="no progress output")
    scan.add_argument("--ablate", action="store_true",
                      help="also ablate each head alone and tabulate the change of --metric (progress bar)")
    scan.add_argument("--attribute", action="store_true",
                      help="rank every head by attribution patching on --task (comma list of open_book, closed_book, "
                           "counterfactual; default open_book,closed_book, which adds the in-context / parametric "
                           "contrast): one forward and one backward pass per 16 prompts")
    scan.add_argument("--metric", default="repeated_token_loss", choices=METRIC_NAMES)
    scan.add_argument("--task", help="task for accuracy/recall/answer_prob (e.g. open_book, antonym)")
    scan.add_argument("--shots", type=int, default=0, help="demonstrations per task prompt")
    scan.add_argument("--n", type=int, default=48, help="task prompts")
    scan.add_argument("--split", default="select", choices=("select", "test"),
                      help="task items to ablate on (default select: claims judge on test; the mean-ablation "
                           "reference comes from the other split)")
    scan.add_argument("--method", default="zero", choices=("zero", "mean", "resample"))
    scan.add_argument("--layers", help="only ablate heads in these layers, e.g. 10-29")
    scan.add_argument("--stack", type=int, default=None,
                      help="single-head variants per forward pass, stacked in the batch (1 = one by one; default: "
                           "1 on CPU, where stacking measured slower, else as many as fit the logit budget)")
    scan.add_argument("--post-norm", dest="post_norm", default="frozen", choices=("frozen", "live"),
                      help="post-norm models (Gemma 2/3): keep the attention post-norm's scale at its clean value "
                           "(frozen, default: removes exactly the head's share of attn_out) or let it rescale (live)")
    scan.add_argument("--write-spec", dest="write_spec", metavar="PATH",
                      help="scan at each --spec-seeds seed and write a starter spec here: top heads per score with "
                           "thresholds a margin below the worst seed, a rank claim, population claims for the rest")
    scan.add_argument("--spec-seeds", dest="spec_seeds", default="0,1,2",
                      help="probe seeds for --write-spec (default 0,1,2; the spec runs the first)")
    scan.add_argument("--spec-top", dest="spec_top", type=int, default=3,
                      help="--write-spec: at most this many head claims per score (default 3)")
    scan.add_argument("--margin", type=float, default=0.02,
                      help="--write-spec: smallest margin between a bound and the worst measured value; the margin "
                           "is max(3 x sd over seeds, this, 10%% of the value) (default 0.02)")
    scan.add_argument("--force", action="store_true", help="--write-spec: overwrite an existing file")
    scan.set_defaults(func=cmd_scan)
    report = sub.add_parser("report", help="render a --icl-json report as Markdown (stdout) or HTML")
    report.add_argument("json")
    report.add_argument("--markdown", help="write the Markdown here instead of stdout")
    report.add_argument("--html", help="write a self-contained HTML report (claim table, heatmaps, sweeps) here")
    report.set_defaults(func=cmd_report)
    from icltest.diff.command import add_parser as add_diff_parser

    add_diff_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "scan" and not (args.model or args.path):
        print("icltest scan: give --model (alias, hub id or folder) or --path", file=sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
