#!/usr/bin/env python
"""Train a small attention-only transformer on repeated random tokens and save a checkpoint series.

Olsson et al. (2022) saw induction heads form abruptly during training (a phase change), together
with a drop in the loss on tokens that repeat earlier context. This script reproduces that on CPU in
about a minute (defaults: 1500 steps, ~55 s on 2 cores), so a suite can check that induction claims fail on early checkpoints and pass on late
ones, and so baselines and ``icltest diff`` have a real series of model versions to compare.

Model: ``GPT2LMHeadModel`` with 2 layers, the MLPs zeroed and frozen (so every block is attention
only; ``ln_2`` is frozen too since it feeds nothing), untied ``lm_head``. Tokenizer: the word-level
tokenizer of :mod:`icltest.testing.known_circuit` (``<bos>, t1 .. t{V-1}``), which
``AutoTokenizer`` loads offline. Both are written with ``save_pretrained`` into
``OUT/step_000000``, ``OUT/step_000050``, ...; any of those folders is a model for icltest
(``model: OUT/step_000400`` in a spec, or ``icltest scan --model OUT/step_000400``).

Data (default ``--placement tile``): every training row is ``<bos>`` + a segment of ``L`` distinct
random tokens repeated until the row is full (like icltest's ``repeated_random`` probe with more
repeats), ``L`` drawn per row from ``--min-length .. --max-length``, so no fixed positional offset
predicts the repeat and only looking back for the current token's earlier copy does. The first
copy is unpredictable (loss stays near ``log V``); the later copies are predictable by induction.
``--placement end|random`` instead put a single repeated pair inside distinct random filler; in
trials (lr 1e-3 to 1e-2, d_model 64 and 128) those stayed on the loss plateau for 1500-3000 steps.
With ``tile``, lr 3e-3 (warm-up 100) lowered the second-copy loss to ~0.3 without any head scoring
above 0.04 on induction (some other mechanism), so the defaults (lr 1e-3, no warm-up) are the
setting that showed the phase change: max induction score 0.03 at step 500, 0.30 at 600, 0.56 at
800, 0.96 at 1500, with the second-copy loss falling from 5.1 to 0.02 over the same steps.

Per checkpoint the script prints the training loss (mean over the last ``--every`` steps), the
held-out loss on the second copy (fixed evaluation batch, the first token of the copy excluded:
nothing predicts it), and the best induction and previous-token scores measured by icltest itself
(the same probe as ``icltest scan``: ``repeated_random`` length 50, 2 repeats, batch 16, seed 0;
the length shrinks to fit a model with fewer than 101 positions).
A ``metrics.json`` with the same numbers goes into the output folder.

Usage::

    python scripts/train_checkpoints.py OUT [--steps 1500] [--every 50] [--seed 0] [--threads 2] ...

Deterministic for a given seed and torch version (CPU, single process, deterministic algorithms;
``--threads`` fixes the intra-op thread count, default 2; 1 and 2 threads gave identical numbers).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

# Runnable as ``python scripts/train_checkpoints.py`` from a checkout without installing icltest.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("out", help="output folder; checkpoints go to OUT/step_NNNNNN")
    p.add_argument("--steps", type=int, default=1500, help="training steps")
    p.add_argument("--every", type=int, default=50, help="save a checkpoint every N steps (and at 0)")
    p.add_argument("--save-steps", help="explicit comma-separated checkpoint steps (overrides --every)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab", type=int, default=256, help="vocabulary size including <bos>")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--positions", type=int, default=101, help="n_positions (icltest's default probe needs 101)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=0, help="linear learning-rate warm-up steps")
    p.add_argument("--min-length", type=int, default=8, help="shortest repeated segment")
    p.add_argument("--max-length", type=int, default=50, help="longest repeated segment")
    p.add_argument("--placement", default="tile", choices=("tile", "end", "random"),
                   help="tile: the segment repeated to fill the row; end/random: one repeated pair in filler")
    p.add_argument("--seq-len", type=int, default=0, help="training sequence length incl. <bos> (0: --positions)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--no-scan", action="store_true", help="skip the icltest induction scan per checkpoint")
    p.add_argument("--quiet", action="store_true", help="print only the final table")
    args = p.parse_args(argv)
    if args.max_length < args.min_length or args.min_length < 2:
        p.error("need 2 <= --min-length <= --max-length")
    if args.max_length >= args.vocab:
        p.error("--max-length must be below --vocab (segments hold distinct non-BOS tokens)")
    args.seq_len = args.seq_len or args.positions
    if args.seq_len > args.positions:
        p.error("--seq-len exceeds --positions")
    if 1 + 2 * args.max_length > args.seq_len:
        p.error(f"1 + 2 * max-length = {1 + 2 * args.max_length} exceeds the sequence length {args.seq_len}")
    if args.seq_len - 1 - args.max_length > args.vocab - 1:
        p.error("a sequence needs seq_len - 1 - max_length distinct tokens: raise --vocab")
    return args


def checkpoint_steps(args: argparse.Namespace) -> list[int]:
    if args.save_steps:
        steps = sorted({int(s) for s in args.save_steps.split(",") if s.strip()})
        if not steps or steps[0] < 0 or steps[-1] > args.steps:
            raise SystemExit(f"--save-steps must lie in 0..{args.steps}")
        return steps
    return sorted(set(range(0, args.steps + 1, args.every)) | {args.steps})


def build_model(args: argparse.Namespace) -> Any:
    """A GPT-2 whose blocks are attention only: MLP weights zero and frozen, dropout off."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=args.vocab, n_positions=args.positions, n_embd=args.d_model, n_layer=args.layers,
        n_head=args.heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=0, eos_token_id=0, tie_word_embeddings=False,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(args.seed)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for block in model.transformer.h:
            for p in block.mlp.parameters():
                p.zero_()
                p.requires_grad_(False)
            for p in block.ln_2.parameters():  # feeds only the (zero) MLP
                p.requires_grad_(False)
    return model


