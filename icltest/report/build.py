"""Assemble claim records and environment facts into one report dict."""
from __future__ import annotations

import platform
import sys
import time
from importlib import metadata
from typing import Any


REPORT_SCHEMA_VERSION = 2
"""The report JSON's ``schema_version`` (its change log: :mod:`icltest.report.json`)."""


def package_version(package: str) -> str | None:
    """The installed version of ``package``, or None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Library versions and platform: every result must say what produced it."""
    return {
        "icltest": package_version("icltest"),
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def build_report(
    records: list[dict[str, Any]], spec_errors: list[dict[str, str]] | None = None, forward_passes: int | None = None,
    session_seed: int | None = None,
) -> dict[str, Any]:
    models: dict[str, dict[str, Any]] = {}
    for record in records:
        model = record.get("model")
        if model and model.get("name"):
            models[model["name"]] = model
    passed = sum(1 for r in records if r.get("passed"))
    xfailed = sum(1 for r in records if r.get("xfail") and not r.get("passed"))
    env = environment()
    env["models"] = models
    env["session_seed"] = session_seed
    from icltest.report.maps import merge_maps

    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "summary": {
            "claims": len(records), "passed": passed, "failed": len(records) - passed - xfailed,
            "xfailed": xfailed,
            "spec_errors": len(spec_errors or []), "forward_passes": forward_passes,
        },
        "claims": records,
        "spec_errors": list(spec_errors or []),
        "maps": merge_maps(records),
        "env": env,
    }


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:  # a float-precision value (e.g. a relative error) is not 0.0000
            return f"{value:.2e}"
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1 else f"{value:.4f}"
    return "-" if value is None else str(value)


def status_of(record: dict[str, Any]) -> str:
    """PASS, FAIL, XFAIL (a documented known failure), ERROR or XPASS(strict) (a stale xfail: fails the run)."""
    if record.get("passed"):
        return "PASS"
    if record.get("xfail"):
        return "XFAIL"
    if "error" in record:
        return "ERROR"
    return "XPASS(strict)" if record.get("xpass_strict") else "FAIL"


def baseline_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """The record's comparison with the baseline (``record["baseline"]``), or None."""
    base = record.get("baseline")
    return base if isinstance(base, dict) else None


def regression(record: dict[str, Any]) -> str | None:
    """How a record's regression against the baseline counted for its item.

    None: not regressed. ``"failing"``: the regression fails the item. ``"accepted"``: the run took
    its values as the new baseline (``--icl-update-baseline``; the item passed, or failed on its
    own expectation only). ``"xfail"``: the claim is marked xfail, and that mark alone decides the
    item (an expected failure, or an XPASS(strict) when the claim held).
    """
    base = baseline_of(record) or {}
    if base.get("verdict") != "regressed":
        return None
    if base.get("accepted") in ("xfail", "update"):  # set by the plugin when it did not fail the item
        return "xfail" if base["accepted"] == "xfail" else "accepted"
    if record.get("xfail") or record.get("xpass_strict"):
        return "xfail"
    if record.get("passed"):
        return "accepted"
    return "failing"


def regressed(record: dict[str, Any]) -> bool:
    """The record regressed against the baseline and that fails its item (not accepted, not xfail)."""
    return regression(record) == "failing"


def verdict_label(record: dict[str, Any]) -> str | None:
    """The baseline verdict as shown: ``regressed (accepted)`` / ``regressed (xfail)`` for a
    regression that did not fail its item, else the verdict; None without a baseline."""
    base = baseline_of(record)
    if base is None:
        return None
    return {"accepted": ACCEPTED, "xfail": XFAIL_REGRESSED}.get(regression(record) or "", base.get("verdict"))


def fmt_delta(value: Any) -> str:
    """A signed change: +0.0123, -1.5e-05, or - when there is none."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    value = float(value)
    if value != value:
        return "nan"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:+.2e}"
    return f"{value:+.0f}" if value.is_integer() and abs(value) >= 1 else f"{value:+.4f}"


def verdict_counts(counts: dict[str, int]) -> dict[str, int]:
    """Baseline verdict counts to show: regressed, improved, pass, new, incomparable order, zeros left out."""
    order = {v: i for i, v in enumerate(VERDICT_ORDER)}
    return {k: n for k, n in sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])) if n}


def baseline_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """Shown verdict (:func:`verdict_label`) -> number of records (only records compared with a
    baseline; zeros left out): ``regressed`` counts only the regressions that fail their item."""
    counts: dict[str, int] = {}
    for r in records:
        verdict = verdict_label(r)
        if verdict:
            counts[verdict] = counts.get(verdict, 0) + 1
    return verdict_counts(counts)


def shown_counts(records: list[dict[str, Any]], baseline: dict[str, Any] | None) -> dict[str, int]:
    """The verdict counts a report header shows: from the records (they tell accepted and xfail
    regressions apart), else the report's ``baseline.counts``."""
    return baseline_counts(records) or verdict_counts((baseline or {}).get("counts") or {})


