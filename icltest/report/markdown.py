"""Markdown report: a verdict table first, details after, readable at a glance.

Fit for a CI step summary (``cat report.md >> $GITHUB_STEP_SUMMARY``): the summary line, then
regressions against the baseline that fail their item (when one was given; an accepted or xfail
regression is labelled in the table, not listed there), then the other failures, then every claim
(with the baseline's value, the change and the verdict when a baseline was used), sweeps, the top
heads of each per-head map, spec errors, models, probes, the baseline's environment changes and
this run's environment. Plain GitHub-flavoured Markdown: no HTML, no images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from icltest.report.build import (ACCEPTED, XFAIL_REGRESSED, baseline_of, fmt_delta, fmt_value, not_compared_line,
                                  regressed, shown_counts, split_env_changes, verdict_label,
                                  weights_text)
from icltest.report.files import write_atomic
from icltest.report.maps import map_top_heads
from icltest.report.sweeps import sweep_section


VERDICT_MARKS = {"regressed": "🔻 regressed", ACCEPTED: ACCEPTED, XFAIL_REGRESSED: XFAIL_REGRESSED,
                 "improved": "🔺 improved", "pass": "pass", "new": "new", "incomparable": "≠ incomparable"}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(records: list[dict[str, Any]], with_baseline: bool = False) -> list[str]:
    """One row per record; with a baseline, its value, the change and the verdict after the expectation."""
    extra = " baseline | Δ | vs baseline |" if with_baseline else ""
    out = [f"| | claim | measured | expected |{extra} summary | spec |",
           "|---|---|---|---|" + ("---|---|---|" if with_baseline else "") + "---|---|"]
    for r in records:
        mark = "✅" if r.get("passed") else ("➖ xfail" if r.get("xfail") else ("⚠️" if "error" in r else (
            "❌ XPASS(strict)" if r.get("xpass_strict") else "❌")))  # strict: a stale xfail mark fails the run
        summary = _cell(r.get("summary") or r.get("error") or "")
        cells = ""
        if with_baseline:
            base = baseline_of(r)
            cells = (" - | - | - |" if base is None else
                     f" {fmt_value(base.get('value'))} | {fmt_delta(base.get('delta'))} "
                     f"| {_cell(VERDICT_MARKS.get(verdict_label(r), verdict_label(r) or '-'))} |")
        out.append(
            f"| {mark} | `{r['id']}[{r['target']}]` | {fmt_value(r.get('value'))} | `{r.get('expect', '-')}` |{cells} "
            f"{summary} | `{r.get('spec', '')}` |"
        )
    return out


def _maps_section(maps: list[dict[str, Any]]) -> list[str]:
    """One row per map: its top 3 heads, the claims' heads (targets) with their values, model and probe."""
    if not maps:
        return []
    several = len({(m.get("model"), m.get("weights_sha256")) for m in maps}) > 1
    out = ["", "## Head maps", "",
           "| map | top 3 heads | claims' heads |" + (" model |" if several else "") + " probe |",
           "|---|---|---|" + ("---|" if several else "") + "---|"]
    for m in maps:
        values = m.get("values") or []
        top = ", ".join(f"L{l}H{h} {fmt_value(v)}" for l, h, v in map_top_heads(values, 3)) or "no finite values"
        targets = []
        for l, h in (m.get("targets") or [])[:8]:
            value = values[l][h] if l < len(values) and h < len(values[l]) else None
            targets.append(f"L{l}H{h} {fmt_value(value)}")
        more = len(m.get("targets") or []) - len(targets)
        shown = (", ".join(targets) + (f" (+{more} more)" if more > 0 else "")) if targets else "-"
        model = f" `{_cell(m.get('model'))}` |" if several else ""
        out.append(f"| **{_cell(m.get('name'))}** ({_cell(m.get('kind'))}) | {top} | {shown} |{model} "
                   f"`{_cell(m.get('probe'))}` |")
    return out


