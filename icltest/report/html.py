"""HTML report: one self-contained page a person reads in a browser or a CI artifact viewer.

Everything is inline: the CSS, and every figure as a base64 PNG drawn with matplotlib's Agg canvas
(no pyplot, so no global figure state is touched and nothing is left open). The page makes no
network request: no CDN, no web fonts, no external links.

Layout, top to bottom:

- a header with the verdict counts (and the baseline's verdict counts when one was used; other
  weights as information, environment changes as a warning, the claims not compared);
- the claim table: regressions against the baseline that fail their item first (one accepted by
  ``--icl-update-baseline`` or under an xfail mark is labelled so and keeps its place), then the
  other failures, then the rest,
  each row coloured by its status, with the measured value, the expectation, the baseline's value,
  the change and the verdict (when a baseline was used), the summary and the spec line;
- one layer x head heatmap per map in ``report["maps"]`` (a sequential colormap for scores in
  [0, 1], a diverging one centred at 0 for signed maps such as attribution), the claims' heads
  outlined and listed under the figure;
- the sweeps claims measured (``details["sweeps"]``) as small line plots, their references as
  horizontal lines;
- the baseline (environment changes, claims missing) and this run's environment.
"""
from __future__ import annotations

import base64
import io
import math
import textwrap
from html import escape
from pathlib import Path
from typing import Any

from icltest.report.build import (baseline_of, fmt_delta, fmt_value, not_compared_line, regressed, regression,
                                  shown_counts, split_env_changes, status_of, verdict_label, weights_text)
from icltest.report.files import write_atomic
from icltest.report.maps import SIGNED, map_top_heads

CSS = """
:root { --pass: #1e7b34; --fail: #c62828; --regressed: #8e1b5a; --error: #b26a00; --xfail: #5f6368; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
       margin: 0 auto; padding: 16px 24px 48px; max-width: 1400px; color: #1f2328; background: #fff;
       font-size: 14px; line-height: 1.4; }
h1 { font-size: 22px; margin: 4px 0 8px; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
nav a { margin-right: 14px; color: #0969da; text-decoration: none; }
.counts { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0; align-items: center; }
.count { border-radius: 6px; padding: 6px 12px; font-weight: 600; color: #fff; font-size: 15px; }
.count.zero { opacity: 0.35; }
.label { color: #57606a; margin-right: 4px; font-weight: 600; }
.PASS { background: var(--pass); } .FAIL, .XPASS { background: var(--fail); }
.REGRESSED { background: var(--regressed); } .ERROR { background: var(--error); } .XFAIL { background: var(--xfail); }
.IMPROVED { background: #0b6e99; } .BASE { background: #6e7781; }
.warn { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 6px 10px; margin: 6px 0; }
.info { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: 6px 10px; margin: 6px 0; }
.meta { color: #57606a; font-size: 13px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { border-bottom: 1px solid #d8dee4; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; position: sticky; top: 0; font-size: 13px; white-space: nowrap; }
td.claim { min-width: 15em; overflow-wrap: anywhere; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.summary { font-size: 12px; color: #333; min-width: 24em; max-width: 560px; }
td.spec { font-size: 11px; min-width: 15em; overflow-wrap: anywhere; }
tr.row-PASS { background: #f3faf4; } tr.row-FAIL, tr.row-XPASS { background: #fdeeee; }
tr.row-REGRESSED { background: #f9e6ef; } tr.row-ERROR { background: #fff6e5; } tr.row-XFAIL { background: #f4f4f5; }
.pill { display: inline-block; border-radius: 10px; padding: 1px 8px; color: #fff; font-size: 11px; font-weight: 700;
        white-space: nowrap; }
.v-regressed { color: var(--regressed); font-weight: 700; } .v-improved { color: #0b6e99; font-weight: 700; }
.v-incomparable { color: var(--error); } .v-accepted { color: var(--regressed); }
figure { margin: 14px 0 22px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { font-size: 13px; color: #333; margin-top: 4px; }
.sweeps { display: flex; flex-wrap: wrap; gap: 12px; }
.sweeps figure { margin: 6px 0; max-width: 560px; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px; }
"""