def make_batch(gen: Any, batch: int, lengths: tuple[int, int], seq_len: int, vocab: int,
               placement: str = "end") -> tuple[Any, Any]:
    """A batch of ``seq_len`` tokens: ``<bos>`` + random filler with one repeated segment inside.

    Each row is a stream of distinct random tokens from ``1..V-1`` in which a segment of ``L`` tokens
    (``L`` drawn per row from ``lengths``) is immediately followed by a copy of itself. With
    ``placement="end"`` the copy ends the row (filler of ``seq_len - 1 - 2L`` tokens first); with
    ``"random"`` the pair starts at a random offset. ``L`` varies per row, so no position predicts
    where the copy starts; only looking back for the current token's earlier copy does (induction).
    Tokens never repeat outside the copy, so "the token after the earlier copy" is unambiguous.

    Returns:
        ``tokens [batch, seq_len]`` and ``second [batch, seq_len]``: True at the copy's tokens 2..L,
        the ones an induction head can predict (the copy's first token has no earlier cue).
    """
    import torch

    lo, hi = lengths
    tokens = torch.zeros(batch, seq_len, dtype=torch.long)
    second = torch.zeros(batch, seq_len, dtype=torch.bool)
    perm = torch.argsort(torch.rand(batch, vocab - 1, generator=gen), dim=1) + 1
    ls = torch.randint(lo, hi + 1, (batch,), generator=gen).tolist()
    starts = torch.rand(batch, generator=gen).tolist()
    for row in range(batch):
        length = ls[row]
        n = seq_len - 1 - length  # distinct tokens in this row
        if placement == "tile":
            seg = perm[row, :length]
            tokens[row, 1:] = seg.repeat(-(-(seq_len - 1) // length))[: seq_len - 1]
            second[row, 1 + length + 1: 1 + 2 * length] = True
            continue
        s = n - length if placement == "end" else int(starts[row] * (n - length + 1))
        stream = perm[row, :n]
        tokens[row, 1:] = torch.cat([stream[: s + length], stream[s: s + length], stream[s + length:]])
        second[row, 1 + s + length + 1: 1 + s + 2 * length] = True
    return tokens, second


def second_copy_loss(model: Any, tokens: Any, second: Any) -> float:
    """Mean next-token loss on the second copy's tokens 2..L (``second`` marks them)."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        logits = model(input_ids=tokens).logits
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    return float(losses[second[:, 1:]].mean())


def scan_probe(positions: int) -> dict[str, Any]:
    """``icltest scan``'s default probe, its segment shortened only if the model has fewer positions."""
    return {"kind": "repeated_random", "length": min(50, (positions - 1) // 2), "repeats": 2, "batch": 16, "seed": 0}


def icltest_scores(folder: Path, probe: dict[str, Any]) -> dict[str, Any]:
    """Best induction / previous-token head of a saved checkpoint, measured by icltest's own scan."""
    from icltest.models.loading import ModelSource
    from icltest.schema.spec import ProbeSpec
    from icltest.scores.ranking import top_heads
    from icltest.session import Session

    session = Session()
    loaded = session.model(ModelSource(path=str(folder)))
    run = session.pattern_run(loaded, ProbeSpec(**probe))
    out: dict[str, Any] = {}
    for name in ("induction", "previous_token"):
        layer, head, value = top_heads(run.scores[name], 1)[0]
        out[name] = {"head": f"L{layer}H{head}", "value": round(float(value), 4)}
    _forget(loaded.source)
    return out


def _forget(source: Any) -> None:
    """Drop a checkpoint from icltest's process-wide model cache (a series would otherwise pile up)."""
    from icltest import session as session_mod

    cache = getattr(session_mod, "_LOADED", None)
    if isinstance(cache, dict):
        cache.pop(source, None)


def _quiet_libraries() -> None:
    """No per-file progress bars from transformers / huggingface_hub while saving and loading."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except Exception:  # noqa: BLE001 - cosmetic only
        pass


def save(model: Any, tokenizer: Any, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def train(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch
    import torch.nn.functional as F

    from icltest.testing.known_circuit import build_tokenizer

    torch.set_num_threads(args.threads)
    _quiet_libraries()
    torch.use_deterministic_algorithms(True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(args)
    tokenizer = build_tokenizer(args.vocab)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(args.seed)
    eval_gen = torch.Generator().manual_seed(10_000 + args.seed)
    eval_batches = [make_batch(eval_gen, 64, (args.min_length, args.max_length), args.seq_len, args.vocab,
                               args.placement)]
    save_at = checkpoint_steps(args)
    rows: list[dict[str, Any]] = []
    recent: list[float] = []
    t0 = time.perf_counter()
    train_seconds = 0.0

    def checkpoint(step: int) -> None:
        folder = out / f"step_{step:06d}"
        model.eval()
        save(model, tokenizer, folder)
        row: dict[str, Any] = {
            "step": step,
            "folder": folder.name,
            "train_loss": round(sum(recent) / len(recent), 4) if recent else None,
            "second_copy_loss": round(sum(second_copy_loss(model, t, m) for t, m in eval_batches) / len(eval_batches), 4),
        }
        if not args.no_scan:
            row.update(icltest_scores(folder, scan_probe(args.positions)))
        rows.append(row)
        model.train()
        recent.clear()
        if not args.quiet:
            print(format_row(row), flush=True)

    if not args.quiet:
        print(header(), flush=True)
    if 0 in save_at:
        checkpoint(0)
    model.train()
    for step in range(1, args.steps + 1):
        ts = time.perf_counter()
        tokens, _ = make_batch(gen, args.batch, (args.min_length, args.max_length), args.seq_len, args.vocab,
                               args.placement)
        if args.warmup:
            for group in opt.param_groups:
                group["lr"] = args.lr * min(1.0, step / args.warmup)
        logits = model(input_ids=tokens).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, args.vocab), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        recent.append(float(loss.detach()))
        train_seconds += time.perf_counter() - ts
        if step in save_at:
            checkpoint(step)
    total = time.perf_counter() - t0
    meta = {
        "args": {k: v for k, v in vars(args).items() if k not in ("quiet",)},
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(total, 1),
        "log_vocab": round(math.log(args.vocab - 1), 4),
        "probe": scan_probe(args.positions),
        "checkpoints": rows,
    }
    (out / "metrics.json").write_text(json.dumps(meta, indent=2) + "\n")
    if not args.quiet:
        print(f"trained {args.steps} steps in {train_seconds:.1f} s (total with saving and scans {total:.1f} s); "
              f"wrote {out / 'metrics.json'}", flush=True)
    else:
        print(header())
        for row in rows:
            print(format_row(row))
    return rows


def header() -> str:
    return (f"{'step':>6} {'train_loss':>10} {'2nd_copy':>9} {'induction':>9} {'head':>5} "
            f"{'prev_tok':>8} {'head':>5}")


def format_row(row: dict[str, Any]) -> str:
    tl = f"{row['train_loss']:.3f}" if row["train_loss"] is not None else "-"
    ind = row.get("induction", {"value": float("nan"), "head": "-"})
    prv = row.get("previous_token", {"value": float("nan"), "head": "-"})
    return (f"{row['step']:>6} {tl:>10} {row['second_copy_loss']:>9.3f} {ind['value']:>9.3f} {ind['head']:>5} "
            f"{prv['value']:>8.3f} {prv['head']:>5}")


def main(argv: list[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
