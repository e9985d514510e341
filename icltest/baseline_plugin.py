"""The pytest side of baselines: options, the per-item comparison, saving, the terminal line.

:mod:`icltest.baseline` holds the file format and the comparison; this module connects them to a
pytest run. The plugin (:mod:`icltest.plugin`) calls :func:`add_options` and :func:`configure`,
asks :meth:`BaselineRun.judge` for each judged item, and puts :meth:`BaselineRun.summary` into the
JSON report. A :class:`BaselineRun` is registered as its own plugin object only while a baseline
option is in use, for the save at session end and the terminal line.

Under pytest-xdist every process reads the baseline once (workers compare their items); only the
controller (``not hasattr(config, "workerinput")``), which receives every item's record, writes.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from icltest import baseline as bl


def add_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption("--icl-save-baseline", dest="icl_save_baseline", default=None, metavar="NAME",
                    help="save every claim's value, statistics and the environment as baseline NAME "
                         "(<icl_baseline_dir>/NAME.json; a name with '/' or ending .json is a path)")
    group.addoption("--icl-baseline", dest="icl_baseline", default=None, metavar="NAME|PATH",
                    help="compare every claim with baseline NAME|PATH; a claim that dropped by more than its "
                         "tolerance (baseline: {max_drop: X}, defaults.baseline or --icl-max-drop) fails")
    group.addoption("--icl-update-baseline", action="store_true", dest="icl_update_baseline", default=False,
                    help="rewrite the baseline named by --icl-baseline with this run (regressions are reported, "
                         "not failed)")
    group.addoption("--icl-baseline-strict", action="store_true", dest="icl_baseline_strict", default=False,
                    help="with --icl-baseline: also fail the run when a claim is new, incomparable (probe or data "
                         "changed) or in the baseline but not run")
    group.addoption("--icl-max-drop", dest="icl_max_drop", default=None, metavar="X",
                    help="tolerance for claims whose spec sets no baseline.max_drop (a number >= 0)")
    parser.addini("icl_baseline_dir", "folder for baselines named without a path, relative to the rootdir "
                  "(default: baselines)", default="baselines")


def _max_drop(text: Any) -> float | None:
    if text in (None, ""):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise pytest.UsageError(f"--icl-max-drop must be a number >= 0 (e.g. 0.05), got {text!r}")
    return value


class BaselineRun:
    """One pytest run's baseline options, the loaded baseline (once per process) and its results."""

    def __init__(self, config: pytest.Config, icl_plugin: Any) -> None:
        self.config, self.icl = config, icl_plugin
        opt = config.getoption
        compare, save, self.update = opt("icl_baseline"), opt("icl_save_baseline"), bool(opt("icl_update_baseline"))
        self.max_drop = _max_drop(opt("icl_max_drop"))
        self.strict = bool(opt("icl_baseline_strict"))
        if self.update and not compare:
            raise pytest.UsageError("--icl-update-baseline rewrites the baseline named by --icl-baseline; give "
                                    "--icl-baseline NAME too (or --icl-save-baseline NAME for a new one)")
        if self.update and save:
            raise pytest.UsageError("give --icl-update-baseline (with --icl-baseline NAME) or --icl-save-baseline "
                                    "NAME, not both")
        if self.strict and not compare:
            raise pytest.UsageError("--icl-baseline-strict applies to a comparison; give --icl-baseline NAME too")
        if self.max_drop is not None and not compare:
            raise pytest.UsageError("--icl-max-drop is the tolerance for comparing with a baseline; give "
                                    "--icl-baseline NAME too")
        folder = config.getini("icl_baseline_dir") or "baselines"
        root = config.rootpath
        try:
            self.path = bl.resolve_path(compare, root, folder) if compare else None
            self.save_path = bl.resolve_path(save, root, folder) if save else None
        except bl.BaselineError as exc:
            raise pytest.UsageError(f"--icl-baseline / --icl-save-baseline: {exc}") from None
        self.name = _name(compare, self.path) if compare else None
        self.save_name = _name(save, self.save_path) if save else None
        self.data: dict[str, Any] | None = None
        self._index: bl.EntryIndex | None = None
        self.deselected = 0
        self.notes: list[str] = []
        self._summary: dict[str, Any] | None = None
        if self.path is not None:
            try:
                self.data = bl.load(self.path, self.shown(self.path))
            except bl.BaselineError as exc:
                if not self.update:
                    raise pytest.UsageError(f"--icl-baseline {compare}: {exc}") from None
                self.notes.append(f"{exc} (rewritten by --icl-update-baseline)")
                self.data = {"schema_version": bl.SCHEMA_VERSION, "name": self.name, "env": {}, "claims": {}}

    @property
    def comparing(self) -> bool:
        return self.data is not None

    def shown(self, path: Path) -> str:
        return bl.display(path, self.config.rootpath)

    # ------------------------------------------------------------------ per item

    def judge(self, item: Any, record: dict[str, Any], module: Any, claim_passed: bool) -> dict[str, Any] | None:
        """Compare one item's record with the baseline: sets ``record["baseline"]`` and returns it
        with the baseline's name and path when the item must fail (regressed), else None."""
        if self.data is None:
            return None
        settings = bl.claim_settings(item.claim, getattr(item.spec.spec, "defaults", None), self.max_drop, module)
        if self._index is None:
            self._index = bl.EntryIndex(self.data["claims"])
        key, how = self._index.find(record)
        entry = self.data["claims"].get(key) if key else None
        result = bl.compare(record, entry, max_drop=settings["max_drop"], direction=settings["direction"],
                            tolerance_from=settings["tolerance_from"], direction_why=settings["direction_why"])
        result["max_drop_from"] = settings["tolerance_from"] or None
        result["key"] = key
        if key and how != "key":
            result["reason"] += f" (baseline entry {key}, matched by {how})"
        fails = result["verdict"] == "regressed"
        if fails and self.update:
            result["reason"] += " (not failed: --icl-update-baseline accepts this run)"
            result["accepted"] = "update"
            fails = False
        elif fails and item.get_closest_marker("xfail") is not None:
            # The xfail mark documents a known failure of the claim's expectation; it alone decides the item.
            result["reason"] += " (not failed: the claim is marked xfail)"
            result["accepted"] = "xfail"
            fails = False
        record["baseline"] = result
        item.user_properties.append(("icl_baseline_verdict", result["verdict"]))
        item.user_properties.append(("icl_baseline_value", result["value"]))
        item.user_properties.append(("icl_delta", result["delta"]))
        if not fails:
            return None
        record.update(passed=False, claim_passed=claim_passed)  # the item fails: reports count it so
        return {**result, "name": self.name, "path": self.shown(self.path)}  # type: ignore[arg-type]

    # ------------------------------------------------------------------ session end

    def summary(self, records: list[dict[str, Any]]) -> dict[str, Any] | None:
        """``report["baseline"]`` for this run's records (None when not comparing)."""
        if self.data is None:
            return None
        if self._summary is None:
            self._summary = bl.summarize(self.data, records, path=self.shown(self.path),  # type: ignore[arg-type]
                                         session_seed=self.icl.session.seed)
        return self._summary

    def pytest_deselected(self, items: list[Any]) -> None:
        self.deselected += len(items)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):  # xdist worker: the controller has every record and writes
            return
        records = self.icl.results  # kept in serial order by the plugin
        summary = self.summary(records)
        if summary is not None and not self.update:
            self._gate(session, summary, records)
        target = self.save_path if self.save_path is not None else (self.path if self.update else None)
        if target is None:
            return
        name = self.save_name if self.save_path is not None else (self.data or {}).get("name") or self.name
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            self.notes.append(f"baseline {name!r} not written: the run was interrupted")
            return
        document = bl.build(str(name), records, self.icl.session.seed)
        if not document["claims"]:
            self.notes.append(f"baseline {name!r} not written: no claim produced a value")
            return
        kept = 0
        if target == self.path and self.data:  # update: claims this run did not measure keep their entries
            matched = {(r.get("baseline") or {}).get("key") for r in records}
            for key, entry in self.data.get("claims", {}).items():
                if key not in matched and key not in document["claims"]:
                    document["claims"][key] = entry
                    kept += 1
            document["claims"] = dict(sorted(document["claims"].items()))
        bl.save(target, document)
        errors = sum(1 for r in records if "error" in r)
        stopped = bool(session.shouldstop) or bool(session.shouldfail)
        self.notes.append(f"icltest baseline {name!r} {'updated' if target == self.path else 'saved'}: "
                          f"{self.shown(target)} ({len(document['claims'])} claims"
                          + (f"; {kept} kept from the old file (not run now)" if kept else "")
                          + (f"; {errors} that errored are not in it" if errors else "")
                          + (f"; {self.deselected} deselected item(s) are not in it" if self.deselected
                             and target != self.path else "")
                          + ("; the run stopped early (-x / --maxfail): items after that are not in it"
                             if stopped else "")
                          + (f"; {len(self.icl.spec_errors)} spec file(s) failed to collect" if self.icl.spec_errors
                             else "") + ")")

    def _gate(self, session: pytest.Session, summary: dict[str, Any], records: list[dict[str, Any]]) -> None:
        """Fail the run when nothing was compared, and (--icl-baseline-strict) on uncompared claims."""
        counts = summary.get("counts", {})
        compared = sum(counts.get(v, 0) for v in ("pass", "regressed", "improved"))
        judged = [r for r in records if r.get("baseline")]
        fail = False
        matched = [r for r in judged if r["baseline"].get("key")]
        if judged and not compared and not matched:
            self.notes.append(
                f"FAILED: none of this run's {len(judged)} claim items is in baseline {self.name!r} (it holds "
                f"{len(self.data.get('claims', {}))} other claims): nothing was compared. Wrong baseline, or were "
                "the claims renamed? (save a new one with --icl-save-baseline, or accept with --icl-update-baseline)")
            fail = True
        elif judged and not compared:
            self.notes.append(
                f"FAILED: all {len(matched)} claim items found in baseline {self.name!r} are incomparable (their "
                "probe, its data files, seed or unit changed): nothing was compared. Save a new baseline with "
                "--icl-save-baseline, or accept this run with --icl-update-baseline")
            fail = True
        if self.strict:
            loose = {v: counts.get(v, 0) for v in ("new", "incomparable") if counts.get(v)}
            missing = len(summary.get("missing") or [])
            if loose or missing:
                parts = [f"{n} {v}" for v, n in loose.items()] + ([f"{missing} missing"] if missing else [])
                self.notes.append(f"FAILED (--icl-baseline-strict): {', '.join(parts)}: every claim must be "
                                  "compared with the baseline")
                fail = True
        if fail and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        lines = []
        if self._summary is not None:
            lines.append(bl.summary_line(self._summary))
            regressed = [r for r in self.icl.results if (r.get("baseline") or {}).get("verdict") == "regressed"]
            failing = [r for r in regressed if not r["baseline"].get("accepted")]
            accepted = [r for r in regressed if r["baseline"].get("accepted")]
            if failing:
                lines.append("  regressed: " + ", ".join(bl.claim_key(r) for r in failing))
            if accepted:
                lines.append("  regressed, not failed (--icl-update-baseline or xfail): "
                             + ", ".join(bl.claim_key(r) for r in accepted))
        lines += self.notes
        if lines:
            terminalreporter.write_sep("-", "icltest baseline")
            for line in lines:
                terminalreporter.write_line(line)


def _name(given: str, path: Path | None) -> str:
    text = str(given).strip()
    return text if path is None or ("/" not in text and "\\" not in text and not text.endswith(".json")) else path.stem


def configure(config: pytest.Config, icl_plugin: Any) -> BaselineRun | None:
    """The run's :class:`BaselineRun` (registered as a plugin), or None when no baseline option is given."""
    opt = config.getoption
    if not any(opt(name, None) for name in ("icl_baseline", "icl_save_baseline", "icl_update_baseline",
                                            "icl_max_drop", "icl_baseline_strict")):
        return None
    run = BaselineRun(config, icl_plugin)
    config.pluginmanager.register(run, "icltest-baseline")
    config.add_cleanup(lambda: config.pluginmanager.unregister(run) if config.pluginmanager.is_registered(run)
                       else None)
    return run