STATUS_CLASS = {"PASS": "PASS", "FAIL": "FAIL", "XPASS(strict)": "XPASS", "ERROR": "ERROR", "XFAIL": "XFAIL",
                "REGRESSED": "REGRESSED"}


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _status(record: dict[str, Any]) -> str:
    return "REGRESSED" if regressed(record) else status_of(record)


def _review_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Regressions first, then the other failures (FAIL, ERROR, XPASS(strict)), then the rest; stable."""
    def rank(record: dict[str, Any]) -> int:
        status = _status(record)
        return 0 if status == "REGRESSED" else (1 if status in ("FAIL", "ERROR", "XPASS(strict)") else 2)
    return sorted(records, key=rank)


# ----------------------------------------------------------------------------- figures


def _png(fig: Any) -> str:
    """The figure as a base64 PNG (no metadata: the file names no software or URL)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    finally:
        fig.clear()  # the Figure is not registered with pyplot; clearing frees its artists now
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _map_norm(kind: str, finite: list[float]) -> tuple[str, float, float]:
    """(colormap, vmin, vmax): scores in [0, 1] sequential on [0, 1]; signed maps diverging around 0."""
    if kind in SIGNED or (finite and min(finite) < 0):
        bound = max((abs(v) for v in finite), default=0.0) or 1.0
        return "RdBu_r", -bound, bound
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if low >= 0 and high <= 1:
        return "viridis", 0.0, 1.0
    return "viridis", low, high if high > low else low + 1


