"""Heads across two models: which moved most at the same index, and which match by behaviour.

**Moved most**: for each per-head map both sides have (same name and probe) and the same
layer x head shape, the heads with the largest ``|B - A|`` at the same (layer, head).

**Matched by behaviour**: a head's *profile* is its values across every map both sides have,
each map z-scored over the heads of both models together (``(v - mean) / std`` with the mean and
standard deviation of that map's cells in A and B pooled), so an induction score in [0, 1] and an
ablation effect in nats weigh alike, while a head whose score really changed keeps a changed
profile. The cost of pairing A's head i with B's head j is the root-mean-square distance between
their profiles (over the maps where both have a value: a map may leave heads out), plus a small
penalty (:data:`INDEX_PENALTY`, in standard deviations) when the two are at different indices,
so heads that are interchangeable (several heads doing nothing) stay at their own index instead
of being paired at random. :func:`scipy.optimize.linear_sum_assignment` finds the pairing with the
lowest total cost; with different head counts it is rectangular and the extra heads of the
larger model stay unmatched. A pair's similarity is ``1 / (1 + distance)``: 1 for identical
profiles, 0.5 at one standard deviation apart per map.

Limits: a profile only spans the maps both reports have, i.e. the scores and effects the suite's
claims measured; with a single map a profile is one number, so heads with similar values of
that one score are interchangeable and an index change among them means little (the output says
so). Two heads that behave alike on every measured map may differ on what was not measured. A
z-score needs spread: a map whose cells are all equal carries no information and is left out.
"""
from __future__ import annotations

from typing import Any

from icltest.claims.heads import head_name
from icltest.diff.inputs import Side

INDEX_PENALTY = 0.1
"""Extra cost (standard deviations) of pairing heads at different (layer, head) indices."""
POOR_MATCH = 0.5
"""Default similarity below which a match is reported as poor (one standard deviation apart)."""


def _shape(values: list[list[Any]]) -> tuple[int, int]:
    return len(values), len(values[0])


def _by_model(maps: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for m in maps:
        out.setdefault(f"{m.get('model')}@{m.get('weights_sha256')}", []).append(m)
    return out


def pair_models(a: Side, b: Side) -> list[tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]]:
    """(model A, model B, A's maps, B's maps) per model pair: one pair when each side has one
    model; otherwise models with the same name, then the rest in order."""
    ma, mb = _by_model(a.maps), _by_model(b.maps)
    if not ma or not mb:
        return []
    keys_a, keys_b = list(ma), list(mb)
    pairs = []
    for ka in list(keys_a):
        name = ka.split("@")[0]
        same = [kb for kb in keys_b if kb.split("@")[0] == name]
        if len(keys_a) > 1 and same:
            pairs.append((ka, same[0]))
            keys_a.remove(ka)
            keys_b.remove(same[0])
    pairs += list(zip(keys_a, keys_b))
    return [(ka.split("@")[0], kb.split("@")[0], ma[ka], mb[kb]) for ka, kb in pairs]


def pair_maps(maps_a: list[dict[str, Any]], maps_b: list[dict[str, Any]]) -> tuple[list[tuple[dict, dict]], list[str]]:
    """Maps of the two sides paired by (name, probe), then by name alone when unique; notes."""
    notes: list[str] = []
    pairs = []
    left_b = list(maps_b)
    rest_a = []
    for m in maps_a:
        hit = next((o for o in left_b if o["name"] == m["name"] and o["probe"] == m["probe"]), None)
        if hit is None:
            rest_a.append(m)
        else:
            pairs.append((m, hit))
            left_b.remove(hit)
    for m in rest_a:
        same = [o for o in left_b if o["name"] == m["name"]]
        if len(same) == 1 and sum(x["name"] == m["name"] for x in rest_a) == 1:
            pairs.append((m, same[0]))
            left_b.remove(same[0])
            notes.append(f"map {m['name']}: probes differ (A {m['probe']}; B {same[0]['probe']}); compared anyway")
        else:
            notes.append(f"map {m['name']} ({m['probe']}) only in A")
    notes += [f"map {o['name']} ({o['probe']}) only in B" for o in left_b]
    return pairs, notes


