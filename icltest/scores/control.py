"""Random-head controls: is ablating *these* heads special, or does ablating any heads hurt?

"Ablating the induction heads raises loss by 3 nats" means little if ablating as many random heads
raises it by 2.5. A claim therefore compares its target effect with the effects of N seeded draws
of as many other heads, and reports where the target falls among them as statistics a verdict can
rest on: a permutation p-value (the smallest is 1 / (N + 1), so p <= 0.05 needs N >= 19) and a
z-score. A ratio to the mean control effect is reported only when that mean is clearly not zero:
as the mean nears 0 the ratio explodes (controls [1, -1] would give infinity) and says nothing.

Rules every statistic follows: NaN anywhere in (target, draws) gives NaN, and NaN never passes a
comparison, so missing evidence can never look like strong evidence.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import Any, Iterable, Sequence

import torch

from icltest.errors import InputError

Head = tuple[int, int]


def draw_random_heads(
    n_layers: int,
    n_heads: int,
    count: int,
    exclude: Iterable[Head] = (),
    draws: int = 1,
    seed: int = 0,
) -> list[list[Head]]:
    """Seeded draws of ``count`` distinct heads, none of them in ``exclude``.

    Args:
        n_layers, n_heads: the model's head grid.
        count: heads per draw (normally the number of target heads).
        exclude: heads never drawn (normally the targets themselves).
        draws: number of independent draws.
        seed: the same seed always gives the same draws, so a failing control replays exactly.

    Returns:
        ``draws`` lists, each sorted by (layer, head).

    Raises:
        ValueError: non-positive geometry or negative count/draws (a caller's bug).
        InputError: count > available heads (a spec asking for too many).
    """
    if n_layers < 1 or n_heads < 1:
        raise ValueError(f"need n_layers >= 1 and n_heads >= 1, got {n_layers}, {n_heads}")
    if count < 0 or draws < 0:
        raise ValueError(f"count and draws must be >= 0, got count={count}, draws={draws}")
    excluded = {(int(layer), int(head)) for layer, head in exclude}
    pool = [(l, h) for l in range(n_layers) for h in range(n_heads) if (l, h) not in excluded]
    if count > len(pool):
        raise InputError(
            f"cannot draw {count} random heads: only {len(pool)} of {n_layers * n_heads} heads remain "
            f"after excluding {n_layers * n_heads - len(pool)}; lower count or exclude fewer heads"
        )
    generator = torch.Generator().manual_seed(int(seed))
    out = []
    for _ in range(draws):
        pick = torch.randperm(len(pool), generator=generator)[:count].tolist()
        out.append(sorted(pool[i] for i in pick))
    return out


def draw_layer_matched_heads(
    n_heads: int,
    targets: Sequence[Head],
    draws: int = 1,
    seed: int = 0,
) -> list[list[Head]]:
    """Seeded draws with as many heads from each layer as the targets have there, never a target.

    A late-layer head set compared with random heads from every layer confounds "these heads"
    with "heads in these layers" (later layers often matter more to the loss); matching layers
    asks the sharper question. Each draw takes, for every layer holding ``k`` targets, ``k``
    distinct non-target heads of that layer.

    Raises:
        InputError: a layer has fewer non-target heads than it has targets.
    """
    if n_heads < 1 or draws < 0:
        raise ValueError(f"need n_heads >= 1 and draws >= 0, got {n_heads}, {draws}")
    wanted = Counter(int(layer) for layer, _ in targets)
    taken = {(int(layer), int(head)) for layer, head in targets}
    pools = {layer: [(layer, h) for h in range(n_heads) if (layer, h) not in taken] for layer in sorted(wanted)}
    for layer, pool in pools.items():
        if wanted[layer] > len(pool):
            raise InputError(
                f"match: layers cannot draw {wanted[layer]} random heads from layer {layer}: layer {layer} has "
                f"{len(pool)} head(s) besides the {wanted[layer]} targets there; drop match: layers")
    generator = torch.Generator().manual_seed(int(seed))
    out = []
    for _ in range(draws):
        draw = []
        for layer, pool in pools.items():
            pick = torch.randperm(len(pool), generator=generator)[: wanted[layer]].tolist()
            draw += [pool[i] for i in pick]
        out.append(sorted(draw))
    return out


def random_directions(like: torch.Tensor, draws: int, seed: int) -> torch.Tensor:
    """``draws`` seeded Gaussian directions, each with ``like``'s L2 norm: [draws, d] (float32).

    The control for an injected vector (a function vector, a concept vector): is *this* direction
    special, or does any vector of its size do the same?"""
    g = torch.Generator().manual_seed(int(seed))
    r = torch.randn(draws, like.shape[-1], generator=g)
    return r / r.norm(dim=-1, keepdim=True) * like.float().norm()


RATIO_MIN_SE = 3.0
"""A ratio to the control mean is reported only when |mean| exceeds this many standard errors."""
RESOLUTION = 1e-6
"""Control means below this (relative to max(1, |target|)) are float noise, not an effect."""


def _clean(target_effect: float, control_effects: Sequence[float]) -> tuple[float, list[float]] | None:
    target, effects = float(target_effect), [float(e) for e in control_effects]
    if math.isnan(target) or any(math.isnan(e) for e in effects):
        return None
    return target, effects


def effect_ratio(target_effect: float, control_mean: float) -> float:
    """``target / |control mean|``; NaN (never infinite) when the mean is 0 or either is NaN.

    The absolute value keeps the ratio's sign the target's: a control mean that is slightly
    negative (random heads help a little) must not flip a strong positive target into a
    "negative" ratio. This is the bare arithmetic; verdicts use :func:`guarded_ratio`.
    """
    target, mean = float(target_effect), float(control_mean)
    if math.isnan(target) or math.isnan(mean) or mean == 0.0:
        return math.nan
    return target / abs(mean)


def permutation_p(target_effect: float, control_effects: Sequence[float]) -> float:
    """``(1 + #draws with effect >= target) / (N + 1)``: how often random heads do at least as well.

    One-sided (effects are oriented so that larger means "more harm"); ties count against the
    target. The +1 counts the target among the draws, so p is never 0 and its smallest value is
    1 / (N + 1). NaN when the target or any draw is NaN.
    """
    data = _clean(target_effect, control_effects)
    if data is None or not data[1]:
        return math.nan
    target, effects = data
    return (1 + sum(e >= target for e in effects)) / (len(effects) + 1)


def z_score(target_effect: float, control_effects: Sequence[float]) -> float:
    """``(target - mean) / sd`` of the draws (sample sd, ddof=1).

    With sd = 0 (every draw the same) the target is +inf / -inf standard deviations away when it
    is above / below them, and NaN when it equals them; one draw has no spread (NaN), as does a
    NaN anywhere. NaN never passes a comparison.
    """
    data = _clean(target_effect, control_effects)
    if data is None or len(data[1]) < 2:
        return math.nan
    target, effects = data
    mean, sd = statistics.fmean(effects), statistics.stdev(effects)
    if sd == 0.0:
        return math.inf if target > mean else (-math.inf if target < mean else math.nan)
    return (target - mean) / sd


def guarded_ratio(target_effect: float, control_effects: Sequence[float]) -> tuple[float, str | None]:
    """:func:`effect_ratio` when the control mean is clearly not zero, else NaN and the reason.

    "Clearly not zero" = |mean| > ``RATIO_MIN_SE`` standard errors (sd / sqrt(N)) and above float
    resolution. Within that band the ratio is a quotient by noise: it swings to any size and
    sign from one seed to the next, so it is no evidence and must not pass.
    """
    data = _clean(target_effect, control_effects)
    if data is None:
        return math.nan, "NaN in the target or a control draw"
    target, effects = data
    if len(effects) < 2:
        return math.nan, "a ratio needs at least 2 draws (the control mean's standard error)"
    mean = statistics.fmean(effects)
    se = statistics.stdev(effects) / math.sqrt(len(effects))
    if abs(mean) <= RATIO_MIN_SE * se:
        return math.nan, (f"control mean {mean:.4g} is within {RATIO_MIN_SE:g} standard errors ({se:.4g}) of 0: "
                          "a ratio to it is noise; bound p or z instead")
    if abs(mean) <= RESOLUTION * max(1.0, abs(target)):
        return math.nan, f"control mean {mean:.3g} is indistinguishable from 0 (float resolution)"
    return target / abs(mean), None


def target_position(target_effect: float, control_effects: Sequence[float]) -> str:
    """Where the target falls among the draws, in words: ``target 8.1 > all 19 draws (max 0.9)``."""
    data = _clean(target_effect, control_effects)
    if data is None:
        return f"target {float(target_effect):.4g}: not comparable (NaN in the target or a draw)"
    target, effects = data
    n, above = len(effects), sum(e >= target for e in effects)
    if above == 0:
        return f"target {target:.4g} > all {n} draws (max {max(effects):.4g})"
    if above == n:
        return f"target {target:.4g} <= all {n} draws (min {min(effects):.4g})"
    return f"target {target:.4g} > {n - above} of {n} draws ({above} at or above it; max {max(effects):.4g})"


def control_summary(target_effect: float, control_effects: Sequence[float]) -> dict[str, Any]:
    """Statistics of the control effects and where the target falls among them.

    Args:
        target_effect: the effect of ablating the claimed heads (e.g. loss increase in nats).
        control_effects: the same effect for each random draw.

    Returns:
        ``draws`` (the control effects as floats), ``n``, ``mean``, ``sd`` (sample sd, ddof=1; 0
        for a single draw), ``se`` (sd / sqrt(n)), ``min``, ``max``, ``above`` (draws with effect
        >= target), ``p`` (:func:`permutation_p`), ``z`` (:func:`z_score`), ``position``
        (:func:`target_position`), ``ratio`` and ``ratio_note`` (:func:`guarded_ratio`).

    Raises:
        ValueError: no control effects.
    """
    effects = [float(e) for e in control_effects]
    if not effects:
        raise ValueError("control_summary needs at least one control effect (draws >= 1)")
    sd = statistics.stdev(effects) if len(effects) > 1 else 0.0
    ratio, note = guarded_ratio(target_effect, effects)
    target = float(target_effect)
    return {
        "draws": effects,
        "n": len(effects),
        "mean": statistics.fmean(effects),
        "sd": sd,
        "se": sd / math.sqrt(len(effects)),
        "min": min(effects),
        "max": max(effects),
        "above": sum(e >= target for e in effects) if not math.isnan(target) else None,
        "p": permutation_p(target, effects),
        "z": z_score(target, effects),
        "position": target_position(target, effects),
        "ratio": ratio,
        "ratio_note": note,
    }
