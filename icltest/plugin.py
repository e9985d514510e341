"""pytest hooks and options for icltest spec files.

Loads no torch/transformers at import: models load lazily inside the first item that needs one.
A spec file (ini ``icl_spec_paths`` patterns, or a file named on the command line; see
:mod:`icltest.discovery`) becomes a collector with one item per claim x target. A bad spec file
is a collection error for that file only; unlike pytest's default for collection errors, the
other files still run.

State lives on one :class:`IcltestPlugin` object per pytest run, built in ``pytest_configure``
and kept in ``config.stash`` (as pytest's own junitxml and stepwise plugins do): a nested run
(pytester) gets its own session, results and spec errors, and shares only the process's loaded
models. Items and fixtures reach the session through ``config.stash[SESSION_KEY]``.
"""
from __future__ import annotations

import bisect
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from icltest.session import Session

SESSION_KEY = pytest.StashKey["Session"]()
"""The run's :class:`icltest.session.Session` in ``config.stash`` (for conftest fixtures)."""
_PLUGIN_KEY = pytest.StashKey["IcltestPlugin"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("icltest", "icltest: mechanistic claims as tests")
    options = [
        ("json", "write every claim's measured result and the environment as JSON to PATH"),
        ("markdown", "write a Markdown pass/fail report to PATH"),
        ("html", "write a self-contained HTML report (claim table, a layer x head heatmap per score) to PATH"),
        ("cache", "folder for dequantized GGUF weights (default $ICLTEST_CACHE or ~/.cache/icltest)"),
        ("device", "override every spec's model device (cpu, cuda, cuda:1, mps)"),
        ("dtype", "override every spec's model dtype (float32, bfloat16, float16)"),
        ("seed", "session seed: property claims derive their Hypothesis seeds from it and the claim id (default 0)"),
        ("model", "model for the icl_model fixture in your own tests (alias, hub id or folder)"),
    ]
    for name, help_text in options:
        group.addoption(f"--icl-{name}", dest=f"icl_{name}", default=None, metavar=name.upper(), help=help_text)
        parser.addini(f"icl_{name}", help_text, default=None)
    from icltest.discovery import DEFAULT_SPEC_PATHS

    parser.addini("icl_spec_paths", "glob patterns of spec files to collect (a pattern without '/' matches the file "
                  "name anywhere, one with '/' the path from the rootdir); a file named on the command line is "
                  f"collected when its head mentions schema_version (default: {' '.join(DEFAULT_SPEC_PATHS)})", type="args",
                  default=list(DEFAULT_SPEC_PATHS))
    group.addoption("--icl-no-summary", action="store_true", dest="icl_no_summary",
                    help="do not print the claim table at the end of the run")
    from icltest.baseline_plugin import add_options as add_baseline_options

    add_baseline_options(group, parser)


def _opt(config: pytest.Config, name: str) -> Any:
    value = config.getoption(f"icl_{name}")
    return value if value is not None else config.getini(f"icl_{name}")


def _register_hypothesis_profiles() -> None:
    """`--hypothesis-profile icltest-dev|icltest-ci`; claims scale their budget by max_examples/100."""
    from hypothesis import HealthCheck, settings

    if "icltest-ci" in getattr(settings, "_profiles", {}):
        return
    settings.register_profile("icltest-dev", max_examples=100, deadline=None)
    settings.register_profile("icltest-ci", max_examples=50, deadline=None, derandomize=True, database=None,
                              print_blob=True, suppress_health_check=list(HealthCheck))


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' own plugin loads --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    _register_hypothesis_profiles()
    config.addinivalue_line("markers", "icltest: an icltest claim item (added to every claim)")
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist loadgroup grouping")
    _group_by_model(config)
    from icltest.session import Session

    cache, seed = _opt(config, "cache"), _opt(config, "seed")
    try:
        seed_value = int(seed) if seed not in (None, "") else 0
    except ValueError:
        raise pytest.UsageError(f"--icl-seed must be an integer, got {seed!r}") from None
    plugin = IcltestPlugin(config, Session(cache_dir=Path(cache) if cache else None, seed=seed_value))
    config.stash[_PLUGIN_KEY] = plugin
    config.stash[SESSION_KEY] = plugin.session
    config.pluginmanager.register(plugin, "icltest-session")
    from icltest.baseline_plugin import configure as configure_baseline

    plugin.baseline = configure_baseline(config, plugin)  # None unless a baseline option is given


def _group_by_model(config: pytest.Config) -> None:
    """Under ``pytest -n N``, send every item of one model to one worker (icltest.scaleout).

    Only xdist's default mode (``load``, what ``-n`` alone means) and ``loadgroup`` are replaced;
    ``loadscope``, ``loadfile`` and ``worksteal`` are left as the user asked.
    """
    option = config.option
    if getattr(option, "numprocesses", None) and getattr(option, "dist", None) in ("load", "loadgroup"):
        option.icl_group_by_model = True


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: absent without xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if getattr(config.option, "icl_group_by_model", False):
        from icltest.scaleout import ModelGroupScheduling

        return ModelGroupScheduling(config, log)
    return None


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.stash.get(_PLUGIN_KEY, None)
    if plugin is not None:
        del config.stash[_PLUGIN_KEY]
        del config.stash[SESSION_KEY]
        config.pluginmanager.unregister(plugin)


def session_of(config: pytest.Config) -> "Session":
    """The icltest session of a pytest run (models, probes and runs it has cached)."""
    try:
        return config.stash[SESSION_KEY]
    except KeyError:
        raise pytest.UsageError("the icltest plugin is not active in this run "
                                "(was it disabled with -p no:icltest?)") from None


class SpecFileCollector(pytest.File):
    """One spec file: validates it, then yields a ClaimItem per claim x target."""

    def collect(self):
        from icltest.claims import claim_module
        from icltest.schema import load_spec

        loaded = load_spec(self.path)
        model = loaded.spec.model or _cli_model_ref(self.config)
        if model is None:
            from icltest.schema import SpecError

            raise SpecError.single(loaded.location(()), "model",
                                   "this spec names no model: and no --icl-model was given; add `model: <alias or "
                                   "hub id>` to the file, or run it on a model: pytest PATH --icl-model smollm2-135m")
        _check_fit(self.config, loaded, model)
        file_marks = list(loaded.spec.marks)
        for mark in set(file_marks).union(*(c.marks for c in loaded.spec.claims)):
            if mark not in _registered_marks(self.config):  # spec marks are declared by the spec itself
                self.config.addinivalue_line("markers", f"{mark}: icltest spec mark from {self.path.name}")
        for index, claim in enumerate(loaded.spec.claims):
            module = claim_module(claim.kind)
            for target_index, target in enumerate(module.targets(claim)):
                item = ClaimItem.from_parent(
                    self, name=f"{claim.id}[{target.id}]", spec=loaded, index=index, target=target, model=model,
                    target_index=target_index,
                )
                for mark in file_marks + list(claim.marks):
                    item.add_marker(_strict_xfail(item) if mark == "xfail" else mark)
                item.add_marker("icltest")
                item.add_marker(pytest.mark.xdist_group(name=_model_label(model)))
                yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):  # type: ignore[override]
        from icltest.errors import IcltestError
        from icltest.schema import SpecError

        exc = excinfo.value
        if isinstance(exc, IcltestError):  # the first line marks it for IcltestPlugin.pytest_collectreport
            if isinstance(exc, SpecError):
                return f"icltest spec error\n{exc}"
            return f"icltest error in {self.path.name}\n{type(exc).__name__}: {exc}"
        return super().repr_failure(excinfo)