ACCEPTED = "regressed (accepted)"
XFAIL_REGRESSED = "regressed (xfail)"
VERDICT_ORDER = ("regressed", XFAIL_REGRESSED, ACCEPTED, "improved", "pass", "new", "incomparable")
WEIGHT_FACTS = ("name", "weights_sha256", "gguf_sha256", "revision")
"""Model facts that name the weights: in a release comparison they differ by design."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def not_compared_line(records: list[dict[str, Any]], baseline: dict[str, Any] | None) -> str | None:
    """``3 claims not compared (2 new, 1 incomparable) and 1 baseline claim did not run``; None when
    every claim was compared and every baseline claim ran."""
    counts = shown_counts(records, baseline)
    parts = [f"{counts[v]} {v}" for v in ("new", "incomparable") if counts.get(v)]
    missing = len((baseline or {}).get("missing") or [])
    out = []
    if parts:
        out.append(f"{_plural(counts.get('new', 0) + counts.get('incomparable', 0), 'claim')} not compared "
                   f"({', '.join(parts)})")
    if missing:
        out.append(f"{_plural(missing, 'baseline claim')} did not run")
    return " and ".join(out) or None


def split_env_changes(changes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(changes to which weights ran: model name, weights sha256, revision; the rest: dtype, device,
    library versions, session seed, task data), each in the given order."""
    def names_weights(change: dict[str, Any]) -> bool:
        key = str(change.get("key", ""))
        return key.startswith("model") and key.rsplit(".", 1)[-1] in WEIGHT_FACTS
    return [c for c in changes if names_weights(c)], [c for c in changes if not names_weights(c)]


def weights_text(baseline: dict[str, Any]) -> str:
    """Whether this run's weights are the baseline's, by file hash: ``weights differ from the
    baseline's (sha256 1a2b3c4d5e6f -> ...)``, ``same weights as the baseline (sha256)``, ..."""
    same = baseline.get("same_weights")
    if same:
        return "same weights as the baseline (sha256)"
    if same is None:
        return "weights not compared"
    hashes = [c for c in baseline.get("env_changes") or [] if str(c.get("key", "")).endswith("_sha256")]
    if hashes and all(c.get("baseline") and c.get("current") for c in hashes):
        return "weights differ from the baseline's (sha256 " + ", ".join(
            f"{str(c['baseline'])[:12]} -> {str(c['current'])[:12]}" for c in hashes) + ")"
    return "weights not matched with the baseline's (a sha256 is unknown)"


def terminal_lines(records: list[dict[str, Any]], baseline: dict[str, Any] | None = None) -> list[str]:
    """A fixed-width table: status, item, measured, expected, (baseline, delta, verdict,) spec line.

    With a baseline, regressions that fail their item come first (the rest keep their order) and
    three columns show the baseline's value, the change and the verdict. ``baseline`` (the
    report's ``baseline``) adds the count of baseline claims that did not run.
    """
    with_baseline = any(baseline_of(r) for r in records)
    header = ("", "claim", "measured", "expected") + (("baseline", "delta", "vs baseline") if with_baseline else ()) + ("spec",)
    rows = [header]
    ordered = [r for r in records if regressed(r)] + [r for r in records if not regressed(r)]
    for r in ordered:
        row = (status_of(r), f"{r['id']}[{r['target']}]", fmt_value(r.get("value")), str(r.get("expect", "-")))
        if with_baseline:
            base = baseline_of(r) or {}
            row += (fmt_value(base.get("value")), fmt_delta(base.get("delta")), str(verdict_label(r) or "-"))
        rows.append(row + (str(r.get("spec", "")),))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    passed = sum(1 for r in records if r.get("passed"))
    tail = f"{passed}/{len(records)} claims passed"
    counts = shown_counts(records, baseline)
    if counts:
        tail += "; against the baseline: " + ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    lines.append(tail)
    uncompared = not_compared_line(records, baseline)
    if uncompared:
        lines.append(uncompared)
    return lines
