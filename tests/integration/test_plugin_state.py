"""Plugin state: one session per pytest run (in ``config.stash``), loaded models shared per process.

Runs go through pytester in this process, so a second run would see a module-global session if
there were one; each run must count its own forward passes and see its own ``--icl-seed``, while
the model (seconds to minutes to load for real weights) is loaded once.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

CLAIM = ("  - id: prev\n    kind: head_score\n    score: previous_token\n    heads: [0.0]\n    expect: '>= 0.9'\n"
         "    probe: {kind: repeated_random, length: 20, repeats: 2, batch: 8, seed: 3}\n")


def test_no_module_global_session() -> None:
    import icltest.session as session_module

    assert not any(hasattr(session_module, name) for name in ("_SESSION", "get_session", "set_session"))


def test_each_run_has_its_own_session_and_models_load_once_per_process(
        pytester: pytest.Pytester, circuit_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import icltest.session as session_module

    loads: list[object] = []
    real_load = session_module.load_model

    def counting_load(source, cache_dir=None):
        loads.append(source)
        return real_load(source, cache_dir)

    monkeypatch.setattr(session_module, "load_model", counting_load)
    monkeypatch.setattr(session_module, "_LOADED", {})  # as if this were a fresh process
    pytester.makefile(".yaml", icl_state=f"schema_version: 1\nmodel: {{path: '{circuit_dir}'}}\nclaims:\n{CLAIM}")
    reports = []
    for seed in ("3", "4"):
        pytester.runpytest("--icl-json", f"run{seed}.json", "--icl-seed", seed, "-p", "no:cacheprovider")
        reports.append(json.loads((pytester.path / f"run{seed}.json").read_text()))
    # One probe -> one forward pass in each run: the second run does not inherit the first's count.
    assert [r["summary"]["forward_passes"] for r in reports] == [1, 1]
    assert [r["env"]["session_seed"] for r in reports] == [3, 4]
    assert len(loads) == 1  # the second run reused the loaded model


def test_fixtures_and_conftests_read_the_session_from_the_config(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_reads_session='''
        from icltest.plugin import SESSION_KEY, session_of
        from icltest.session import Session

        def test_session(request):
            session = session_of(request.config)
            assert isinstance(session, Session) and session is request.config.stash[SESSION_KEY]
            assert session.seed == 5 and session.forward_passes == 0
    ''')
    pytester.runpytest("--icl-seed", "5", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_plugin_object_is_registered_per_run_and_removed_after(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plugin_object='''
        def test_registered(request):
            plugin = request.config.pluginmanager.get_plugin("icltest-session")
            assert plugin is not None and plugin.config is request.config
    ''')
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(passed=1)
    config = reprec.getcall("pytest_sessionstart").session.config
    assert config.pluginmanager.get_plugin("icltest-session") is None  # unregistered at unconfigure