def _strict_xfail(item: "ClaimItem") -> pytest.MarkDecorator:
    """A spec's ``xfail`` documents a *measured* known failure, so it must be able to fail.

    A bare xfail would count anything as the expected failure (a head out of range, a load
    error) and let a claim that now passes go by as XPASS with exit 0: a release gate could not
    trust it. Only :class:`ClaimFailed` (measured, did not meet its expectation) is expected;
    another exception is reported as the error it is, and a pass fails the run (strict).
    """
    return pytest.mark.xfail(raises=ClaimFailed, strict=True,
                             reason=f"known failure documented by the spec's xfail mark ({item.location_of()})")


def _check_fit(config: pytest.Config, loaded: Any, model: Any) -> None:
    """Heads and probes against the model's config at collection, when that is cheap (icltest.schema.fit)."""
    from icltest.schema.fit import check_at_collection

    check_at_collection(session_of(config), loaded, _model_source(config, model))


def _model_source(config: pytest.Config, model: Any) -> Any:
    """The ModelSource for a spec's model ref, with --icl-device / --icl-dtype applied."""
    from dataclasses import replace

    from icltest.models.loading import ModelSource

    source = ModelSource.from_ref(model)
    device, dtype = _opt(config, "device"), _opt(config, "dtype")
    if device or dtype:
        source = replace(source, device=device or source.device, dtype=dtype or source.dtype)
    return source