def moved_most(pairs: list[tuple[dict, dict]], top: int) -> list[dict[str, Any]]:
    """Per shared map: the ``top`` heads by |B - A| at the same index (ties by layer, head)."""
    out = []
    for ma, mb in pairs:
        entry: dict[str, Any] = {"map": ma["name"], "kind": ma["kind"], "probe": ma["probe"], "unit": ma["unit"]}
        if _shape(ma["values"]) != _shape(mb["values"]):
            entry["note"] = (f"not compared by index: A has {'x'.join(map(str, _shape(ma['values'])))} heads, "
                             f"B {'x'.join(map(str, _shape(mb['values'])))}")
            entry["heads"] = []
            out.append(entry)
            continue
        cells = []
        for layer, (row_a, row_b) in enumerate(zip(ma["values"], mb["values"])):
            for head, (va, vb) in enumerate(zip(row_a, row_b)):
                if va is not None and vb is not None:
                    cells.append((-abs(vb - va), layer, head, va, vb))
        cells.sort()
        entry["heads"] = [{"head": head_name(l, h), "a": va, "b": vb, "delta": vb - va}
                          for _, l, h, va, vb in cells[:top]]
        out.append(entry)
    return out


def _flat(values: list[list[Any]]) -> list[Any]:
    return [v for row in values for v in row]


def profiles(pairs: list[tuple[dict, dict]]) -> tuple[list[str], list[str], Any, Any, list[str], list[str]]:
    """(A head names, B head names, A profiles [nA, k], B profiles [nB, k], map names, notes).

    Profiles hold NaN where a map left a head out. Only maps with A's most common shape on the
    A side (and B's on the B side) take part, so every profile row is one head.
    """
    import numpy as np

    notes: list[str] = []
    if not pairs:
        return [], [], np.zeros((0, 0)), np.zeros((0, 0)), [], notes
    shapes_a = [_shape(ma["values"]) for ma, _ in pairs]
    shapes_b = [_shape(mb["values"]) for _, mb in pairs]
    shape_a = max(set(shapes_a), key=shapes_a.count)
    shape_b = max(set(shapes_b), key=shapes_b.count)
    cols_a, cols_b, names = [], [], []
    for (ma, mb), sa, sb in zip(pairs, shapes_a, shapes_b):
        if sa != shape_a or sb != shape_b:
            notes.append(f"map {ma['name']}: shape {sa} / {sb} differs from the other maps' {shape_a} / {shape_b}; "
                         "left out of the profiles")
            continue
        va = np.array([np.nan if v is None else v for v in _flat(ma["values"])], dtype=float)
        vb = np.array([np.nan if v is None else v for v in _flat(mb["values"])], dtype=float)
        both = np.concatenate([va, vb])
        finite = both[np.isfinite(both)]
        std = float(finite.std()) if finite.size else 0.0
        if finite.size < 2 or std <= 1e-12 * max(1.0, float(np.abs(finite).max())):
            notes.append(f"map {ma['name']}: every head has the same value; it carries no information and is "
                         "left out of the profiles")
            continue
        mean = float(finite.mean())
        cols_a.append((va - mean) / std)
        cols_b.append((vb - mean) / std)
        names.append(ma["name"])
    heads_a = [head_name(l, h) for l in range(shape_a[0]) for h in range(shape_a[1])]
    heads_b = [head_name(l, h) for l in range(shape_b[0]) for h in range(shape_b[1])]
    if not names:
        return heads_a, heads_b, np.zeros((len(heads_a), 0)), np.zeros((len(heads_b), 0)), names, notes
    return heads_a, heads_b, np.stack(cols_a, axis=1), np.stack(cols_b, axis=1), names, notes


