"""The diff as terminal text and as Markdown (fit for a CI step summary)."""
from __future__ import annotations

from typing import Any

from icltest.report.build import fmt_delta as signed
from icltest.report.build import fmt_value as num

MAX_PAIRS = 20  # moved / poor pairs listed in text and Markdown; the JSON has every pair
MAX_SAME = 32   # heads listed with their same-index similarity




def _value(cell: dict[str, Any]) -> str:
    text = num(cell.get("value"))
    return f"{text} ({cell['head']})" if cell.get("head") else text


def _model_line(side: dict[str, Any]) -> str:
    facts = []
    for m in side["models"]:
        shape = f"{m['n_layers']}x{m['n_heads']} heads" if m.get("n_layers") and m.get("n_heads") else ""
        facts.append(", ".join(x for x in (m.get("architecture"), shape, m.get("dtype")) if x))
    where = f"{side['path']} ({side['source']})"
    return f"{side['label']}: {'; '.join(f for f in facts if f)} - {where}" if any(facts) else f"{side['label']} - {where}"


def _claim_counts(c: dict[str, int]) -> str:
    return (f"{c['compared']} claim items in both: {c['pass->fail']} pass->fail, {c['fail->pass']} fail->pass, "
            f"{c['still pass']} still pass, {c['still not pass']} still not passing; "
            f"{c['only A']} only in A, {c['only B']} only in B")


def _pair(p: dict[str, Any]) -> str:
    sim = "no shared map values" if p["similarity"] is None else f"profile similarity {p['similarity']:.2f}"
    return f"A:{p['a']} ~ B:{p['b']} ({sim})"


def _poor(p: dict[str, Any]) -> str:
    text = _pair(p)
    near = p.get("nearest_b")
    if near and near["head"] != p["b"]:
        text += f"; nearest in B: {near['head']} ({near['similarity']:.2f})"
    return text


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def render_text(diff: dict[str, Any]) -> str:
    h = diff["header"]
    out = ["icltest diff", f"A = {_model_line(h['a'])}", f"B = {_model_line(h['b'])}",
           f"weights: {h['weights']['text']}"]
    for name in ("a", "b"):
        errors = h[name].get("spec_errors") or []
        if errors:
            out.append(f"{name.upper()} had {len(errors)} spec file(s) that failed to load (their claims are missing): "
                       + "; ".join(errors[:3]))
    if h["env_changes"]:
        out.append("environment changes (A -> B):")
        out += [f"  {c['key']}: {c['a']} -> {c['b']}" for c in h["env_changes"]]
    else:
        out.append("environment: no differences in the facts both sides record")
    c = diff["claims"]
    out += ["", "== claims (flipped first) ==", _claim_counts(c["counts"])]
    if c["rows"]:
        rows = [("", "claim", "A", "B", "delta", "A -> B")]
        for r in c["rows"]:
            mark = {"pass->fail": "FLIP-", "fail->pass": "FLIP+"}.get(r["flip"], "")
            rows.append((mark, r["claim"] + (" *" if r.get("expect_changed") else ""), _value(r["a"]), _value(r["b"]),
                         signed(r["delta"]), r["verdict"]))
        out += _table(rows)
        if any(r.get("expect_changed") for r in c["rows"]):
            out.append("* the expectation differs between A and B")
    for side, key in (("A", "only_a"), ("B", "only_b")):
        if c[key]:
            out.append(f"only in {side}: " + ", ".join(f"{r['claim']} ({r['status']}, {num(r['value'])})" for r in c[key]))
    out += ["", "== heads =="] + _heads_text(diff["heads"])
    if diff.get("patterns"):
        out += ["", "== heads matched by attention pattern =="] + _patterns_text(diff["patterns"])
    return "\n".join(out) + "\n"


def _heads_text(heads: dict[str, Any]) -> list[str]:
    if not heads["available"]:
        return [heads["reason"]]
    out: list[str] = []
    for m in heads["models"]:
        if len(heads["models"]) > 1:
            out.append(f"-- A model {m['a']} vs B model {m['b']} --")
        out += [f"note: {n}" for n in m["notes"]]
        out.append("moved most (B - A at the same layer and head):")
        for entry in m["moved_most"]:
            if entry.get("note"):
                out.append(f"  {entry['map']}: {entry['note']}")
                continue
            cells = ", ".join(f"{x['head']} {num(x['a'])} -> {num(x['b'])} ({signed(x['delta'])})" for x in entry["heads"])
            out.append(f"  {entry['map']} ({entry['kind']}): {cells or 'no head with values on both sides'}")
        out += _matching_lines(m, code=False)
    return out