def _cli_model_ref(config: pytest.Config) -> Any:
    """The model ``--icl-model`` / ``icl_model`` names (alias, hub id or folder), or None."""
    from icltest.schema.spec import ModelRef

    name = _opt(config, "model")
    if not name:
        return None
    return ModelRef.model_validate(name if not Path(name).is_dir() else {"path": name})


def _registered_marks(config: pytest.Config) -> set[str]:
    return {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}


def _model_label(model: Any) -> str:
    for attr in ("alias", "id", "path"):
        value = getattr(model, attr, None)
        if value:
            return str(value)
    return "model"


class ClaimFailed(Exception):
    """A claim was measured and did not meet its expectation."""


class ClaimItem(pytest.Item):
    """One claim x target: loads the model (once per session), measures, judges."""

    def __init__(self, *, spec: Any, index: int, target: Any, model: Any, target_index: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec, self.index, self.target, self.model = spec, index, target, model
        self.target_index = target_index
        self.claim = spec.spec.claims[index]
        self.record: dict[str, Any] | None = None
        # pytest-xdist's --dist loadgroup appends "@<group>" to node ids (pytest < 9); records and
        # replay commands use the id a serial run (and a user's command line) knows.
        self.claim_nodeid = self.nodeid

    def order(self) -> list[Any]:
        """Where this item stands in a serial run: spec file (from the rootdir), claim, target.

        Reports sort their records by it, so a run split over pytest-xdist workers (which finish
        in any order) writes the same JSON as the serial run.
        """
        try:
            rel = self.path.relative_to(self.config.rootpath).as_posix()
        except ValueError:
            rel = self.path.as_posix()
        return [rel, self.index, self.target_index]

    def location_of(self, path: tuple = ()) -> str:
        return self.spec.location(("claims", self.index) + tuple(path))

    def _model_ref(self) -> Any:
        return _model_source(self.config, self.model)

    def _model_where(self) -> str:
        """Where the model was named: the spec's ``model:`` key, or the --icl-model option."""
        if self.spec.spec.model is not None:
            return f"{self.spec.source.where(('model',), key=True)}: model"
        return f"--icl-model {_opt(self.config, 'model')}"

    def _check_fit(self, loaded: Any) -> None:
        """The collection-time fit check on the loaded model (the only one for uncached hub ids)."""
        from icltest.errors import ClaimSpecError
        from icltest.schema.fit import fit_problems

        problems = fit_problems(self.spec, loaded.geometry, [self.index])
        if problems:
            raise ClaimSpecError(problems[0].where, problems[0].key, problems[0].message)

    def _probe_spec(self) -> Any:
        from icltest.schema.spec import ProbeSpec

        defaults = getattr(self.spec.spec, "defaults", None)
        return self.claim.probe or (defaults.probe if defaults and defaults.probe else None) or ProbeSpec()

    def runtest(self) -> None:
        from icltest.claims import claim_module
        from icltest.claims.base import ClaimContext
        from icltest.report.records import claim_record

        module = claim_module(self.claim.kind)
        session = session_of(self.config)
        start = time.perf_counter()
        loaded = session.model(self._model_ref())
        self._check_fit(loaded)
        ctx = ClaimContext(session, loaded, self._probe_spec(), self.location_of)
        measurement = module.measure(self.claim, self.target, ctx)
        verdict = module.judge(self.claim, self.target, measurement)
        self.record = claim_record(self, verdict, loaded.info, time.perf_counter() - start)
        run = getattr(self.config.stash.get(_PLUGIN_KEY, None), "baseline", None)  # --icl-baseline in use
        regressed = run.judge(self, self.record, module, verdict.passed) if run is not None else None
        # JUnit XML properties (pytest --junitxml): pytest writes item.user_properties under every
        # junit_family, the default xunit2 included; only its record_property fixture warns there.
        self.user_properties.append(("icl_value", measurement.value))
        self.user_properties.append(("icl_expect", verdict.expect))
        self.user_properties.append(("icl_passed", verdict.passed))
        self.user_properties.append(("icl_unit", measurement.unit))
        self.user_properties.append(("icl_record", json.dumps(self.record, default=str)))
        if not verdict.passed or regressed is not None:
            raise ClaimFailed(verdict, regressed)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):  # type: ignore[override]
        """A user's mistake (any IcltestError) is a short message; anything else is a bug: a traceback."""
        from icltest.errors import DeviceUnavailable, IcltestError, ModelError
        from icltest.report.records import failure_text

        exc = excinfo.value
        if isinstance(exc, ClaimFailed):
            return failure_text(self, exc.args[0], baseline=exc.args[1] if len(exc.args) > 1 else None)
        if isinstance(exc, ModelError):  # one line at the model's key: the same for every item of the model
            option = isinstance(exc, DeviceUnavailable) and _opt(self.config, "device")
            self._error_record(str(exc))
            return f"{type(exc).__name__}: {self._model_where()}: {exc}" + (" [device from --icl-device]" if option else "")
        if isinstance(exc, IcltestError):
            self._error_record(str(exc))
            return f"{type(exc).__name__}: {exc}\n  spec: {self.location_of()}\n  replay: {self.replay()}"
        self._error_record(f"{type(exc).__name__}: {exc}")
        return super().repr_failure(excinfo)

    def _error_record(self, message: str) -> None:
        self.record = {
            "id": self.claim.id, "kind": self.claim.kind, "target": self.target.id, "item": self.claim_nodeid,
            "passed": False, "error": message, "spec": self.location_of(), "order": self.order(),
        }
        self.user_properties.append(("icl_record", json.dumps(self.record, default=str)))

    def replay(self) -> str:
        seed = _opt(self.config, "seed")
        return f"pytest '{self.claim_nodeid}'" + (f" --icl-seed {seed}" if seed not in (None, "", "0") else "")

    def reportinfo(self):
        line = int(self.location_of().rsplit(":", 2)[-2]) - 1 if self.location_of().count(":") >= 2 else 0
        return self.path, line, f"{self.claim.kind} {self.name}"