def distances(pa: Any, pb: Any) -> Any:
    """[nA, nB] root-mean-square profile distance over the maps both heads have (NaN: none shared)."""
    import numpy as np

    diff = pa[:, None, :] - pb[None, :, :]
    shared = np.isfinite(diff)
    count = shared.sum(axis=2)
    total = np.where(shared, diff ** 2, 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.sqrt(total / np.maximum(count, 1)), np.nan)


def assign(heads_a: list[str], heads_b: list[str], dist: Any, poor: float = POOR_MATCH,
           penalty: float = INDEX_PENALTY) -> dict[str, Any]:
    """Optimal pairing of A's heads with B's for a [nA, nB] distance matrix (NaN: incomparable)."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    finite = dist[np.isfinite(dist)]
    worst = float(finite.max()) if finite.size else 1.0
    cost = np.where(np.isfinite(dist), dist, worst * 10 + 10)
    index_a = np.array(heads_a, dtype=object)[:, None]
    index_b = np.array(heads_b, dtype=object)[None, :]
    cost = cost + penalty * (index_a != index_b)
    rows, cols = linear_sum_assignment(cost)
    pairs = []
    for i, j in zip(rows, cols):
        d = dist[i, j]
        sim = None if not np.isfinite(d) else 1.0 / (1.0 + float(d))
        pair: dict[str, Any] = {"a": heads_a[i], "b": heads_b[j], "distance": None if sim is None else float(d),
                                "similarity": sim, "moved": heads_a[i] != heads_b[j]}
        pair["poor"] = sim is None or sim < poor
        if pair["poor"]:
            row = dist[i]
            if np.isfinite(row).any():
                k = int(np.nanargmin(row))
                pair["nearest_b"] = {"head": heads_b[k], "similarity": 1.0 / (1.0 + float(row[k]))}
        pairs.append(pair)
    pairs.sort(key=lambda p: (heads_a.index(p["a"])))
    matched_a = {p["a"] for p in pairs}
    matched_b = {p["b"] for p in pairs}
    return {
        "pairs": pairs,
        "moved": sorted((p for p in pairs if p["moved"]),
                        key=lambda p: (-(p["similarity"] or 0.0), heads_a.index(p["a"]))),
        "poor": [p for p in pairs if p["poor"]],
        "unmatched_a": [h for h in heads_a if h not in matched_a],
        "unmatched_b": [h for h in heads_b if h not in matched_b],
        "same_index": sum(not p["moved"] for p in pairs),
    }


def compare_heads(a: Side, b: Side, *, top: int = 5, poor: float = POOR_MATCH) -> dict[str, Any]:
    """The heads section of the diff: per model pair, maps moved most and the behaviour matching."""
    missing = [f"{n} {s.notes[0] if s.notes else 'has no per-head maps'}" for n, s in (("A", a), ("B", b))
               if not s.maps]
    if missing:
        return {"available": False, "reason": "heads not compared: " + "; ".join(missing), "models": []}
    out = []
    for name_a, name_b, maps_a, maps_b in pair_models(a, b):
        pairs, notes = pair_maps(maps_a, maps_b)
        entry: dict[str, Any] = {"a": name_a, "b": name_b, "notes": notes, "moved_most": moved_most(pairs, top)}
        heads_a, heads_b, pa, pb, names, pnotes = profiles(pairs)
        entry["notes"] = notes + pnotes
        entry["profile_maps"] = names
        if names:
            entry["matching"] = assign(heads_a, heads_b, distances(pa, pb), poor=poor)
            entry["matching"]["poor_threshold"] = poor
            if len(names) == 1:
                entry["single_map"] = (f"profiles span one map ({names[0]}): a profile is one number, so heads are "
                                       f"matched by their {names[0]} value alone and heads with similar values are "
                                       "interchangeable")
        out.append(entry)
    if not out:
        return {"available": False, "reason": "heads not compared: no map of A pairs with one of B", "models": []}
    return {"available": True, "models": out}
