"""Random-head controls: is ablating *these* heads special, or does ablating any heads hurt?

"Ablating the induction heads raises loss by 3 nats" means little if ablating as many random heads
raises it by 2.5. A claim therefore compares its target effect with the effects of several seeded
draws of the same number of other heads; this module draws them and summarises the comparison.
"""
from __future__ import annotations

import math
import statistics
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


def effect_ratio(target_effect: float, control_mean: float) -> float:
    """``target / |control mean|``, with the zero-mean cases made explicit.

    The absolute value keeps the ratio's sign the target's: a control mean that is slightly
    negative (random heads help a little) must not flip a strong positive target into a
    "negative" ratio. With a zero control mean the ratio is +inf / -inf by the target's sign, and
    NaN when the target is 0 as well (no evidence either way).
    """
    target, mean = float(target_effect), float(control_mean)
    if math.isnan(target) or math.isnan(mean):
        return math.nan
    if mean == 0.0:
        if target == 0.0:
            return math.nan
        return math.inf if target > 0 else -math.inf
    return target / abs(mean)


def control_summary(target_effect: float, control_effects: Sequence[float]) -> dict[str, Any]:
    """Statistics of the control effects and how the target compares with them.

    Args:
        target_effect: the effect of ablating the claimed heads (e.g. loss increase in nats).
        control_effects: the same effect for each random draw.

    Returns:
        ``draws`` (the control effects as floats), ``mean``, ``std`` (sample std, ddof=1; 0 for a
        single draw), ``min``, ``max`` and ``ratio`` (see :func:`effect_ratio`).

    Raises:
        ValueError: no control effects.
    """
    effects = [float(e) for e in control_effects]
    if not effects:
        raise ValueError("control_summary needs at least one control effect (draws >= 1)")
    mean = statistics.fmean(effects)
    std = statistics.stdev(effects) if len(effects) > 1 else 0.0
    return {
        "draws": effects,
        "mean": mean,
        "std": std,
        "min": min(effects),
        "max": max(effects),
        "ratio": effect_ratio(target_effect, mean),
    }
