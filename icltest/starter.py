"""A starter spec from a scan: ``icltest scan --model M --write-spec specs/m.yaml``.

The pattern scan runs at several probe seeds; every threshold in the written spec comes from those
measurements and sits a margin beyond the worst of them, so the spec passes when run (it uses the
first seed's probe) and fails when the model changes by more than the seeds' own spread.

Per score (induction, previous_token, duplicate_token, prefix_matching):

- **head claims** (``head_score`` on one listed head each): at most ``--spec-top`` heads, highest
  mean over seeds first, kept when their bound ``min over seeds - margin`` (rounded down to 0.01)
  is at least the head floor (0.2): a head that keeps a fifth of its attention on the score's
  targets at every seed, after the margin, stands out from chance (uniform attention over a
  100-token probe puts ~0.01-0.05 on them);
- **rank claim** (``head_rank``): the strongest kept head ranks ``<= r`` at every seed, where ``r``
  counts the heads within one margin of it as tied (so a runner-up that came within the margin at
  some seed loosens ``r``); written when ``r`` is at most the number of kept heads;
- **model-agnostic claim** (``heads: {top: k}``): the ``k`` best heads, whichever they are, reach
  ``min over seeds of the k-th best value - margin``;
- **population claims** for every other head: each run of consecutive layers without a kept head,
  and the other heads of each kept head's layer, stay below ``max over seeds of their maximum +
  margin`` (rounded up to 0.01); written only when that bound is below 1 (scores never exceed 1,
  so a bound at 1 could not fail) and below every kept head's bound (otherwise the claim would not
  separate the kept heads from the rest).

Margin of a set of per-seed values: ``max(3 x their sample standard deviation, floor (0.02,
--margin), 10% of the value the bound starts from)``. A claim that could not fail (a lower bound at
or below 0, an upper bound at or above 1, a rank bound covering every head) is never written: the
spec carries a comment saying what was skipped and why.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

SD_FACTOR = 3.0
"""Margin term: this many sample standard deviations of the per-seed values."""
MARGIN_FLOOR = 0.02
"""Margin term: never less than this (score units); ``--margin`` sets it."""
RELATIVE = 0.10
"""Margin term: this fraction of the value the bound starts from (min for lower, max for upper bounds)."""
HEAD_FLOOR = 0.2
"""A head is kept for a head claim when its bound (min over seeds - margin) is at least this."""
DEFAULT_TOP = 3


# ----------------------------------------------------------------------------- margins and bounds


def _round_down(x: float) -> float:
    """Down to 0.01; the inner rounding removes float noise (0.29 * 100 = 28.999...)."""
    return math.floor(round(x * 100, 6)) / 100


def _round_up(x: float) -> float:
    return math.ceil(round(x * 100, 6)) / 100


@dataclass(frozen=True)
class Bound:
    """A threshold derived from per-seed values, with the numbers a YAML comment states."""

    values: tuple[float, ...]
    sd: float
    margin: float
    term: str
    start: float
    raw: float
    bound: float
    direction: str  # "lower" (value >= bound) or "upper" (value < bound)

    def explain(self, floor: float) -> str:
        sign = "-" if self.direction == "lower" else "+"
        which = "min" if self.direction == "lower" else "max"
        parts = {"sd": f"{SD_FACTOR:g} sd = {SD_FACTOR * self.sd:.3f}", "floor": f"floor {floor:g}",
                 "relative": f"{RELATIVE:.0%} of {self.start:.3f} = {RELATIVE * abs(self.start):.3f}"}
        others = ", ".join(v for k, v in parts.items() if k != self.term)
        rounding = "down" if self.direction == "lower" else "up"
        return (f"margin {self.margin:.3f} ({parts[self.term]}; {others}); bound {which} {self.start:.3f} "
                f"{sign} {self.margin:.3f} = {self.raw:.3f}, rounded {rounding}: {_num(self.bound)}")


def margin_of(values: Sequence[float], start: float, floor: float = MARGIN_FLOOR) -> tuple[float, float, str]:
    """``(margin, sd, winning term)``: max(3 x sample sd of ``values``, ``floor``, 10% of ``|start|``).

    One value has no spread (sd 0), so the floor and the relative term decide.
    """
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    terms = {"sd": SD_FACTOR * sd, "floor": floor, "relative": RELATIVE * abs(start)}
    term = max(terms, key=lambda k: terms[k])
    return terms[term], sd, term


def lower_bound(values: Sequence[float], floor: float = MARGIN_FLOOR) -> Bound:
    """``value >= bound`` holds at every seed: min(values) - margin, rounded down to 0.01."""
    start = min(values)
    margin, sd, term = margin_of(values, start, floor)
    raw = start - margin
    return Bound(tuple(values), sd, margin, term, start, raw, _round_down(raw), "lower")


def upper_bound(values: Sequence[float], floor: float = MARGIN_FLOOR) -> Bound:
    """``value < bound`` holds at every seed: max(values) + margin, rounded up to 0.01."""
    start = max(values)
    margin, sd, term = margin_of(values, start, floor)
    raw = start + margin
    return Bound(tuple(values), sd, margin, term, start, raw, _round_up(raw), "upper")


def _num(x: float) -> str:
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _vals(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.3f}" for v in values)


# ----------------------------------------------------------------------------- the spec


@dataclass
class Claim:
    """One claim to write, with what the self-check needs to evaluate it on a table."""

    id: str
    kind: str  # head_score | head_rank
    score: str
    comment: list[str]
    heads: Any  # [(l, h)] | {"top": k} | {"layers": [..], "heads": [..] | None}
    op: str
    bound: float
    marks: list[str]

    def yaml(self) -> list[str]:
        lines = [f"  # {c}" for c in self.comment]
        lines += [f"  - id: {self.id}", f"    kind: {self.kind}", f"    score: {self.score}"]
        if self.kind == "head_rank":
            (layer, head), = self.heads
            lines += [f"    head: {layer}.{head}", f'    expect: {{rank: "{self.op} {int(self.bound)}"}}']
        else:
            lines += [f"    heads: {_heads_yaml(self.heads)}", f'    expect: "{self.op} {_num(self.bound)}"']
        lines.append(f"    marks: [{', '.join(self.marks)}]")
        return lines


def _heads_yaml(heads: Any) -> str:
    if isinstance(heads, list):
        return "[" + ", ".join(f"{l}.{h}" for l, h in heads) + "]"
    if "top" in heads:
        return f"{{top: {heads['top']}, by: {heads['by']}}}"
    text = f'{{layers: "{_layers_text(heads["layers"])}"'
    if heads.get("heads") is not None:
        text += f", heads: [{', '.join(map(str, heads['heads']))}]"
    return text + "}"


def _layers_text(layers: Sequence[int]) -> str:
    layers = list(layers)
    return f"{layers[0]}-{layers[-1]}" if len(layers) > 1 else str(layers[0])


def _runs(layers: Sequence[int]) -> list[list[int]]:
    """Consecutive runs: [0, 1, 2, 5, 6] -> [[0, 1, 2], [5, 6]]."""
    out: list[list[int]] = []
    for layer in layers:
        if out and out[-1][-1] == layer - 1:
            out[-1].append(layer)
        else:
            out.append([layer])
    return out


@dataclass
class Section:
    score: str
    claims: list[Claim] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # skipped claims and why

    def yaml(self) -> list[str]:
        lines = [f"  # {'-' * 20} {self.score}"]
        lines += [f"  # {n}" for n in self.notes]
        for claim in self.claims:
            lines += claim.yaml()
        return lines


def _name(l: int, h: int) -> str:
    return f"L{l}H{h}"


def _value(table: Any, l: int, h: int) -> float:
    return float(table[l][h])


def _max_of(table: Any, heads: Sequence[tuple[int, int]]) -> tuple[float, tuple[int, int]]:
    best = max(heads, key=lambda p: _value(table, *p))
    return _value(table, *best), best


def score_section(score: str, tables: Sequence[Any], seeds: Sequence[int], top: int = DEFAULT_TOP,
                  floor: float = MARGIN_FLOOR, head_floor: float = HEAD_FLOOR) -> Section:
    """The claims for one score from its per-seed ``[layers, heads]`` tables (nested lists or tensors)."""
    tables = [[[float(v) for v in row] for row in t] for t in tables]
    n_layers, n_heads = len(tables[0]), len(tables[0][0])
    total = n_layers * n_heads
    seeds_text = " / ".join(map(str, seeds))
    section = Section(score)
    all_heads = [(l, h) for l in range(n_layers) for h in range(n_heads)]
    nan_heads = {p for p in all_heads if any(math.isnan(_value(t, *p)) for t in tables)}
    if nan_heads:
        shown = ", ".join(_name(*p) for p in sorted(nan_heads)[:8])
        section.notes.append(f"heads with no {score} measurement (NaN) at some seed, left out of every claim: {shown}"
                             + (" ..." if len(nan_heads) > 8 else ""))
    usable = [p for p in all_heads if p not in nan_heads]
    if not usable:
        section.notes.append(f"skipped: no head has a {score} value at every seed")
        return section

    mean = {p: statistics.fmean(_value(t, *p) for t in tables) for p in usable}
    ranked = sorted(usable, key=lambda p: (-mean[p], p))

    # (a) head claims -------------------------------------------------------------------------
    kept: list[tuple[tuple[int, int], Bound]] = []
    dropped = []
    for p in ranked[:top]:
        b = lower_bound([_value(t, *p) for t in tables], floor)
        if b.bound >= head_floor:
            kept.append((p, b))
        else:
            dropped.append(f"{_name(*p)} {_vals(b.values)} (bound {_num(b.bound)})")
    if dropped:
        section.notes.append(f"not kept, bound below the head floor {head_floor:g} (values at seeds {seeds_text}): "
                             + "; ".join(dropped))
    if not kept:
        section.notes.append(f"no head claim, no rank claim, no top-k claim: no head's bound reaches the head floor "
                             f"{head_floor:g}, so no head stands out on {score}")
    for p, b in kept:
        section.claims.append(Claim(
            id=f"{score}-{_name(*p)}", kind="head_score", score=score,
            comment=[f"{_name(*p)} {score} at seeds {seeds_text}: {_vals(b.values)} (mean {mean[p]:.3f}, rank "
                     f"{ranked.index(p) + 1} by mean)", b.explain(floor)],
            heads=[p], op=">=", bound=b.bound, marks=[score]))
    kept_heads = [p for p, _ in kept]
    lowest_kept = min((b.bound for _, b in kept), default=None)

    # (b) rank claim: the strongest kept head, ties within its margin counted against it ----------
    if kept:
        p, b = kept[0]
        ranks, tolerant = [], []
        for t in tables:
            v = _value(t, *p)
            others = [_value(t, *q) for q in usable if q != p]
            ranks.append(1 + sum(o > v for o in others))
            tolerant.append(1 + sum(o >= v - b.margin for o in others))
        r = max(tolerant)
        text = (f"{_name(*p)} ranks {' / '.join(map(str, ranks))} of {total} by {score} at seeds {seeds_text}; "
                f"counting every head within its margin ({b.margin:.3f}) as tied: {' / '.join(map(str, tolerant))}")
        if r <= len(kept) and r < total:
            section.claims.append(Claim(
                id=f"{score}-{_name(*p)}-rank", kind="head_rank", score=score,
                comment=[text, f"bound: the largest of those, rank <= {r} (at most the {_count(len(kept), 'kept head')})"],
                heads=[p], op="<=", bound=r, marks=[score, "rank"]))
        else:
            section.notes.append(f"no rank claim: {text}; {r} is more than the {_count(len(kept), 'kept head')}, so "
                                 f"{_name(*p)} does not lead clearly")

    # (c1) model-agnostic top-k -----------------------------------------------------------------
    if kept:
        k = len(kept)
        kth = []
        for t in tables:
            order = sorted(usable, key=lambda q: (-_value(t, *q), q))
            kth.append((_value(t, *order[k - 1]), order[k - 1]))
        b = lower_bound([v for v, _ in kth], floor)
        who = " / ".join(_name(*q) for _, q in kth)
        if b.bound > 0:
            section.claims.append(Claim(
                id=f"{score}-top{k}", kind="head_score", score=score,
                comment=[f"model-agnostic: the {_count(k, 'best head')} by {score}, whichever they are; the {_ordinal(k)} best "
                         f"at seeds {seeds_text}: {_vals(b.values)} ({who})", b.explain(floor)],
                heads={"top": k, "by": score}, op=">=", bound=b.bound, marks=[score, "population"]))
        else:
            section.notes.append(f"no top-{k} claim: the {_ordinal(k)} best {_vals(b.values)} gives bound "
                                 f"{_num(b.bound)}, which every head meets")

    # (c2) population claims for every other head -------------------------------------------------
    kept_layers = sorted({l for l, _ in kept_heads})
    groups: list[tuple[str, str, dict[str, Any], list[tuple[int, int]]]] = []
    for run in _runs([l for l in range(n_layers) if l not in kept_layers]):
        heads = [(l, h) for l in run for h in range(n_heads)]
        groups.append((f"{score}-layers{_layers_text(run)}-below",
                       f"every head in layer{'s' if len(run) > 1 else ''} {_layers_text(run)}",
                       {"layers": run, "heads": None}, heads))
    for layer in kept_layers:
        others = [h for h in range(n_heads) if (layer, h) not in kept_heads]
        if others:
            groups.append((f"{score}-L{layer}-others-below",
                           f"the other heads of layer {layer} (besides " +
                           ", ".join(_name(*p) for p in kept_heads if p[0] == layer) + ")",
                           {"layers": [layer], "heads": others}, [(layer, h) for h in others]))
    for claim_id, what, selection, heads in groups:
        bad = [p for p in heads if p in nan_heads]
        if bad:
            section.notes.append(f"no claim on {what}: it includes heads without a value ({', '.join(_name(*p) for p in bad[:4])})")
            continue
        maxima = [_max_of(t, heads) for t in tables]
        b = upper_bound([v for v, _ in maxima], floor)
        who = " / ".join(_name(*q) for _, q in maxima)
        text = f"{what} ({len(heads)} heads): max {score} at seeds {seeds_text}: {_vals(b.values)} ({who})"
        if b.bound >= 1:
            section.notes.append(f"no claim on {text}: its bound {_num(b.bound)} is at or above 1, which no score exceeds")
        elif lowest_kept is not None and b.bound >= lowest_kept:
            section.notes.append(f"no claim on {text}: its bound {_num(b.bound)} is not below the kept heads' lowest "
                                 f"bound {_num(lowest_kept)}, so it would not separate them from the rest")
        else:
            section.claims.append(Claim(
                id=claim_id, kind="head_score", score=score, comment=[text + ", stays below", b.explain(floor)],
                heads=selection, op="<", bound=b.bound, marks=[score, "population"]))
    return section


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _ordinal(k: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(k, f"{k}th")


def _same_tables(a: Sequence[Any], b: Sequence[Any], tol: float = 1e-6) -> bool:
    for ta, tb in zip(a, b):
        for ra, rb in zip(ta, tb):
            for x, y in zip(ra, rb):
                x, y = float(x), float(y)
                if not (abs(x - y) <= tol or (math.isnan(x) and math.isnan(y))):
                    return False
    return True


@dataclass
class Starter:
    """The written spec: text plus the claims (for the self-check and the summary)."""

    text: str
    sections: list[Section]

    @property
    def claims(self) -> list[Claim]:
        return [c for s in self.sections for c in s.claims]


def build_starter(model: Any, probe: dict[str, Any], seeds: Sequence[int], tables: dict[str, Sequence[Any]],
                  scores: Sequence[str], header: Sequence[str] = (), top: int = DEFAULT_TOP,
                  floor: float = MARGIN_FLOOR, head_floor: float = HEAD_FLOOR) -> Starter:
    """The spec text for per-seed score tables (``tables[score][i]`` measured at ``seeds[i]``).

    ``model`` is what ``model:`` holds (a string or a mapping), ``probe`` the probe fields at the
    first seed (``defaults.probe``).
    """
    sections = []
    for score in scores:
        if score == "prefix_matching" and "induction" in scores and _same_tables(tables[score], tables["induction"]):
            section = Section(score, notes=[
                "skipped: prefix_matching equals induction at every seed (with 2 repeats a token has one earlier "
                "copy, so the two scores coincide); scan with --repeats 3 or more to separate them"])
        else:
            section = score_section(score, tables[score], seeds, top, floor, head_floor)
        sections.append(section)
    lines = [f"# {h}" if h else "#" for h in header]
    lines += ["schema_version: 1", f"model: {_yaml_value(model)}", "defaults:",
              f"  probe: {_yaml_value(probe)}", "claims:"]
    for section in sections:
        lines += section.yaml()
    return Starter("\n".join(lines) + "\n", sections)


def _yaml_value(value: Any) -> str:
    """A flow-style YAML scalar or mapping; strings that are not plain words are JSON-quoted."""
    import json
    import re

    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool) or value is None:
        raise TypeError(f"no YAML form for {value!r} here")
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-/]*", text) and text.lower() not in ("yes", "no", "true", "false",
                                                                                        "on", "off", "null", "y", "n")
    return text if plain else json.dumps(text)


# ----------------------------------------------------------------------------- self-check


def check_starter(starter: Starter, tables: dict[str, Sequence[Any]], seeds: Sequence[int]) -> list[str]:
    """Evaluate every written claim on every seed's tables as the claim kinds do; return failures.

    The bounds are built to hold at every scanned seed; a failure here is a bug in this module.
    """
    import torch

    from icltest.schema.expect import parse_comparison
    from icltest.scores.ranking import rank_of, top_heads

    problems = []
    for claim in starter.claims:
        expect = parse_comparison(f"{claim.op} {claim.bound}")
        for seed, raw in zip(seeds, tables[claim.score]):
            table = torch.as_tensor([[float(v) for v in row] for row in raw])
            if claim.kind == "head_rank":
                values = [float(rank_of(table, *claim.heads[0]))]
            elif isinstance(claim.heads, list):
                values = [float(table[l, h]) for l, h in claim.heads]
            elif "top" in claim.heads:
                values = [v for _, _, v in top_heads(table, claim.heads["top"])]
            else:
                hs = claim.heads["heads"] if claim.heads["heads"] is not None else range(table.shape[1])
                values = [float(table[l, h]) for l in claim.heads["layers"] for h in hs]
            bad = [v for v in values if not expect.check(v)]
            if bad:
                problems.append(f"{claim.id} at seed {seed}: {bad[:3]} do not meet {expect}")
    return problems


# ----------------------------------------------------------------------------- command line


class UsageProblem(Exception):
    """A bad option value: one line, exit 2."""


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise UsageProblem(f"--spec-seeds {text!r}: give distinct non-negative integers separated by commas, e.g. 0,1,2")
        seeds.append(int(part))
    if len(set(seeds)) != len(seeds):
        raise UsageProblem(f"--spec-seeds {text!r}: a seed is repeated; repeated seeds measure the same probe twice")
    return seeds


def model_entry(args: argparse.Namespace, spec_path: Path, info: dict[str, Any] | None = None) -> Any:
    """What ``model:`` holds: the alias, hub id or folder the user gave, as a spec names it.

    A relative folder is rewritten relative to the spec's own folder (the loader resolves it from
    there), unless the two share no folder but the root; an absolute one stays absolute. A hub id
    is pinned to the revision that was scanned: ``info`` (the loaded model's facts) gives the
    resolved commit, so a later push to the repository (or a moved branch or tag) cannot change
    what the spec's thresholds were measured on; without a known commit, ``--revision`` as given.
    """
    from icltest.models.aliases import ALIASES

    extra = {}
    if args.dtype != "float32":
        extra["dtype"] = args.dtype
    if args.device != "cpu":
        extra["device"] = args.device
    folder = args.path or (args.model if args.model not in ALIASES and args.model and Path(args.model).is_dir() else None)
    if folder:
        # abspath, not resolve: a symlinked folder stays the name the user gave
        absolute, spec_dir = os.path.abspath(os.path.expanduser(folder)), os.path.dirname(os.path.abspath(spec_path))
        if Path(folder).expanduser().is_absolute() or os.path.commonpath([absolute, spec_dir]) == os.sep:
            where = absolute  # given absolute, or nothing in common with the spec's folder but the root
        else:
            where = os.path.relpath(absolute, spec_dir)
        entry: dict[str, Any] = {"path": where}
        if args.gguf_file:
            entry["gguf_file"] = args.gguf_file
        return entry | extra
    if args.model in ALIASES:
        return {"alias": args.model} | extra if extra else args.model
    entry = {"id": args.model}
    revision = pinned_revision(info or {}) or args.revision
    if revision:
        entry["revision"] = revision
    if args.gguf_file:
        entry["gguf_file"] = args.gguf_file
    return entry | extra


def pinned_revision(info: dict[str, Any]) -> str | None:
    """The hub commit a loaded model came from: ``info["commit"]``, else a ``revision`` that is a
    commit hash (40 hex digits); None when unknown (a branch or tag name pins nothing)."""
    import re

    for value in (info.get("commit"), info.get("revision")):
        if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{40}", value):
            return value
    return None


def _command_line(args: argparse.Namespace, seeds: Sequence[int], scores: Sequence[str]) -> str:
    parts = ["icltest scan"]
    parts.append(f"--path {args.path}" if args.path else f"--model {args.model}")
    for flag, value, default in (("--gguf-file", args.gguf_file, None), ("--revision", args.revision, None),
                                 ("--dtype", args.dtype, "float32"), ("--device", args.device, "cpu"),
                                 ("--length", args.length, 50), ("--repeats", args.repeats, 2),
                                 ("--batch", args.batch, 16), ("--bos", args.bos, "auto")):
        if value != default:
            parts.append(f"{flag} {value}")
    if list(scores) != ["induction", "previous_token", "duplicate_token", "prefix_matching"]:
        parts.append(f"--scores {','.join(scores)}")
    parts.append(f"--spec-seeds {','.join(map(str, seeds))}")
    if args.spec_top != DEFAULT_TOP:
        parts.append(f"--spec-top {args.spec_top}")
    if args.margin != MARGIN_FLOOR:
        parts.append(f"--margin {args.margin:g}")
    parts.append(f"--write-spec {args.write_spec}")
    return " ".join(parts)


def cmd_write_spec(args: argparse.Namespace, scores: Sequence[str]) -> int:
    """``icltest scan ... --write-spec PATH``: scan at each seed, write the starter spec, say how to run it."""
    try:
        return _write_spec(args, scores)
    except UsageProblem as exc:
        print(f"icltest scan: {exc}", file=sys.stderr)
        return 2


def _write_spec(args: argparse.Namespace, scores: Sequence[str]) -> int:
    from pydantic import ValidationError

    from icltest.cli import _model_source, _one_line
    from icltest.errors import IcltestError
    from icltest.schema.spec import ProbeSpec
    from icltest.session import Session

    path = Path(args.write_spec)
    for flag in ("ablate", "attribute"):
        if getattr(args, flag, False):
            raise UsageProblem(f"--write-spec writes pattern-score claims only; run --{flag} as a separate scan")
    if getattr(args, "seed", 0):
        raise UsageProblem(f"--write-spec scans at --spec-seeds (the spec runs the first), not --seed {args.seed}; "
                           f"write --spec-seeds {args.seed},...")
    if getattr(args, "json", None):
        raise UsageProblem("--write-spec and --json: the spec's comments carry every measured value; "
                           "run a plain scan for the JSON tables")
    if path.is_dir():
        raise UsageProblem(f"--write-spec {path}: is a folder; give a file name such as {path / 'model.yaml'}")
    if path.exists() and not args.force:
        raise UsageProblem(f"--write-spec {path}: the file exists; pass --force to overwrite it")
    seeds = parse_seeds(args.spec_seeds)
    if args.spec_top < 1:
        raise UsageProblem(f"--spec-top {args.spec_top}: keep at least 1 head per score")
    if not 0 < args.margin < 1:
        raise UsageProblem(f"--margin {args.margin:g}: the margin floor must be above 0 and below 1 (score units)")
    try:
        probes = [ProbeSpec(length=args.length, repeats=args.repeats, batch=args.batch, seed=s, bos=args.bos)
                  for s in seeds]
    except ValidationError as exc:
        raise UsageProblem(f"probe options: {_one_line(exc)}") from None

    session = Session(cache_dir=Path(args.cache) if args.cache else None, progress=not args.quiet)
    try:
        loaded = session.model(_model_source(args))
    except IcltestError as exc:
        raise UsageProblem(str(exc)) from None
    info = loaded.info
    print(f"model {info['name']}: {info['architecture']}, {info['n_layers']} layers x {info['n_heads']} heads "
          f"({info['n_kv_heads']} kv), loaded in {info['load_seconds']} s", file=sys.stderr)
    starter = write_starter(session, loaded, model_entry(args, path, info), path, probes, scores, args.spec_top,
                            args.margin, _command_line(args, seeds, scores))
    for section in starter.sections:
        kept = [c.id for c in section.claims]
        print(f"{section.score}: {len(kept)} claim(s)" + (f", {len(section.notes)} note(s) on skipped claims"
                                                           if section.notes else ""), file=sys.stderr)
    print(f"wrote {path} ({len(starter.claims)} claims from seeds {', '.join(map(str, seeds))})")
    print(f"run it: pytest {path}")
    return 0


def write_starter(session: Any, loaded: Any, model: Any, path: Path, probes: Sequence[Any],
                  scores: Sequence[str] = ("induction", "previous_token", "duplicate_token", "prefix_matching"),
                  top: int = DEFAULT_TOP, floor: float = MARGIN_FLOOR, command: str | None = None) -> Starter:
    """Scan ``loaded`` at each probe (same probe, one seed each), build the spec, check it, write it atomically.

    ``model`` is what ``model:`` holds; the first probe is the spec's ``defaults.probe``.

    Raises:
        UsageProblem: a probe the model cannot serve, or no claim that could fail.
        RuntimeError: the spec fails its own scan or does not validate (a bug here).
    """
    from icltest.errors import IcltestError
    from icltest.report.files import write_atomic

    path = Path(path)
    seeds = [int(p.seed) for p in probes]
    info = loaded.info
    tables: dict[str, list[Any]] = {s: [] for s in scores}
    labels = []
    for probe in probes:
        try:
            run = session.pattern_run(loaded, probe)
        except IcltestError as exc:
            raise UsageProblem(f"probe options: {exc}") from None
        labels.append(run.probe.label)
        print(f"seed {probe.seed}: probe {run.probe.label}, forward {run.seconds} s", file=sys.stderr)
        for s in scores:
            tables[s].append(run.scores[s].detach().cpu().tolist())

    fields = probes[0].model_dump()
    probe_fields = {k: fields[k] for k in ("kind", "length", "repeats", "batch", "seed", "bos")}
    seeds_text = ", ".join(map(str, seeds))
    header = [
        f"Starter spec for {info['name']} ({info['architecture']}, {info['n_layers']} layers x {info['n_heads']} "
        "heads), written by",
        f"  {command or 'icltest.starter.write_starter'}",
        f"Measured with the probe below at seeds {seeds_text} ({labels[0]} at seed {seeds[0]}); the spec runs "
        f"seed {seeds[0]}.",
        "Each claim's comment gives the per-seed values (in seed order) and how its bound was set:",
        f"  margin = max({SD_FACTOR:g} x sample sd over seeds, floor {floor:g}, {RELATIVE:.0%} of the value the "
        "bound starts from);",
        f"  head claims: up to {top} heads per score, highest mean first, whose bound min - margin (rounded "
        f"down to 0.01) is at least {HEAD_FLOOR:g};",
        "  rank: the strongest kept head's rank, counting heads within its margin as tied, at the worst seed;",
        "  top-k: the k-th best value (any heads) at the worst seed minus its margin;",
        "  population (the other heads, by runs of layers without kept heads and per kept head's layer): max + margin,",
        "  rounded up; written only when below 1 and below the kept heads' bounds.",
        "A claim that could not fail is not written; a comment says what was skipped and why.",
        "These are measurements, not yet explanations: review the heads before gating a release on them.",
        f"Run: pytest {path}",
        "",
    ]
    starter = build_starter(model, probe_fields, seeds, tables, scores, header, top, floor, HEAD_FLOOR)
    if not starter.claims:
        notes = "; ".join(n for sec in starter.sections for n in sec.notes)
        raise UsageProblem(f"--write-spec {path}: no claim could be written that is able to fail ({notes})")
    problems = check_starter(starter, tables, seeds)
    if problems:
        raise RuntimeError("icltest bug: the starter spec's own claims fail on the scan they came from: "
                           + "; ".join(problems))
    validate_text(starter.text, path)
    write_atomic(path, starter.text)
    return starter


def validate_text(text: str, path: Path) -> None:
    """Load the text with icltest's own loader (a copy under the same name in a temp folder).

    Raises RuntimeError: the written spec does not validate, a bug in this module.
    """
    from icltest.schema import SpecError, load_spec

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        copy.write_text(text, encoding="utf-8")
        try:
            loaded = load_spec(copy)
        except SpecError as exc:
            raise RuntimeError(f"icltest bug: the starter spec does not validate:\n{exc}") from None
    if not loaded.spec.claims:
        raise RuntimeError("icltest bug: the starter spec has no claims")
