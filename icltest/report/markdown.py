"""Markdown report: a verdict table first, details after, readable at a glance."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from icltest.report.build import _fmt
from icltest.report.files import write_atomic
from icltest.report.sweeps import sweep_section


def _table(records: list[dict[str, Any]]) -> list[str]:
    out = ["| | claim | measured | expected | summary | spec |", "|---|---|---|---|---|---|"]
    for r in records:
        mark = "✅" if r.get("passed") else ("➖ xfail" if r.get("xfail") else ("⚠️" if "error" in r else (
            "❌ XPASS(strict)" if r.get("xpass_strict") else "❌")))  # strict: a stale xfail mark fails the run
        summary = (r.get("summary") or r.get("error") or "").replace("|", "\\|").replace("\n", " ")
        out.append(
            f"| {mark} | `{r['id']}[{r['target']}]` | {_fmt(r.get('value'))} | `{r.get('expect', '-')}` "
            f"| {summary} | `{r.get('spec', '')}` |"
        )
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
    failed = [r for r in report["claims"] if not r.get("passed") and not r.get("xfail")]
    if failed:
        out += ["## Failed", ""] + _table(failed) + ["", "## All claims", ""]
    out += _table(report["claims"])
    out += sweep_section(report["claims"])
    if report.get("spec_errors"):
        out += ["", "## Spec files with errors", ""] + _spec_errors(report["spec_errors"])
    out += ["", "## Models", ""]
    for name, info in env.get("models", {}).items():
        facts = ", ".join(f"{k}={v}" for k, v in info.items() if k != "name")
        out.append(f"- **{name}**: {facts}")
    probes = sorted({r["probe"] for r in report["claims"] if r.get("probe")})
    if probes:
        out += ["", "## Probes", ""] + [f"- `{p}`" for p in probes]
    out += [
        "", "## Environment", "",
        ", ".join(f"{k} {env[k]}" for k in ("icltest", "torch", "transformers", "python") if env.get(k)),
        f"on {env.get('platform')}, {env.get('time')}", "",
    ]
    return "\n".join(out)


def write_markdown(report: dict[str, Any], path: Path) -> None:
    write_atomic(path, render_markdown(report))
