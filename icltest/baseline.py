"""Baselines: every claim's value saved from one run, compared in a later one.

``pytest --icl-save-baseline v1`` writes ``baselines/v1.json`` (plain, sorted, indented JSON meant
to be committed); ``pytest --icl-baseline v1`` compares each claim's value with it, and a claim
whose value moved in the bad direction by more than its tolerance fails as *regressed*. The
conventions follow pytest-regressions and syrupy: a named file next to the tests, rewritten only
when asked (``--icl-update-baseline``).

File format (``schema_version`` 1)::

    {"schema_version": 1, "name": "v1", "created": "2025-01-01T12:00:00+0000",
     "env": {"models": {name: {weights_sha256, revision, dtype, device, ...}}, "session_seed",
             "libraries": {icltest, torch, transformers, numpy, python}, "data_version"},
     "claims": {"<spec path from the rootdir>::<claim id>[<target>]":
                {"value", "unit", "expect", "passed", "stats", "probe", "probe_version", "seed",
                 "kind", "model"}},
     "nonfinite": {JSON pointer: "nan" | "inf" | "-inf"}}

A claim's key is its pytest node id: the spec file's path relative to the rootdir, ``::``, the
claim id and the target in brackets, e.g. ``specs/smollm2.yaml::induction-heads[L4H12]``.

Verdicts (``compare``): ``pass`` (within tolerance, or not judged), ``regressed`` (moved the bad
way by more than ``max_drop``: the item fails), ``improved`` (moved the good way by more than
``max_drop``), ``new`` (not in the baseline), ``incomparable`` (probe, task data, probe seed or
unit changed: the old number measured something else, so it is reported and not compared).

Tolerance: the claim's ``baseline.max_drop``, else the spec's ``defaults.baseline.max_drop``, else
``--icl-max-drop``; with none of these the claim is compared and reported but cannot regress.
Direction: the claim's ``baseline.direction``, else the defaults', else the claim kind's own
``baseline_direction(claim)`` where the kind's value is not what its ``expect`` bounds (a circuit's
value is its necessity effect even next to ``sufficiency: "<= 0.1"``; a property has no ``expect``),
else its expectation (``>=``/``>`` higher is better, ``<=``/``<`` lower); a spec that sets
``max_drop`` on a claim whose direction cannot be inferred is an error at load time. The spec key is ``baseline`` on every claim kind
(task_accuracy's own comparison condition is its ``reference``, steering's words ``reference_words``).

Identity is by file hash: ``same_weights`` compares the weights' sha256, never model names (a
branch of one checkpoint can serve another's files). Environment changes (weights, revision,
dtype, device, library versions, session seed, task data) are listed, not silently compared.

Torch-free: the spec loader imports this module.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import numbers
import time
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
VERDICTS = ("pass", "regressed", "improved", "new", "incomparable")
COMPARED_MODEL_KEYS = ("weights_sha256", "revision", "dtype", "device")
LIBRARIES = ("icltest", "torch", "transformers", "numpy")
STATS_SKIP = frozenset({"maps", "map", "sweep", "sweeps", "curve", "failure_lines", "also"})
STATS_MAX_LIST = 8
STATS_MAX_ENTRIES = 64
STATS_MAX_DICT = 32
STATS_MAX_DEPTH = 3
_EPS = 1e-9


class BaselineError(Exception):
    """A baseline file that cannot be used, or a bad baseline option: one line, shown as a usage error."""


# ----------------------------------------------------------------------------- paths and keys


def resolve_path(name: str, rootdir: Path, baseline_dir: str | None = None) -> Path:
    """``NAME`` (no ``/``, not ending ``.json``) -> ``<rootdir>/<baseline_dir>/NAME.json``; else a path."""
    name = str(name).strip()
    if not name:
        raise BaselineError("a baseline name is empty; give a name such as v1 or a path such as baselines/v1.json")
    if "/" in name or "\\" in name or name.endswith(".json"):
        return Path(name).expanduser()
    folder = Path(baseline_dir or "baselines").expanduser()
    return (folder if folder.is_absolute() else Path(rootdir) / folder) / f"{name}.json"


def claim_key(record: dict[str, Any]) -> str:
    """``<spec path>::<claim id>[<target>]``; the spec path is relative to the rootdir (absolute for
    a spec outside it, so two such files never share keys)."""
    if record.get("key"):
        return record["key"]
    order = record.get("order")
    if isinstance(order, (list, tuple)) and order and "id" in record and "target" in record:
        return f"{order[0]}::{record['id']}[{record['target']}]"
    return record["item"]


class EntryIndex:
    """Finds a record's baseline entry: by its key, else by spec file name + claim, else by claim alone.

    pytest's rootdir, and with it every key's spec path, moves with the command line (a path given
    as an option's separate argument counts in the rootdir search), so a baseline saved in one
    checkout layout must still match. The fallbacks accept only a baseline entry that is the
    single one with that file name + claim id + target (then: claim id + target).
    """

    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims
        self.by_file: dict[tuple[str, str], list[str]] = {}
        self.by_name: dict[str, list[str]] = {}
        for key in claims:
            file, name = _split_key(key)
            self.by_file.setdefault((Path(file).name, name), []).append(key)
            self.by_name.setdefault(name, []).append(key)

    def find(self, record: dict[str, Any]) -> tuple[str | None, str]:
        """(the baseline key, how it matched: "key", "file name and claim", "claim" or "")."""
        key = claim_key(record)
        if key in self.claims:
            return key, "key"
        file, name = _split_key(key)
        for found, how in ((self.by_file.get((Path(file).name, name), []), "file name and claim"),
                           (self.by_name.get(name, []), "claim")):
            if len(found) == 1:
                return found[0], how
        return None, ""


def _split_key(key: str) -> tuple[str, str]:
    file, sep, name = key.partition("::")
    return (file, name) if sep else ("", key)


def display(path: Path, rootdir: Path | None = None) -> str:
    """``path`` relative to ``rootdir`` when it is inside it (for messages), else as given."""
    if rootdir is not None:
        try:
            return Path(path).resolve().relative_to(Path(rootdir).resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


# ----------------------------------------------------------------------------- versions


@functools.lru_cache(maxsize=1)
def data_version() -> str:
    """sha256 (16 hex digits) over the files shipped under ``icltest/data`` (task sets, corpora).

    Paths are relative and sorted and line endings normalised, so a checkout on another OS gives
    the same value; any edit to a task or corpus file changes it.
    """
    root = Path(__file__).resolve().parent / "data"
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()[:16]


_NO_DATA = ("repeated_random", "hypothesis repeated_random", "hypothesis repeated_with_noise")


def probe_data_files(label: str | None, kind: str | None = None) -> list[Path]:
    """The shipped data files a claim's probe reads, read off its label (and kind).

    Task sets by name (``task open_book(...)`` reads ``tasks/open_book.yaml``), the prose corpus
    for ``natural_text``, ``concepts.yaml`` for steering, none for random tokens. A label that
    names no file but is not random tokens (conflict prompts, few-shot properties) counts every
    data file: unknown means "could have changed", never "cannot have changed".
    """
    import re

    root = Path(__file__).resolve().parent / "data"
    text = label or ""
    tasks = sorted(p for p in (root / "tasks").glob("*.yaml") if re.search(rf"\b{re.escape(p.stem)}\b", text))
    files = list(tasks)
    if "natural_text" in text or "corpus=" in text:
        files += sorted((root / "text").glob("*.yaml"))
    if kind == "steering" or text.startswith("steering"):
        files.append(root / "concepts.yaml")
    if not files and not text.startswith(_NO_DATA):
        files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return files


def probe_version(label: str | None, kind: str | None = None) -> str:
    """A claim's probe/data version: its probe label (kind, parameters, seed) plus the content of
    the data files that probe reads (:func:`probe_data_files`), so editing one task set leaves the
    claims on other tasks comparable."""
    root = Path(__file__).resolve().parent / "data"
    digest = hashlib.sha256(f"{label or ''}\n".encode())
    for path in probe_data_files(label, kind):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()[:16]


def current_env(records: list[dict[str, Any]], session_seed: int | None) -> dict[str, Any]:
    """The environment facts a baseline stores and compares, from this run's records."""
    import sys

    from icltest.report.build import package_version
    from icltest.report.records import MODEL_KEYS

    models: dict[str, dict[str, Any]] = {}
    for record in records:
        model = record.get("model") or {}
        if model.get("name"):
            models[model["name"]] = {k: model[k] for k in MODEL_KEYS if model.get(k) is not None}
    libraries: dict[str, Any] = {name: package_version(name) for name in LIBRARIES}
    libraries["python"] = sys.version.split()[0]
    return {"models": models, "session_seed": session_seed, "libraries": libraries, "data_version": data_version()}


# ----------------------------------------------------------------------------- stats


def _number(value: Any) -> Any:
    """int/float as JSON-safe numbers (non-finite -> None); anything else -> ``_SKIP``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return _SKIP
    if isinstance(value, numbers.Integral):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


_SKIP = object()


def extract_stats(details: dict[str, Any] | None) -> dict[str, Any]:
    """Scalar numbers from a measurement's details, as ``dotted.key -> number``.

    Per-head maps, sweeps, curves and long lists are left out (they belong in the report, not in a
    file meant to be reviewed in a diff), and so are timings (``*seconds*``); short lists of numbers (up to 8) keep their positions
    (``key.0``), dicts are followed three levels deep, and at most 64 entries are kept.
    """
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any, depth: int) -> None:
        if len(out) >= STATS_MAX_ENTRIES:
            return
        number = _number(value)
        if number is not _SKIP:
            out[prefix] = number
        elif isinstance(value, dict):
            if depth >= STATS_MAX_DEPTH or len(value) > STATS_MAX_DICT:
                return
            for key in sorted(value, key=str):
                if str(key) not in STATS_SKIP and "seconds" not in str(key):  # timings churn the diff
                    walk(f"{prefix}.{key}" if prefix else str(key), value[key], depth + 1)
        elif isinstance(value, (list, tuple)) and 0 < len(value) <= STATS_MAX_LIST:
            numbers_ = [_number(v) for v in value]
            if all(n is not _SKIP for n in numbers_):
                for i, n in enumerate(numbers_):
                    out[f"{prefix}.{i}"] = n

    walk("", details or {}, 0)
    return dict(list(out.items())[:STATS_MAX_ENTRIES])


# ----------------------------------------------------------------------------- file


def build(name: str, records: list[dict[str, Any]], session_seed: int | None,
          created: str | None = None) -> dict[str, Any]:
    """The baseline document for this run's records (claims that errored have no value: left out)."""
    claims: dict[str, Any] = {}
    from icltest.report.records import in_serial_order

    for record in in_serial_order(records):
        if "value" not in record or "error" in record:
            continue
        claims[claim_key(record)] = {
            "value": record.get("value"), "unit": record.get("unit"), "expect": record.get("expect"),
            "passed": bool(record.get("claim_passed", record.get("passed"))),
            "stats": extract_stats(record.get("details")),
            "probe": record.get("probe"), "probe_version": probe_version(record.get("probe"), record.get("kind")),
            "seed": record.get("seed"), "kind": record.get("kind"),
            "model": (record.get("model") or {}).get("name"),
        }
    return {
        "schema_version": SCHEMA_VERSION, "name": name,
        "created": created or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "env": current_env([r for r in records if "error" not in r], session_seed), "claims": claims,
    }


def dumps(document: dict[str, Any]) -> str:
    """Strict JSON (non-finite numbers -> null, listed under ``nonfinite``), sorted keys, indent 2."""
    from icltest.report.json import _finite

    nonfinite: dict[str, str] = {}
    clean = _finite({k: v for k, v in document.items() if k != "nonfinite"}, "", nonfinite)
    clean["nonfinite"] = nonfinite
    return json.dumps(clean, indent=2, sort_keys=True, allow_nan=False, default=str) + "\n"


def save(path: Path, document: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a baseline, a failed write keeps the old one."""
    from icltest.report.files import write_atomic

    write_atomic(Path(path), dumps(document))


def load(path: Path, shown: str | None = None) -> dict[str, Any]:
    """Read and check a baseline file.

    Raises:
        BaselineError: missing, unreadable, not JSON, or not a baseline (one line saying what to do).
    """
    path = Path(path)
    shown = shown or str(path)
    remedy = "create it with --icl-save-baseline NAME (or rewrite it with --icl-update-baseline)"
    if not path.is_file():
        raise BaselineError(f"baseline file {shown} does not exist; {remedy}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"cannot read baseline file {shown} ({type(exc).__name__}: {exc}); {remedy}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline file {shown} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                            f"{exc.msg}); {remedy}") from None
    if isinstance(data, dict) and "summary" in data and isinstance(data.get("claims"), list):
        raise BaselineError(f"{shown} is an icltest report (pytest --icl-json), not a baseline; compare two reports "
                            "with icltest diff A.json B.json, or save this run's values as a baseline with "
                            "--icl-save-baseline NAME")
    if not isinstance(data, dict) or not isinstance(data.get("claims"), dict):
        raise BaselineError(f"{shown} is not an icltest baseline (no 'claims' mapping); {remedy}")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise BaselineError(f"baseline file {shown} has schema_version {data.get('schema_version')!r}; this icltest "
                            f"reads {SCHEMA_VERSION}; {remedy}")
    for key, entry in data["claims"].items():
        if not isinstance(entry, dict) or "value" not in entry:
            raise BaselineError(f"baseline file {shown}: claim {key!r} has no value; {remedy}")
    if not isinstance(data.get("env", {}), dict):
        raise BaselineError(f"baseline file {shown}: 'env' is not a mapping; {remedy}")
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        data["name"] = path.stem  # a hand-made or renamed file: messages name it by its file, never "None"
    return data


# ----------------------------------------------------------------------------- direction and tolerance


def comparison_direction(comparison: Any) -> str | None:
    """``>=``/``>`` -> higher, ``<=``/``<`` -> lower; between, ``==``, ``!=`` -> None."""
    op = getattr(comparison, "op", None)
    return "higher" if op in (">=", ">") else ("lower" if op in ("<=", "<") else None)


def first_direction(*comparisons: Any, default: str | None = None) -> str | None:
    """The direction of the first of ``comparisons`` that has one (None entries skipped), else ``default``.

    For claim kinds' ``baseline_direction`` hooks: list the comparisons that bound the claim's
    value (or a number that moves with it), most direct first; ``default`` is the way the value is
    better by its nature (accuracy higher, an error lower), used when none of them says.
    """
    for comparison in comparisons:
        direction = comparison_direction(comparison) if comparison is not None else None
        if direction is not None:
            return direction
    return default


def expectation_direction(claim: Any, module: Any = None) -> tuple[str | None, str]:
    """Which way is better for a claim's value: (direction, why not).

    A claim kind whose ``Measurement.value`` is not simply what its top-level ``expect`` bounds
    says itself: ``baseline_direction(claim) -> "higher" | "lower" | None`` in its module (found
    from ``claim.kind`` when ``module`` is not given); its answer is final, None included (the
    kind cannot tell for this claim, so the spec must say). Otherwise: the claim's ``expect`` when
    it is one comparison; when ``expect`` is a block (``{rank: ...}``, ``{drop: ...}``), the
    comparisons set in it when they all point the same way. Anything else (``between``, ``==``,
    mixed directions, no ``expect``) needs ``baseline: {direction: ...}``.
    """
    from pydantic import BaseModel

    from icltest.schema.expect import Comparison

    if module is None and isinstance(getattr(claim, "kind", None), str):
        try:
            from icltest.claims import claim_module

            module = claim_module(claim.kind)
        except Exception:  # an unknown or broken kind: its spec fails elsewhere; infer from expect
            module = None
    hook = getattr(module, "baseline_direction", None) if module is not None else None
    if callable(hook):
        direction = hook(claim)
        if direction in ("higher", "lower"):
            return direction, ""
        return None, (f"its {claim.kind} claim's expectation does not say whether a higher or lower value "
                      "is better")
    expect = getattr(claim, "expect", None)
    if isinstance(expect, Comparison):
        comparisons = [expect]
    elif isinstance(expect, BaseModel):
        comparisons = [v for v in (getattr(expect, name) for name in type(expect).model_fields)
                       if isinstance(v, Comparison)]
    else:
        return None, f"its {claim.kind} claim has no single expectation to take a direction from"
    directions = {comparison_direction(c) for c in comparisons}
    if len(directions) == 1 and None not in directions:
        return directions.pop(), ""
    text = "; ".join(str(c) for c in comparisons) or "none"
    return None, f"its expectation ({text}) does not say whether higher or lower is better"


def claim_settings(claim: Any, defaults: Any, session_max_drop: float | None,
                   module: Any = None) -> dict[str, Any]:
    """The tolerance and direction one claim is compared with, and where each came from."""
    own = getattr(claim, "baseline", None)
    spec = getattr(defaults, "baseline", None) if defaults is not None else None
    if own is not None and own.max_drop is not None:
        max_drop, source = own.max_drop, "the claim's baseline.max_drop"
    elif spec is not None and spec.max_drop is not None:
        max_drop, source = spec.max_drop, "the spec's defaults.baseline.max_drop"
    elif session_max_drop is not None:
        max_drop, source = session_max_drop, "--icl-max-drop"
    else:
        max_drop, source = None, ""
    why = ""
    if own is not None and own.direction:
        direction = own.direction
    elif spec is not None and spec.direction:
        direction = spec.direction
    else:
        direction, why = expectation_direction(claim, module)
    return {"max_drop": max_drop, "tolerance_from": source, "direction": direction, "direction_why": why}


def spec_problems(spec: Any, source: Any) -> list[Any]:
    """Claims that set a tolerance (their own or the spec's defaults) with no direction to apply it in."""
    from icltest.schema.errors import SpecProblem

    problems = []
    defaults = getattr(spec, "defaults", None)
    for index, claim in enumerate(spec.claims):
        own = getattr(claim, "baseline", None)
        default = getattr(defaults, "baseline", None) if defaults is not None else None
        has_drop = (own is not None and own.max_drop is not None) or (default is not None and default.max_drop is not None)
        if not has_drop or (own is not None and own.direction) or (default is not None and default.direction):
            continue
        module = None
        try:
            from icltest.claims import claim_module

            module = claim_module(claim.kind)
        except Exception:  # the kind validated, so its module loads; a hook is optional anyway
            pass
        direction, why = expectation_direction(claim, module)
        if direction is None:
            path = ("claims", index, "baseline") if own is not None else ("claims", index)
            line = source.where(("defaults", "baseline"), key=True).rsplit(":", 2)[-2]
            origin = "" if own is not None and own.max_drop is not None else f" (from defaults.baseline, line {line})"
            problems.append(SpecProblem(source.where(path, key=own is not None), f"claims[{index}].baseline",
                                        f"max_drop{origin} needs a direction, but {why}; add "
                                        "baseline: {direction: higher} or {direction: lower}"))
    return problems


# ----------------------------------------------------------------------------- comparison


def fmt_value(x: Any) -> str:
    return "-" if x is None else (f"{x:.4g}" if isinstance(x, float) else str(x))


def compare(current: dict[str, Any], entry: dict[str, Any] | None, *, max_drop: float | None,
            direction: str | None, tolerance_from: str = "", direction_why: str = "") -> dict[str, Any]:
    """One claim's verdict against its baseline entry.

    Args:
        current: ``value``, ``unit``, ``probe`` and ``seed`` measured now (a record has them).
        entry: the baseline's entry for the claim's key, or None.
        max_drop: the tolerance (None: compared and reported, never regressed).
        direction: ``higher`` / ``lower`` (None: compared and reported, never judged).

    Returns:
        ``{"verdict", "value", "delta", "max_drop", "direction", "reason"}``: ``value`` is the
        baseline's, ``delta`` = current - baseline.
    """
    out: dict[str, Any] = {"verdict": "pass", "value": None, "delta": None, "max_drop": max_drop,
                           "direction": direction, "reason": ""}
    if entry is None:
        return {**out, "verdict": "new", "reason": "not in the baseline"}
    base = entry.get("value")
    out["value"] = base
    label = current.get("probe")
    if entry.get("probe_version") != probe_version(label, current.get("kind")):
        if entry.get("probe") != label:
            why = f"the probe changed ({entry.get('probe')!r} -> {label!r})"
        else:
            names = ", ".join(p.name for p in probe_data_files(label, current.get("kind")))
            why = (f"the data files this probe reads changed ({names})" if names
                   else "the probe's version changed (same label, made by another icltest)")
        return {**out, "verdict": "incomparable", "reason": f"{why}: not compared"}
    if entry.get("seed") != current.get("seed"):
        return {**out, "verdict": "incomparable",
                "reason": f"the probe seed changed ({entry.get('seed')} -> {current.get('seed')}): not compared"}
    if entry.get("unit") != current.get("unit"):
        return {**out, "verdict": "incomparable",
                "reason": f"the value measures something else now ({entry.get('unit')!r} -> {current.get('unit')!r})"}
    if not _finite_number(base):
        return {**out, "verdict": "incomparable", "reason": "the baseline value is not a number: not compared"}
    value = current.get("value")
    if not _finite_number(value):
        if max_drop is None:
            return {**out, "reason": f"measured {value} (baseline {fmt_value(base)}); no tolerance set, so it cannot regress"}
        return {**out, "verdict": "regressed", "reason": f"measured {value} where the baseline measured {fmt_value(base)}"}
    delta = float(value) - float(base)
    out["delta"] = delta
    moved = f"{fmt_value(base)} -> {fmt_value(float(value))} ({delta:+.4g})"
    if direction is None:
        return {**out, "reason": f"{moved}; not judged: {direction_why or 'no direction'}"}
    drop = -delta if direction == "higher" else delta
    worse = "fell" if direction == "higher" else "rose"
    better = "rose" if direction == "higher" else "fell"
    if max_drop is None:
        return {**out, "reason": f"{moved}; no tolerance set (the claim's baseline.max_drop, the spec's "
                                 "defaults.baseline or --icl-max-drop), so it cannot regress"}
    where = f" ({tolerance_from})" if tolerance_from else ""
    if _beyond(drop, max_drop):
        return {**out, "verdict": "regressed",
                "reason": f"{worse} {moved}, more than max_drop {max_drop:g}{where}"}
    if _beyond(-drop, max_drop):
        return {**out, "verdict": "improved",
                "reason": f"{better} {moved}, more than max_drop {max_drop:g}"}
    return {**out, "reason": f"{moved}, within max_drop {max_drop:g}{where}"}


def _finite_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))


def _beyond(move: float, tolerance: float) -> bool:
    """``move > tolerance``, with float noise at the edge counted as equal (0.9 - 0.85 is not > 0.05)."""
    return move > tolerance and not math.isclose(move, tolerance, rel_tol=_EPS, abs_tol=1e-12)


# ----------------------------------------------------------------------------- run summary


def _hash_of(model: dict[str, Any] | None) -> str | None:
    model = model or {}
    return model.get("weights_sha256") or model.get("gguf_sha256")


def model_pairs(baseline: dict[str, Any], records: list[dict[str, Any]]) -> list[tuple[str | None, str | None]]:
    """(baseline model name, current model name) for the models the same claim keys ran on."""
    claims = baseline.get("claims", {})
    pairs = set()
    for record in records:
        matched = (record.get("baseline") or {}).get("key")
        entry = claims.get(matched) if matched else None
        name = (record.get("model") or {}).get("name")
        if entry is not None and name:
            pairs.add((entry.get("model"), name))
    if not pairs:
        base_models, models = list(baseline.get("env", {}).get("models", {})), sorted(
            {(r.get("model") or {}).get("name") for r in records} - {None})
        if len(base_models) == 1 and len(models) == 1:
            pairs.add((base_models[0], models[0]))
    return sorted(pairs, key=lambda p: (str(p[0]), str(p[1])))


def env_changes(baseline_env: dict[str, Any], env: dict[str, Any],
                pairs: list[tuple[str | None, str | None]]) -> list[dict[str, Any]]:
    """``[{"key", "baseline", "current"}]`` for every compared fact that differs."""
    out: list[dict[str, Any]] = []
    base_models, models = baseline_env.get("models", {}) or {}, env.get("models", {}) or {}
    for base_name, name in pairs:
        prefix = "model" if len(pairs) == 1 else f"model[{name}]"
        old, new = base_models.get(base_name) or {}, models.get(name) or {}
        if base_name != name:
            out.append({"key": f"{prefix}.name", "baseline": base_name, "current": name})
        for key in COMPARED_MODEL_KEYS:
            if old.get(key) != new.get(key):
                out.append({"key": f"{prefix}.{key}", "baseline": old.get(key), "current": new.get(key)})
    if baseline_env.get("session_seed") != env.get("session_seed"):
        out.append({"key": "session_seed", "baseline": baseline_env.get("session_seed"),
                    "current": env.get("session_seed")})
    old_libs, new_libs = baseline_env.get("libraries", {}) or {}, env.get("libraries", {}) or {}
    for lib in sorted(set(old_libs) | set(new_libs)):
        if old_libs.get(lib) != new_libs.get(lib):
            out.append({"key": lib, "baseline": old_libs.get(lib), "current": new_libs.get(lib)})
    if baseline_env.get("data_version") != env.get("data_version"):
        out.append({"key": "data_version", "baseline": baseline_env.get("data_version"),
                    "current": env.get("data_version")})
    return out


def same_weights(baseline_env: dict[str, Any], env: dict[str, Any], pairs: list[tuple[str | None, str | None]]) -> bool:
    """Every paired model has the same weights sha256 (names do not count; an unknown hash is not the same)."""
    base_models, models = baseline_env.get("models", {}) or {}, env.get("models", {}) or {}
    if not pairs:
        return False
    for base_name, name in pairs:
        old, new = _hash_of(base_models.get(base_name)), _hash_of(models.get(name))
        if old is None or new is None or old != new:
            return False
    return True


def summarize(baseline: dict[str, Any], records: list[dict[str, Any]], *, path: str,
              session_seed: int | None) -> dict[str, Any]:
    """``report["baseline"]``: the baseline's facts, environment changes, verdict counts, missing claims."""
    ran = [r for r in records if "error" not in r]
    env = current_env(ran, session_seed)
    pairs = model_pairs(baseline, ran)
    counts = {verdict: 0 for verdict in VERDICTS}
    for record in records:
        verdict = (record.get("baseline") or {}).get("verdict")
        if verdict in counts:
            counts[verdict] += 1
    keys = {(r.get("baseline") or {}).get("key") for r in records} - {None}  # entries some claim matched
    base_env = baseline.get("env", {}) or {}
    models = base_env.get("models", {}) or {}
    return {
        "name": baseline.get("name"), "path": path, "created": baseline.get("created"),
        "model": next(iter(models.values())) if len(models) == 1 else None, "models": models,
        "env_changes": env_changes(base_env, env, pairs), "counts": counts,
        "missing": sorted(k for k in baseline.get("claims", {}) if k not in keys),
        "same_weights": same_weights(base_env, env, pairs),
    }


def summary_line(summary: dict[str, Any]) -> str:
    """``icltest baseline 'v1' (baselines/v1.json): 10 pass, 2 regressed; env changed: dtype ...``."""
    counts = summary.get("counts", {})
    parts = [f"{n} {verdict}" for verdict, n in counts.items() if n]
    text = f"icltest baseline {summary.get('name')!r} ({summary.get('path')}): {', '.join(parts) or 'no claims compared'}"
    if summary.get("missing"):
        text += f", {len(summary['missing'])} missing (in the baseline, did not run)"
    hashes = [c for c in summary.get("env_changes", []) if c["key"].endswith("weights_sha256")]
    if summary.get("same_weights"):
        text += "; same weights (sha256)"
    elif hashes and all(c["baseline"] and c["current"] for c in hashes):
        text += "; different weights (sha256 " + ", ".join(f"{_short(c['baseline'])} -> {_short(c['current'])}"
                                                           for c in hashes) + ")"
    else:
        text += "; weights sha256 unknown"
    names = [c for c in summary.get("env_changes", []) if c["key"].endswith(".name")]
    if names:  # which model ran: information, like the weights, not an environment change
        text += "; model " + ", ".join(f"{_short(c['baseline'])} -> {_short(c['current'])}" for c in names)
    changes = [c for c in summary.get("env_changes", []) if not c["key"].endswith(("weights_sha256", ".name"))
               and not (c["key"].endswith(".revision") and str(c["current"]).startswith(("local-sha256:",
                                                                                      "gguf-sha256:")))]
    if changes:
        text += "; env changed: " + ", ".join(f"{c['key']} {_short(c['baseline'])} -> {_short(c['current'])}"
                                              for c in changes)
    return text


def _short(value: Any) -> str:
    text = str(value)
    return text[:12] if len(text) > 20 and all(c in "0123456789abcdef" for c in text) else text
