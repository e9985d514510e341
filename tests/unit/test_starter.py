"""`icltest scan --write-spec`: the margin rule, the claim choices, and the written spec end to end.

End to end on the constructed known-circuit model (icltest.testing), whose heads are known by
construction: L1H0 induction, L0H0 previous token, L0H1 duplicate token. The written spec must load
with icltest's loader, pass when pytest runs it, and fail once a bound is moved past the value the
plugin measured (so the claims can fail).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from icltest.cli import main
from icltest.starter import build_starter, lower_bound, score_section, upper_bound

KNOWN = {"induction": (1, 0), "previous_token": (0, 0), "duplicate_token": (0, 1)}
SCAN = ["--length", "12", "--repeats", "2", "--batch", "4", "--quiet"]


# ----------------------------------------------------------------------------- the margin rule


def test_lower_bound_relative_term_wins() -> None:
    # min 0.871; sample sd of (0.871, 0.875, 0.895) = 0.01286, 3 sd = 0.0386; 10% of 0.871 = 0.0871 wins;
    # 0.871 - 0.0871 = 0.7839, rounded down to 0.78.
    b = lower_bound([0.871, 0.875, 0.895])
    assert b.term == "relative" and b.margin == pytest.approx(0.0871)
    assert b.sd == pytest.approx(0.012858, abs=1e-6)
    assert b.bound == 0.78


def test_lower_bound_spread_term_wins() -> None:
    # sd of (0.5, 0.7, 0.6) = 0.1 -> margin 0.3 (10% of 0.5 = 0.05, floor 0.02); 0.5 - 0.3 = 0.2.
    b = lower_bound([0.5, 0.7, 0.6])
    assert b.term == "sd" and b.margin == pytest.approx(0.3)
    assert b.bound == 0.2


def test_upper_bound_floor_term_wins_and_rounds_up_without_float_noise() -> None:
    # no spread, 10% of 0.05 = 0.005 < floor 0.02: 0.05 + 0.02 = 0.07 (not 0.08 from 7.000000000000001).
    b = upper_bound([0.05, 0.05, 0.05])
    assert b.term == "floor" and b.bound == 0.07
    # a larger floor: 0.018 + 0.05 = 0.068 -> 0.07; one seed has no spread.
    assert upper_bound([0.018, 0.017, 0.018], floor=0.05).bound == 0.07
    assert lower_bound([0.5]).bound == 0.45  # 0.5 - 10% of 0.5


# ----------------------------------------------------------------------------- claim choices on hand-made tables


def _tables(*per_seed: dict[tuple[int, int], float], shape: tuple[int, int] = (3, 4), rest: float = 0.01):
    out = []
    for values in per_seed:
        t = [[rest] * shape[1] for _ in range(shape[0])]
        for (l, h), v in values.items():
            t[l][h] = v
        out.append(t)
    return out


def test_kept_heads_rank_top_k_and_population_claims() -> None:
    tables = _tables({(2, 1): 0.90, (2, 3): 0.86, (0, 2): 0.10},
                     {(2, 1): 0.92, (2, 3): 0.85, (0, 2): 0.12},
                     {(2, 1): 0.91, (2, 3): 0.88, (0, 2): 0.11})
    section = score_section("induction", tables, [0, 1, 2], top=3)
    claims = {c.id: c for c in section.claims}
    # two heads stand out; the 3rd best by mean (L0H2, ~0.11) has a bound under the 0.2 head floor
    assert claims["induction-L2H1"].bound == 0.81  # 0.90 - 0.09
    assert claims["induction-L2H3"].bound == 0.76  # 0.85 - 0.085 = 0.765
    assert "induction-L0H2" not in claims and any("L0H2" in n for n in section.notes)
    # L2H3 is within L2H1's margin (0.09) at every seed: tied, so rank <= 2
    assert claims["induction-L2H1-rank"].op == "<=" and claims["induction-L2H1-rank"].bound == 2
    # the 2nd best per seed: 0.86, 0.85, 0.88 -> 0.85 - 0.085 = 0.765 -> 0.76
    assert claims["induction-top2"].heads == {"top": 2, "by": "induction"} and claims["induction-top2"].bound == 0.76
    # layers 0-1 (max 0.10/0.12/0.11 at L0H2): sd 0.01, 3 sd = 0.03 beats floor 0.02 -> 0.12 + 0.03 = 0.15
    assert claims["induction-layers0-1-below"].op == "<" and claims["induction-layers0-1-below"].bound == 0.15
    assert claims["induction-layers0-1-below"].heads == {"layers": [0, 1], "heads": None}
    # the other heads of layer 2: 0.01 everywhere -> 0.01 + 0.02 = 0.03
    assert claims["induction-L2-others-below"].heads == {"layers": [2], "heads": [0, 2]}
    assert claims["induction-L2-others-below"].bound == 0.03


def test_a_clear_leader_gets_rank_one_and_a_noisy_head_is_not_kept() -> None:
    tables = _tables({(1, 0): 0.95, (1, 1): 0.60, (0, 0): 0.7},
                     {(1, 0): 0.96, (1, 1): 0.62, (0, 0): 0.1},
                     {(1, 0): 0.94, (1, 1): 0.61, (0, 0): 0.4})
    section = score_section("previous_token", tables, [0, 1, 2], top=3)
    ids = [c.id for c in section.claims]
    assert "previous_token-L1H0" in ids and "previous_token-L1H1" in ids
    # L0H0 has the 3rd-best mean (0.4) but swings 0.1-0.7: min 0.1 - 3 sd (0.9) is far below 0
    assert "previous_token-L0H0" not in ids and any("L0H0" in n for n in section.notes)
    # nothing comes within L1H0's margin (10% of 0.94) at any seed: rank <= 1
    rank = next(c for c in section.claims if c.kind == "head_rank")
    assert rank.heads == [(1, 0)] and rank.bound == 1
    # layer 0 holds L0H0 (up to 0.7, sd 0.3): 0.7 + 0.9 is above 1, so no claim on it
    assert "previous_token-layers0-below" not in ids
    assert any("layers 0" in n or "layer 0" in n for n in section.notes)


def test_no_standout_head_gives_only_a_population_claim_and_never_a_vacuous_one() -> None:
    flat = _tables({(0, 0): 0.03}, {(0, 0): 0.04}, {(0, 0): 0.035})
    section = score_section("induction", flat, [0, 1, 2])
    assert [c.id for c in section.claims] == ["induction-layers0-2-below"]
    assert section.claims[0].bound == 0.06  # 0.04 + 0.02
    assert any("no head stands out" in n for n in section.notes)
    # every head near 1 but none stable: the bound would be >= 1, which no score exceeds: no claim at all
    saturated = _tables({}, {}, rest=0.99)
    saturated[1][0][0] = 0.5
    section = score_section("induction", saturated, [0, 1])
    assert all(c.op != "<" for c in section.claims)
    assert any("at or above 1" in n for n in section.notes)


def test_prefix_matching_equal_to_induction_is_skipped_with_a_note() -> None:
    t = _tables({(1, 0): 0.9}, {(1, 0): 0.92})
    starter = build_starter("smollm2-135m", {"kind": "repeated_random", "length": 50, "repeats": 2, "batch": 16,
                                             "seed": 0, "bos": "auto"}, [0, 1],
                            {"induction": t, "prefix_matching": t}, ["induction", "prefix_matching"])
    assert not [c for c in starter.claims if c.score == "prefix_matching"]
    assert "prefix_matching equals induction" in starter.text
    assert starter.text.count("model: smollm2-135m") == 1


# ----------------------------------------------------------------------------- end to end on the known circuit


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from icltest.testing import build_known_circuit

    return build_known_circuit().save(tmp_path_factory.mktemp("known") / "model")


def _expect_of(text: str, claim_id: str) -> str:
    block = text.split(f"  - id: {claim_id}\n", 1)[1].split("  - id:", 1)[0]
    return re.search(r'expect: "(.*)"', block).group(1)


def _set_expect(text: str, claim_id: str, expect: str) -> str:
    head, block = text.split(f"  - id: {claim_id}\n", 1)
    block = re.sub(r'expect: ".*"', f'expect: "{expect}"', block, count=1)
    return head + f"  - id: {claim_id}\n" + block


def _run_spec(spec: Path) -> tuple[int, dict[str, bool], dict[str, float]]:
    """pytest on one spec file, in this process (a nested run, as a user's `pytest spec.yaml`; no pytester:
    its teardown drops modules first imported during the test, and torch's cannot be imported twice).
    Returns the exit code and each claim's verdict and value from the --icl-json report."""
    report = spec.with_suffix(".json")
    code = pytest.main([str(spec), "-q", "-p", "no:cacheprovider", "--rootdir", str(spec.parent),
                        "--icl-json", str(report)])
    claims = json.loads(report.read_text())["claims"]
    return int(code), {c["id"]: c["passed"] for c in claims}, {c["id"]: c["value"] for c in claims}


def test_written_spec_loads_passes_and_can_fail(tmp_path: Path, model_dir: Path, monkeypatch, capsys) -> None:
    from icltest.schema import load_spec

    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").symlink_to(model_dir)  # a relative --model, as a user in their project would give
    spec = Path("specs") / "kc.yaml"
    assert main(["scan", "--model", "model", *SCAN, "--write-spec", str(spec)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {spec}" in out and f"pytest {spec}" in out

    # (1)-(2) it loads with icltest's loader; model: is the folder given relative to the spec's own
    # folder, so it resolves to the same model; probe: the scan's at seed 0
    assert 'model: {path: "../model"}' in spec.read_text()
    loaded = load_spec(spec)
    assert Path(loaded.spec.model.path) == model_dir.resolve()
    probe = loaded.spec.defaults.probe
    assert (probe.length, probe.repeats, probe.batch, probe.seed) == (12, 2, 4, 0)
    listed = {(c.score, (c.heads[0].layer, c.heads[0].head)) for c in loaded.spec.claims
              if c.kind == "head_score" and isinstance(c.heads, list)}
    assert listed == {(score, head) for score, head in KNOWN.items()}  # the heads built into the model
    ranks = {(c.score, (c.head.layer, c.head.head)) for c in loaded.spec.claims if c.kind == "head_rank"}
    assert ranks == {(score, head) for score, head in KNOWN.items()}
    text = spec.read_text()
    assert all(not re.search(r'expect: "(>=|>) 0"', line) for line in text.splitlines())  # no vacuous bound

    # (3) pytest runs it and every claim passes
    code, passed, measured = _run_spec(spec)
    assert code == 0 and len(passed) == len(loaded.spec.claims) and all(passed.values())
    capsys.readouterr()

    # (4) the top induction head's bound moved just above what the plugin measured: that claim fails,
    # and so does a population bound moved just below the maximum the plugin measured
    top = "induction-L1H0"
    pop = next(i for i in measured if i.startswith("induction-layers"))
    assert float(_expect_of(text, top).split()[1]) < measured[top]
    raised = spec.parent / "raised.yaml"
    raised.write_text(_set_expect(text, top, f">= {measured[top] + 0.001:.6f}"))
    lowered = spec.parent / "lowered.yaml"
    lowered.write_text(_set_expect(text, pop, f"< {measured[pop] - 0.001:.6f}"))
    for path, failing in ((raised, top), (lowered, pop)):
        code, passed, _ = _run_spec(path)
        assert code == 1 and [i for i, ok in passed.items() if not ok] == [failing]


def test_existing_file_is_not_overwritten_without_force(tmp_path: Path, model_dir: Path, capsys) -> None:
    spec = tmp_path / "kc.yaml"
    spec.write_text("keep me\n")
    assert main(["scan", "--model", "no-such-model-xyz", *SCAN, "--write-spec", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--force" in err and str(spec) in err  # refused before any load
    assert spec.read_text() == "keep me\n"
    assert main(["scan", "--model", str(model_dir), *SCAN, "--write-spec", str(spec), "--force"]) == 0
    assert spec.read_text().startswith("# Starter spec") and not list(tmp_path.glob(".kc.yaml.*"))


@pytest.mark.parametrize("option, value, words", [
    ("--spec-seeds", "0,x", "--spec-seeds"),
    ("--spec-seeds", "1,1", "repeated"),
    ("--margin", "0", "--margin"),
    ("--spec-top", "0", "--spec-top"),
    ("--length", "1", "probe options"),
])
def test_bad_options_are_one_line_exit_2(tmp_path: Path, model_dir: Path, capsys, option, value, words) -> None:
    spec = tmp_path / "x.yaml"
    assert main(["scan", "--model", str(model_dir), *SCAN, option, value, "--write-spec", str(spec)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("icltest scan")]
    assert len(err) == 1 and words in err[0]
    assert not spec.exists()


def test_model_entry_names_the_model_as_a_spec_would(tmp_path: Path, monkeypatch) -> None:
    from icltest.cli import build_parser
    from icltest.schema.base import ModelRef
    from icltest.starter import model_entry

    def entry(*argv: str, spec: str = "specs/m.yaml"):
        return model_entry(build_parser().parse_args(["scan", *argv, "--write-spec", spec]), Path(spec))

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "m1").mkdir(parents=True)
    assert entry("--model", "smollm2-135m") == "smollm2-135m"
    assert entry("--model", "gemma3-270m", "--dtype", "bfloat16") == {"alias": "gemma3-270m", "dtype": "bfloat16"}
    assert entry("--model", "org/name", "--revision", "abc") == {"id": "org/name", "revision": "abc"}
    assert entry("--model", "models/m1") == {"path": "../models/m1"}  # relative to specs/, where the loader looks
    assert entry("--path", str(tmp_path / "models" / "m1")) == {"path": str(tmp_path / "models" / "m1")}
    for value in ("smollm2-135m", {"id": "org/name", "revision": "abc"}, {"path": "../models/m1"}):
        ModelRef.model_validate(value)  # each is a valid model: entry


COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_model_entry_pins_the_commit_a_hub_model_was_loaded_at(tmp_path: Path, monkeypatch) -> None:
    from icltest.cli import build_parser
    from icltest.starter import model_entry

    def entry(*argv: str, info=None):
        return model_entry(build_parser().parse_args(["scan", *argv, "--write-spec", "m.yaml"]), Path("m.yaml"), info)

    monkeypatch.chdir(tmp_path)
    # what loading.py reports for a hub id: revision as asked (or the commit), commit as resolved
    assert entry("--model", "org/name", info={"revision": COMMIT, "commit": COMMIT}) == {"id": "org/name",
                                                                                          "revision": COMMIT}
    assert entry("--model", "org/name", "--revision", "main",
                 info={"revision": "main", "commit": COMMIT}) == {"id": "org/name", "revision": COMMIT}
    assert entry("--model", "org/name", "--revision", "v1",
                 info={"revision": "v1", "commit": None}) == {"id": "org/name", "revision": "v1"}
    assert entry("--model", "org/name", info={"revision": "unknown", "commit": None}) == {"id": "org/name"}
    # aliases and folders are pinned by their files, not by a hub revision
    assert entry("--model", "smollm2-135m", info={"revision": "gguf-sha256:abcd", "commit": None}) == "smollm2-135m"


def test_write_spec_for_a_hub_id_pins_the_scanned_commit(tmp_path: Path, model_dir: Path, monkeypatch,
                                                         capsys) -> None:
    import dataclasses

    from icltest.models.loading import ModelSource
    from icltest.schema import load_spec
    from icltest.session import Session

    real = Session.model
    asked = []

    def hub_model(self, source):  # the known-circuit folder, reported as a hub model at COMMIT
        asked.append((source.id, source.revision))
        loaded = real(self, ModelSource(path=str(model_dir)))
        return dataclasses.replace(loaded, info={**loaded.info, "revision": "main", "commit": COMMIT})

    monkeypatch.setattr(Session, "model", hub_model)
    spec = tmp_path / "hub.yaml"
    assert main(["scan", "--model", "org/tiny", "--revision", "main", *SCAN, "--write-spec", str(spec)]) == 0
    assert asked == [("org/tiny", "main")]
    model = load_spec(spec).spec.model
    assert (model.id, model.revision) == ("org/tiny", COMMIT)