def _baseline_section(base: dict[str, Any], records: list[dict[str, Any]]) -> list[str]:
    """The baseline compared against: which, whether the weights are the same, what changed, what is missing."""
    out = ["", "## Baseline", ""]
    out.append(f"Compared with **{base.get('name', '?')}** (`{base.get('path', '?')}`, created "
               f"{base.get('created', '?')}): {weights_text(base)}.")
    counts = shown_counts(records, base)
    if counts:
        out += ["", "Verdicts: " + ", ".join(f"{VERDICT_MARKS.get(k, k)} {n}" for k, n in counts.items())]
    changes = base.get("env_changes") or []
    weights, others = split_env_changes(changes)
    incomparable = counts.get("incomparable", 0)
    skipped = (f"except {incomparable} whose probe, data files, probe seed or unit changed (incomparable: "
               "not compared, judged on their own expectation only)" if incomparable else "")
    if others:
        out += ["", "⚠️ Environment changes since the baseline (listed, not corrected for): claims were compared "
                "across them" + (f", {skipped}" if skipped else "") + ". Read the values with these in mind."]
    elif skipped:
        out += ["", f"No environment changes since the baseline; every claim was compared {skipped}."]
    else:
        out += ["", "No environment changes since the baseline" + (" other than the weights." if weights else ".")]
    if changes:
        out += ["", "| | baseline | now |", "|---|---|---|"]
        out += [f"| {_cell(c.get('key'))} | `{_cell(c.get('baseline'))}` | `{_cell(c.get('current'))}` |" for c in changes]
    missing = base.get("missing") or []
    if missing:
        out += ["", f"In the baseline but not run ({len(missing)}):", ""] + [f"- `{k}`" for k in missing]
    return out


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if fence == "`" else f"{fence} {text} {fence}"


def _spec_errors(entries: list[Any]) -> list[str]:
    """Each file that failed to collect, with its located problems (one per line)."""
    out: list[str] = []
    for entry in entries:
        name, error = (entry.get("file", "?"), entry.get("error", "")) if isinstance(entry, dict) else (entry, "")
        out.append(f"- `{name}`")
        out += [f"  - {_code(line.strip())}" for line in error.splitlines() if line.strip()]
    return out


def render_markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    env = report["env"]
    kinds: dict[str, list[int]] = {}
    for r in report["claims"]:
        counts = kinds.setdefault(r.get("kind", "?"), [0, 0])
        counts[0] += bool(r.get("passed"))
        counts[1] += 1
    out = [
        "# icltest report",
        "",
        f"**{s['passed']}/{s['claims']} claims passed**"
        + (f", {s['failed']} failed" if s["failed"] else "")
        + (f", {s['xfailed']} known failure(s) (xfail)" if s.get("xfailed") else "")
        + (f", {s['spec_errors']} spec file(s) with errors" if s["spec_errors"] else ""),
        "",
        " · ".join(f"{kind}: {p}/{n}" for kind, (p, n) in sorted(kinds.items())),
        "",
    ]
    records = report["claims"]
    base = report.get("baseline")
    with_baseline = bool(base) or any(baseline_of(r) for r in records)
    if with_baseline:
        verdicts = shown_counts(records, base)
        name = f" **{base.get('name', '?')}**" if base else ""
        changes = split_env_changes((base or {}).get("env_changes") or [])[1]
        keys = ", ".join(str(c.get("key")) for c in changes)
        uncompared = not_compared_line(records, base)
        out[4:4] = [f"Against the baseline{name}: "
                    + (", ".join(f"{VERDICT_MARKS.get(k, k)} {n}" for k, n in verdicts.items()) or "nothing compared")
                    + (f" · {weights_text(base)}" if base and base.get("same_weights") is False else "")
                    + (f" · ⚠️ {len(changes)} environment change(s) since the baseline ({_cell(keys)}; see Baseline "
                       "below)" if changes else ""), ""] + ([uncompared, ""] if uncompared else [])
    regressions = [r for r in records if regressed(r)]
    if regressions:
        out += ["## Regressions", ""] + _table(regressions, with_baseline) + [""]
    failed = [r for r in records if not r.get("passed") and not r.get("xfail") and not regressed(r)]
    if failed:
        out += ["## Failed" + (" (other than regressions)" if regressions else ""), ""] + _table(failed, with_baseline) + [""]
    if regressions or failed:
        out += ["## All claims", ""]
    out += _table(records, with_baseline)
    out += sweep_section(records)
    out += _maps_section(report.get("maps") or [])
    if report.get("spec_errors"):
        out += ["", "## Spec files with errors", ""] + _spec_errors(report["spec_errors"])
    out += ["", "## Models", ""]
    for name, info in env.get("models", {}).items():
        facts = ", ".join(f"{k}={v}" for k, v in info.items() if k != "name")
        out.append(f"- **{name}**: {facts}")
    probes = sorted({r["probe"] for r in report["claims"] if r.get("probe")})
    if probes:
        out += ["", "## Probes", ""] + [f"- `{p}`" for p in probes]
    if base:
        out += _baseline_section(base, records)
    out += [
        "", "## Environment", "",
        ", ".join(f"{k} {env[k]}" for k in ("icltest", "torch", "transformers", "python") if env.get(k)),
        f"on {env.get('platform')}, {env.get('time')}", "",
    ]
    return "\n".join(out)


def write_markdown(report: dict[str, Any], path: Path) -> None:
    write_atomic(path, render_markdown(report))