@pytest.fixture(scope="session")
def icl_model(request: pytest.FixtureRequest) -> Any:
    """The model named by ``--icl-model`` / ``icl_model`` ini, loaded once (for your own @given tests)."""
    from icltest.models.aliases import ModelUnavailable
    from icltest.models.loading import ModelSource
    ref = _cli_model_ref(request.config)
    if ref is None:
        pytest.skip("icl_model needs --icl-model (an alias such as smollm2-135m, a hub id or a folder)")
    try:
        return session_of(request.config).model(ModelSource.from_ref(ref))
    except ModelUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def icl_vocab(request: pytest.FixtureRequest, icl_model: Any) -> Any:
    """The drawable (non-special) vocabulary of ``icl_model``, for icltest.strategies."""
    return session_of(request.config).vocab(icl_model)


class IcltestPlugin:
    """One pytest run's icltest state: its session, the claim records and the spec files that failed.

    Registered in ``pytest_configure`` and kept in ``config.stash``; its methods are the hooks
    that need that state, so two runs in one process (pytester) never see each other's.
    """

    def __init__(self, config: pytest.Config, session: "Session") -> None:
        self.config, self.session = config, session
        self.results: list[dict[str, Any]] = []
        self.spec_errors: list[dict[str, str]] = []
        self.baseline: Any = None  # icltest.baseline_plugin.BaselineRun while a baseline option is in use

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        """Spec files only: ``icl_spec_paths`` patterns or named on the command line (icltest.discovery)."""
        from icltest import discovery

        if file_path.suffix not in (".yaml", ".yml"):
            return None
        named = parent.session.isinitpath(file_path)
        if not named and not discovery.matches(file_path, self.config.rootpath, self.config.getini("icl_spec_paths")):
            return None
        if discovery.looks_like_spec(file_path, named):
            return SpecFileCollector.from_parent(parent, path=file_path)
        return None

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Record a spec file that failed to collect, from its report rather than the collector.

        Under xdist the collectors run in the workers and only their reports reach the controller,
        which writes the JSON / Markdown files; serially the same hook sees the same reports.
        """
        text = str(report.longrepr) if report.failed else ""
        header, _, error = text.partition("\n")
        if header == "icltest spec error" or header.startswith("icltest error in "):
            if all(e["file"] != report.nodeid for e in self.spec_errors):
                self.spec_errors.append({"file": report.nodeid, "error": error})

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        """Let the other files run when only spec files failed to collect (pytest would stop)."""
        errors = len(self.spec_errors)
        session.testsfailed -= errors
        yield
        session.testsfailed += errors

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == "icl_record" and (report.when == "call" or report.failed):
                record = json.loads(value)
                record["outcome"] = report.outcome
                if hasattr(report, "wasxfail"):
                    record["xfail"] = True  # a documented known failure (spec mark xfail)
                elif report.failed and "[XPASS(strict)]" in str(report.longrepr):
                    # The claim held under its xfail mark: the gate's verdict for the item is a failure.
                    record.update(passed=False, xpass_strict=True, claim_passed=bool(record.get("passed")))
                from icltest.report.records import serial_key

                bisect.insort(self.results, record, key=serial_key)  # xdist delivers in completion order
                break

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        """Keep the claim record out of the teardown report: JUnit XML writes its properties from that one.

        ``icl_record`` (the whole record as JSON, maps included) carries the result from a
        pytest-xdist worker to the controller on the call report (or the failed setup report),
        where :meth:`pytest_runtest_logreport` reads it; in ``--junitxml`` it would only bloat every
        testcase. Each report copies ``user_properties``, so the earlier reports keep it. The
        measured value stays in ``icl_value``, ``icl_expect``, ``icl_passed`` and ``icl_unit``;
        the full record is in the JSON report.
        """
        if isinstance(item, ClaimItem):
            item.user_properties[:] = [p for p in item.user_properties if p[0] != "icl_record"]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        config = self.config
        if hasattr(config, "workerinput"):  # xdist worker: the controller writes files
            return
        json_path, md_path, html_path = _opt(config, "json"), _opt(config, "markdown"), _opt(config, "html")
        if not (json_path or md_path or html_path):
            return
        from icltest.report import build_report, write_html, write_json, write_markdown

        # Under xdist the passes happen in workers; the controller's count would be a lie.
        passes = None if config.pluginmanager.hasplugin("dsession") else self.session.forward_passes
        self.spec_errors.sort(key=lambda e: e["file"])
        report = build_report(self.results, self.spec_errors, forward_passes=passes, session_seed=self.session.seed)
        if self.baseline is not None and self.baseline.comparing:  # the baseline's facts, env changes, counts
            report["baseline"] = self.baseline.summary(report["claims"])
        if json_path:
            write_json(report, Path(json_path))
        if md_path:
            write_markdown(report, Path(md_path))
        if html_path:
            write_html(report, Path(html_path))

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if config.getoption("icl_no_summary") or not self.results:
            return
        from icltest.report import terminal_lines

        terminalreporter.section("icltest claims")
        comparing = self.baseline is not None and self.baseline.comparing
        for line in terminal_lines(self.results, self.baseline.summary(self.results) if comparing else None):
            terminalreporter.write_line(line)
        for name in ("json", "markdown", "html"):
            if _opt(config, name):
                terminalreporter.write_line(f"icltest {name} report: {_opt(config, name)}")