def heatmap_png(entry: dict[str, Any]) -> str:
    """One map as a layer (x) x head (y) heatmap, the targets outlined; base64 PNG."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    rows = entry.get("values") or [[]]
    width = max((len(r) for r in rows), default=0)
    values = np.full((len(rows), max(width, 1)), np.nan)
    for l, row in enumerate(rows):
        for h, v in enumerate(row):
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                values[l, h] = float(v)
    n_layers, n_heads = values.shape
    finite = [float(v) for v in values[np.isfinite(values)]]
    cmap_name, vmin, vmax = _map_norm(str(entry.get("kind")), finite)
    cmap = matplotlib.colormaps[cmap_name].with_extremes(bad="#d9d9d9")
    fig = Figure(figsize=(min(16.0, max(5.5, 1.8 + 0.36 * n_layers)), min(12.0, max(2.4, 1.3 + 0.34 * n_heads))))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values.T), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                      interpolation="nearest", origin="upper")
    x_step = 1 if n_layers <= 40 else 5
    y_step = 1 if n_heads <= 24 else 4
    ax.set_xticks(range(0, n_layers, x_step))
    ax.set_yticks(range(0, n_heads, y_step))
    ax.tick_params(labelsize=8, length=2)
    ax.set_xlabel("layer", fontsize=9)
    ax.set_ylabel("head", fontsize=9)
    small = n_layers <= 40 and n_heads <= 24
    for layer, head in entry.get("targets") or ():
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            continue
        for colour, lw in (("white", 3.4), ("black", 1.6)):
            ax.add_patch(Rectangle((layer - 0.5, head - 0.5), 1, 1, fill=False, edgecolor=colour, linewidth=lw))
        value = values[layer, head]
        if small and math.isfinite(value):
            shade = image.cmap(image.norm(value))
            light = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] > 0.55
            ax.text(layer, head, f"{value:.2f}", ha="center", va="center", fontsize=6.5 if n_layers > 20 else 8,
                    color="black" if light else "white")
    bar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.015)
    bar.ax.tick_params(labelsize=8)
    bar.set_label(str(entry.get("kind", "")), fontsize=9)
    title = f"{entry.get('name')}  ·  {entry.get('kind')}  ·  {entry.get('model')}"
    probe = textwrap.shorten(str(entry.get("probe") or ""), width=140, placeholder=" …")
    ax.set_title(title, fontsize=11, loc="left", pad=18 if probe else 6)
    if probe:
        ax.text(0, 1.02, f"probe: {probe}", transform=ax.transAxes, fontsize=7.5, color="#444", va="bottom")
    return _png(fig)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(float(value)) else None


def sweep_png(sweep: dict[str, Any], title: str) -> str | None:
    """One sweep as a line plot, its references as dashed horizontal lines; None when malformed."""
    from matplotlib.figure import Figure

    points = sweep.get("points") if isinstance(sweep, dict) else None
    if not isinstance(points, list) or not points or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in points):
        return None
    ys = [_finite(p[1]) for p in points]
    if all(y is None for y in ys):
        return None
    xs_raw = [p[0] for p in points]
    numeric = all(_finite(x) is not None for x in xs_raw)
    xs = [float(x) for x in xs_raw] if numeric else list(range(len(points)))
    fig = Figure(figsize=(5.4, 2.8))
    ax = fig.add_subplot()
    ax.plot(xs, [math.nan if y is None else y for y in ys], marker="o", markersize=3.5, linewidth=1.6,
            color="#1f77b4", label=str(sweep.get("y", "y")))
    finite = [(x, y) for x, y in zip(xs, ys) if y is not None]
    best_x, best_y = max(finite, key=lambda p: p[1])
    ax.plot([best_x], [best_y], marker="*", markersize=11, color="#d62728", linestyle="none", label="best")
    refs = sweep.get("reference") if isinstance(sweep.get("reference"), dict) else {}
    styles = ["--", ":", "-."]
    colours = ["#555555", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    for i, (name, value) in enumerate(refs.items()):
        if _finite(value) is not None:
            ax.axhline(float(value), linestyle=styles[i % len(styles)], color=colours[i % len(colours)], linewidth=1.2,
                       label=f"{name} ({float(value):.3g})")
    if numeric and all(float(x).is_integer() for x in xs):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers are whole numbers
    if not numeric:
        ax.set_xticks(xs)
        ax.set_xticklabels([str(x) for x in xs_raw], rotation=45, ha="right", fontsize=7)
    ax.set_xlabel(str(sweep.get("x", "x")), fontsize=9)
    ax.set_ylabel(str(sweep.get("y", "y")), fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, alpha=0.3)
    ax.set_title(textwrap.shorten(title, width=80, placeholder=" …"), fontsize=10, loc="left")
    ax.legend(fontsize=7, loc="best", framealpha=0.85)
    return _png(fig)


# ----------------------------------------------------------------------------- sections


def _counts_html(report: dict[str, Any]) -> str:
    s = report.get("summary", {})
    records = report.get("claims", [])
    errors = sum(1 for r in records if status_of(r) == "ERROR")
    stale = sum(1 for r in records if status_of(r) == "XPASS(strict)")
    failed = s.get("failed", 0) - errors - stale
    items = [("passed", s.get("passed", 0), "PASS"), ("failed", failed, "FAIL"), ("errors", errors, "ERROR"),
             ("xpass(strict)", stale, "XPASS"), ("xfail", s.get("xfailed", 0), "XFAIL"),
             ("spec errors", s.get("spec_errors", 0), "ERROR")]
    out = [f'<div class="counts"><span class="label">{s.get("passed", 0)}/{s.get("claims", 0)} claims passed</span>']
    for name, n, cls in items:
        if name in ("errors", "xpass(strict)", "spec errors", "xfail") and not n:
            continue
        out.append(f'<span class="count {cls}{"" if n else " zero"}">{n} {_e(name)}</span>')
    out.append("</div>")
    base = report.get("baseline")
    counts = shown_counts(records, base)
    if base or counts:
        cls = {"regressed": "REGRESSED", "improved": "IMPROVED", "pass": "PASS"}
        out.append(f'<div class="counts"><span class="label">against baseline '
                   f'{_e((base or {}).get("name", ""))}</span>')
        for verdict, n in {"regressed": 0, **counts}.items():  # regressed always shown: the gate's question
            out.append(f'<span class="count {cls.get(verdict, "BASE")}{"" if n else " zero"}">{n} {_e(verdict)}</span>')
        out.append("</div>")
        if base and base.get("same_weights") is False:
            text = weights_text(base)
            out.append(f'<div class="info">{_e(text[:1].upper() + text[1:])}.</div>')
        changes = split_env_changes((base or {}).get("env_changes") or [])[1]
        if changes:
            keys = ", ".join(_e(c.get("key")) for c in changes)
            out.append(f'<div class="warn">{len(changes)} environment change(s) since the baseline: {keys} '
                       f'(<a href="#baseline">details</a>).</div>')
        uncompared = not_compared_line(records, base)
        if uncompared:
            out.append(f'<div class="info">{_e(uncompared)}.</div>')
    return "\n".join(out)


def _claims_html(records: list[dict[str, Any]]) -> str:
    with_baseline = any(baseline_of(r) for r in records)
    head = ["", "claim", "kind", "measured", "expected"] + (["baseline", "Δ", "vs baseline"] if with_baseline else [])
    head += ["summary", "spec"]
    out = ['<table class="claims"><thead><tr>' + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in _review_order(records):
        status = _status(r)
        cls = STATUS_CLASS.get(status, "FAIL")
        claim = f"{r.get('id')}[{r.get('target')}]"
        cells = [f'<td><span class="pill {cls}">{_e(status)}</span></td>',
                 f'<td class="claim"><code>{_e(claim)}</code></td>', f"<td>{_e(r.get('kind', ''))}</td>",
                 f'<td class="num">{_e(fmt_value(r.get("value")))}</td>', f"<td><code>{_e(r.get('expect', '-'))}</code></td>"]
        if with_baseline:
            base = baseline_of(r) or {}
            verdict = "accepted" if regression(r) in ("accepted", "xfail") else base.get("verdict")
            cells += [f'<td class="num">{_e(fmt_value(base.get("value")))}</td>',
                      f'<td class="num">{_e(fmt_delta(base.get("delta")))}</td>',
                      f'<td class="v-{_e(verdict)}" title="{_e(base.get("reason", ""))}">{_e(verdict_label(r) or "-")}</td>']
        cells += [f'<td class="summary">{_e(r.get("summary") or r.get("error") or "")}</td>',
                  f'<td class="spec"><code>{_e(r.get("spec", ""))}</code></td>']
        out.append(f'<tr class="row-{cls}" data-claim="{_e(claim)}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _head_list(values: list[list[Any]], heads: list[tuple[int, int, Any]] | list[list[int]], limit: int = 24) -> str:
    shown = []
    for item in list(heads)[:limit]:
        l, h = int(item[0]), int(item[1])
        value = values[l][h] if l < len(values) and h < len(values[l]) else None
        shown.append(f"L{l}H{h}&nbsp;{_e(fmt_value(value))}")
    more = len(heads) - len(shown)
    return ", ".join(shown) + (f" … (+{more} more)" if more > 0 else "")


def _maps_html(maps: list[dict[str, Any]]) -> str:
    if not maps:
        return '<p class="meta">No claim in this run measured a per-head map.</p>'
    out = []
    for m in maps:
        values = m.get("values") or []
        targets = m.get("targets") or []
        sha = m.get("weights_sha256")
        out.append(f'<figure><img data-map="{_e(m.get("name"))}" data-kind="{_e(m.get("kind"))}" '
                   f'data-probe="{_e(m.get("probe"))}" alt="{_e(m.get("name"))} heatmap" '
                   f'src="data:image/png;base64,{heatmap_png(m)}">')
        out.append(
            f"<figcaption><b>{_e(m.get('name'))}</b> ({_e(m.get('kind'))}: {_e(m.get('unit'))}) on "
            f"<code>{_e(m.get('model'))}</code>{f' (weights sha256 {_e(str(sha)[:12])}…)' if sha else ''}, probe "
            f"<code>{_e(m.get('probe'))}</code><br>"
            f"claims' heads (outlined): {_head_list(values, targets) if targets else 'none'}<br>"
            f"top 3: {_head_list(values, map_top_heads(values, 3))} · claims: "
            + ", ".join(f"<code>{_e(c)}</code>" for c in m.get("claims") or []) + "</figcaption></figure>")
    return "\n".join(out)


def _sweeps_html(records: list[dict[str, Any]]) -> str:
    out = []
    for r in records:
        sweeps = (r.get("details") or {}).get("sweeps")
        if not sweeps:
            continue
        for sweep in sweeps if isinstance(sweeps, list) else [sweeps]:
            claim = f"{r.get('id')}[{r.get('target')}]"
            name = sweep.get("name", "sweep") if isinstance(sweep, dict) else "sweep"
            png = sweep_png(sweep, f"{claim}: {name}") if isinstance(sweep, dict) else None
            if png is None:
                out.append(f'<p class="meta">malformed sweep in <code>{_e(claim)}</code> (needs points [[x, y], ...]): '
                           f"<code>{_e(str(sweep)[:160])}</code></p>")
                continue
            out.append(f'<figure><img data-sweep="{_e(claim)}" alt="{_e(name)}" src="data:image/png;base64,{png}">'
                       f"<figcaption><code>{_e(claim)}</code>: {_e(name)}</figcaption></figure>")
    return ('<div class="sweeps">' + "\n".join(out) + "</div>") if out else ""


def _baseline_html(base: dict[str, Any]) -> str:
    out = [f"<p>Compared with <b>{_e(base.get('name'))}</b> (<code>{_e(base.get('path'))}</code>, created "
           f"{_e(base.get('created'))}): {_e(weights_text(base))}.</p>"]
    model = base.get("model") or {}
    if model:
        out.append('<p class="meta">baseline model: ' + ", ".join(f"{_e(k)}={_e(v)}" for k, v in model.items()) + "</p>")
    changes = base.get("env_changes") or []
    incomparable = (base.get("counts") or {}).get("incomparable", 0)
    if split_env_changes(changes)[1]:
        out.append("<p>Claims were compared across the environment changes below (listed, not corrected for)"
                   + (f", except {incomparable} whose probe, data files, probe seed or unit changed (incomparable: "
                      "not compared)" if incomparable else "") + ".</p>")
    if changes:
        out.append("<table><thead><tr><th>changed</th><th>baseline</th><th>now</th></tr></thead><tbody>")
        out += [f"<tr><td>{_e(c.get('key'))}</td><td><code>{_e(c.get('baseline'))}</code></td>"
                f"<td><code>{_e(c.get('current'))}</code></td></tr>" for c in changes]
        out.append("</tbody></table>")
    else:
        out.append("<p>No environment changes since the baseline.</p>")
    missing = base.get("missing") or []
    if missing:
        out.append(f"<p>In the baseline but not run ({len(missing)}): "
                   + ", ".join(f"<code>{_e(k)}</code>" for k in missing) + "</p>")
    return "\n".join(out)


def _env_html(env: dict[str, Any]) -> str:
    rows = [(k, env.get(k)) for k in ("icltest", "torch", "transformers", "python", "platform", "time", "session_seed")
            if env.get(k) is not None]
    out = ["<table><tbody>"] + [f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>" for k, v in rows]
    out.append("</tbody></table>")
    for name, info in (env.get("models") or {}).items():
        facts = ", ".join(f"{_e(k)}=<code>{_e(v)}</code>" for k, v in info.items() if k != "name")
        out.append(f"<p><b>{_e(name)}</b>: {facts}</p>")
    return "\n".join(out)


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (no external references)."""
    records = report.get("claims", [])
    env = report.get("env", {})
    maps = report.get("maps") or []
    base = report.get("baseline")
    sweeps = _sweeps_html(records)
    models = ", ".join(sorted((env.get("models") or {}).keys())) or "-"
    sections = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>icltest report: {report.get('summary', {}).get('passed', 0)}/"
        f"{report.get('summary', {}).get('claims', 0)} passed</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>icltest report</h1>",
        f'<p class="meta">models: {_e(models)} · {_e(env.get("time", ""))} · report schema '
        f'{_e(report.get("schema_version", 1))}</p>',
        '<nav><a href="#claims">claims</a><a href="#maps">head maps</a>'
        + ('<a href="#sweeps">sweeps</a>' if sweeps else "") + ('<a href="#baseline">baseline</a>' if base else "")
        + '<a href="#env">environment</a></nav>',
        _counts_html(report),
        '<h2 id="claims">Claims</h2>', _claims_html(records),
    ]
    if report.get("spec_errors"):
        sections.append("<h2>Spec files with errors</h2>")
        for entry in report["spec_errors"]:
            name, error = (entry.get("file", "?"), entry.get("error", "")) if isinstance(entry, dict) else (entry, "")
            sections.append(f"<p><code>{_e(name)}</code></p><pre>{_e(error)}</pre>")
    sections += ['<h2 id="maps">Head maps</h2>', _maps_html(maps)]
    if sweeps:
        sections += ['<h2 id="sweeps">Sweeps</h2>', sweeps]
    if base:
        sections += ['<h2 id="baseline">Baseline</h2>', _baseline_html(base)]
    sections += ['<h2 id="env">Environment</h2>', _env_html(env), "</body></html>", ""]
    return "\n".join(sections)


def write_html(report: dict[str, Any], path: Path) -> None:
    write_atomic(path, render_html(report))