def _matching_lines(m: dict[str, Any], code: bool) -> list[str]:
    q = "`" if code else ""
    bullet = "- " if code else "  "
    gap = [""] if code else []  # Markdown: a paragraph per heading, lists after a blank line
    if not m["profile_maps"]:
        return ["matched by behaviour: no map with spread on both sides; heads not matched"]
    match = m["matching"]
    n = len(match["pairs"])
    out = [f"matched by behaviour (profiles over {len(m['profile_maps'])} map(s): {', '.join(m['profile_maps'])}; "
           f"optimal assignment): {match['same_index']}/{n} heads matched at their own index"]
    if m.get("single_map"):
        out += gap + [f"note: {m['single_map']}"]
    if match["moved"]:
        out += gap + ["index changed:"]
        out += [f"{bullet}{q}{_pair(p)}{q}" for p in match["moved"][:MAX_PAIRS]]
        if len(match["moved"]) > MAX_PAIRS:
            out.append(f"{bullet}... {len(match['moved']) - MAX_PAIRS} more in the JSON output")
    if match["poor"]:
        out += gap
        out.append(f"poor matches (similarity < {match['poor_threshold']:.2f}: the head's behaviour changed, or its "
                   "look-alike in the other model is matched elsewhere):")
        out += [f"{bullet}{q}{_poor(p)}{q}" for p in match["poor"][:MAX_PAIRS]]
        if len(match["poor"]) > MAX_PAIRS:
            out.append(f"{bullet}... {len(match['poor']) - MAX_PAIRS} more in the JSON output")
    else:
        out += gap
        out.append(f"no poor matches (every pair has similarity >= {match['poor_threshold']:.2f})")
    same = [p for p in match["pairs"] if not p["moved"] and p["similarity"] is not None]
    if same:
        shown = ", ".join(f"{p['a']} {p['similarity']:.2f}" for p in same[:MAX_SAME])
        more = f", ... {len(same) - MAX_SAME} more in the JSON output" if len(same) > MAX_SAME else ""
        out += gap + [f"similarity at the same index: {shown}{more}"]
    for side, key in (("A", "unmatched_a"), ("B", "unmatched_b")):
        if match[key]:
            out += gap
            out.append(f"unmatched in {side} (more heads than the other model): {', '.join(match[key])}")
    return out


def _patterns_text(p: dict[str, Any]) -> list[str]:
    if not p.get("available"):
        return [p["reason"]]
    match = p["matching"]
    out = [f"probe {p['probe']}; similarity = correlation of the heads' mean attention patterns: "
           f"{match['same_index']}/{len(match['pairs'])} heads matched at their own index"]
    if match["moved"]:
        out.append("index changed:")
        out += [f"  A:{x['a']} ~ B:{x['b']} (pattern correlation {x['similarity']:.2f})" for x in match["moved"][:MAX_PAIRS]]
    poor = match["poor"]
    if poor:
        out.append(f"poor matches (correlation < {match['poor_threshold']:.2f}):")
        out += [f"  A:{x['a']} ~ B:{x['b']} (pattern correlation {x['similarity']:.2f})" for x in poor[:MAX_PAIRS]]
    else:
        out.append(f"no poor matches (every pair has correlation >= {match['poor_threshold']:.2f})")
    return out


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(diff: dict[str, Any]) -> str:
    h = diff["header"]
    c = diff["claims"]
    counts = c["counts"]
    lead = f"**{counts['pass->fail']} pass->fail, {counts['fail->pass']} fail->pass** of {counts['compared']} claim items"
    out = ["# icltest diff", "", lead, "",
           f"- **A** = {_md_escape(_model_line(h['a']))}", f"- **B** = {_md_escape(_model_line(h['b']))}",
           f"- weights: {h['weights']['text']}"]
    for name in ("a", "b"):
        errors = h[name].get("spec_errors") or []
        if errors:
            out.append(f"- ⚠️ {name.upper()} had {len(errors)} spec file(s) that failed to load (their claims are "
                       "missing): " + "; ".join(f"`{_md_escape(e)}`" for e in errors[:3]))
    out.append("")
    if h["env_changes"]:
        out += ["| environment | A | B |", "|---|---|---|"]
        out += [f"| {c_['key']} | `{_md_escape(c_['a'])}` | `{_md_escape(c_['b'])}` |" for c_ in h["env_changes"]]
    else:
        out.append("environment: no differences in the facts both sides record")
    out += ["", "## Claims", "", _claim_counts(counts), ""]
    if c["rows"]:
        out += ["| | claim | A | B | delta | A -> B |", "|---|---|---|---|---|---|"]
        for r in c["rows"]:
            mark = {"pass->fail": "❌ flipped", "fail->pass": "✅ flipped"}.get(r["flip"], "")
            star = " (expectation changed)" if r.get("expect_changed") else ""
            out.append(f"| {mark} | `{_md_escape(r['claim'])}`{star} | {_value(r['a'])} | {_value(r['b'])} "
                       f"| {signed(r['delta'])} | {r['verdict']} |")
    for side, key in (("A", "only_a"), ("B", "only_b")):
        if c[key]:
            out += ["", f"Only in {side}: " + ", ".join(f"`{_md_escape(r['claim'])}` ({r['status']}, {num(r['value'])})"
                                                       for r in c[key])]
    out += ["", "## Heads", ""]
    heads = diff["heads"]
    if not heads["available"]:
        out.append(heads["reason"])
    for m in heads.get("models", []):
        if len(heads["models"]) > 1:
            out += [f"### A model {m['a']} vs B model {m['b']}", ""]
        out += [f"- note: {n}" for n in m["notes"]] + ([""] if m["notes"] else [])
        out += ["| map | heads that moved most (A -> B at the same index) |", "|---|---|"]
        for entry in m["moved_most"]:
            cells = entry.get("note") or ", ".join(
                f"{x['head']} {num(x['a'])} → {num(x['b'])} ({signed(x['delta'])})" for x in entry["heads"])
            out.append(f"| {entry['map']} ({entry['kind']}) | {cells or '-'} |")
        out += [""] + _matching_lines(m, code=True)
    if diff.get("patterns"):
        out += ["", "## Heads matched by attention pattern", ""] + _patterns_text(diff["patterns"])
    return "\n".join(out) + "\n"
