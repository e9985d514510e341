"""The two sides of a diff, read from report JSON files (``pytest --icl-json``) or baseline files.

Both kinds are reduced to one :class:`Side`: its claims by key, its model facts, a flat
environment and its per-head maps. A report is recognised by a ``claims`` list next to a
``summary``; a baseline by a ``claims`` mapping (claim key -> entry) next to ``env`` or
``created``. Anything else is refused with one line naming the file (:class:`DiffInputError`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icltest.report.records import MODEL_KEYS

ENV_SKIP = {"time", "models"}  # when a report was written is not a difference between the models


class DiffInputError(Exception):
    """A file or option the diff cannot use; the message is one line for the user."""


@dataclass
class ClaimRow:
    """One claim item (claim x target) of one side."""

    key: str              # "<spec relpath>::<claim id>[<target>]" when known, else "<claim id>[<target>]"
    name: str             # "<claim id>[<target>]"
    value: Any
    status: str           # pass, fail, xfail, error, xpass(strict)
    expect: Any = None
    unit: str | None = None
    head: str | None = None  # the head a {top: k} target resolved to, when the record says

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass
class Side:
    """One input of the diff."""

    path: str
    source: str                                   # "report" or "baseline"
    claims: dict[str, ClaimRow]
    models: list[dict[str, Any]]                  # model facts (name, weights_sha256, ...), one per model
    env: dict[str, Any]                           # flat facts compared between the sides
    maps: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    spec_errors: list[str] = field(default_factory=list)  # spec files of the run that failed to load
    label: str = ""

    @property
    def weights(self) -> set[str]:
        return {m["weights_sha256"] for m in self.models if m.get("weights_sha256")}


def default_label(side: Side) -> str:
    """``<model name>@<first 8 hex of weights_sha256>`` (models joined by ``+``), else the file name."""
    parts = []
    for model in side.models:
        name = str(model.get("name") or "?")
        sha = model.get("weights_sha256")
        parts.append(f"{name}@{sha[:8]}" if sha else name)
    return "+".join(parts) if parts else Path(side.path).stem


def load_side(path: str | Path) -> Side:
    """Read one input file; :class:`DiffInputError` (one line) when it is not a report or baseline."""
    p = Path(path)
    if not p.exists():
        raise DiffInputError(f"{path}: no such file")
    if p.is_dir():
        raise DiffInputError(f"{path}: is a folder; give a report JSON file (pytest --icl-json PATH) or a baseline file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DiffInputError(f"{path}: not a text file; give a report JSON file or a baseline file") from None
    except json.JSONDecodeError as exc:
        raise DiffInputError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); give a report JSON file "
                             "(pytest --icl-json PATH) or a baseline file") from None
    return side_from_dict(data, str(path))


def side_from_dict(data: Any, path: str = "<input>") -> Side:
    """A :class:`Side` from a parsed report or baseline."""
    claims = data.get("claims") if isinstance(data, dict) else None
    if isinstance(claims, list) and isinstance(data.get("summary"), dict):
        return _from_report(data, path)
    if isinstance(claims, dict) and ("env" in data or "created" in data):
        return _from_baseline(data, path)
    raise DiffInputError(f"{path}: not an icltest report (pytest --icl-json: a 'claims' list and a 'summary') "
                         "nor a baseline file (a 'claims' mapping and an 'env')")


def _status(record: dict[str, Any]) -> str:
    """pass, fail, xfail, error or xpass(strict): the report's own status, in lower case."""
    from icltest.report.build import status_of

    return status_of(record).lower()


def _as_float(value: Any) -> Any:
    """Numbers as float (bool and non-finite stay what they are); anything else unchanged."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def _head_of(target: str, details: Any) -> str | None:
    """For a target that is not itself a head (``top1``), the head it resolved to."""
    if not isinstance(details, dict) or _is_head(target):
        return None
    head = details.get("head")
    return head if isinstance(head, str) else None


def _is_head(text: str) -> bool:
    if not text.startswith("L") or "H" not in text:
        return False
    layer, _, head = text[1:].partition("H")
    return layer.isdigit() and head.isdigit()


def _from_report(data: dict[str, Any], path: str) -> Side:
    claims: dict[str, ClaimRow] = {}
    models: dict[str, dict[str, Any]] = {}
    for i, record in enumerate(data["claims"]):
        if not (isinstance(record, dict) and "id" in record and "target" in record):
            raise DiffInputError(f"{path}: claims[{i}] has no 'id' and 'target'; is this an icltest report?")
        name = f"{record['id']}[{record['target']}]"
        order = record.get("order")
        if isinstance(order, list) and order and isinstance(order[0], str):
            key = f"{order[0]}::{name}"
        elif isinstance(record.get("item"), str) and "::" in record["item"]:
            key = record["item"]
        else:
            key = name
        if key in claims:  # the same claim item twice (two models in one report): keep both apart
            model_name = (record.get("model") or {}).get("name", i)
            key = f"{key}@{model_name}"
        claims[key] = ClaimRow(key=key, name=name, value=_as_float(record.get("value")), status=_status(record),
                               expect=record.get("expect"), unit=record.get("unit"),
                               head=_head_of(str(record["target"]), record.get("details")))
        model = record.get("model")
        if isinstance(model, dict) and model.get("name"):
            models.setdefault(str(model["name"]), {k: model[k] for k in MODEL_KEYS if k in model})
    env_raw = data.get("env") if isinstance(data.get("env"), dict) else {}
    for name, facts in (env_raw.get("models") or {}).items():
        if isinstance(facts, dict):
            models.setdefault(str(name), {k: facts[k] for k in MODEL_KEYS if k in facts})
    env = {k: v for k, v in env_raw.items() if k not in ENV_SKIP and not isinstance(v, (dict, list))}
    _add_model_env(env, list(models.values()))
    probes = sorted({r["probe"] for r in data["claims"] if isinstance(r.get("probe"), str)})
    if probes:
        env["probes"] = ", ".join(probes)
    side = Side(path=path, source="report", claims=claims, models=list(models.values()), env=env)
    for entry in data.get("spec_errors") or []:
        text = entry.get("error", "") if isinstance(entry, dict) else str(entry)
        first = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
        where = entry.get("file") if isinstance(entry, dict) and entry.get("file") else ""
        side.spec_errors.append(f"{where}: {first}" if where else first)
    maps = data.get("maps")
    if maps is None:  # a report written before maps were merged: gather the claims' own
        maps = _maps_from_records(data["claims"])
        if not maps:
            side.notes.append("has no per-head maps (a report written before 'maps' existed, or no claim "
                              "produced a layer x head table)")
    side.maps = _valid_maps(maps, side)
    return side


def _baseline_head(name: str, entry: dict[str, Any]) -> str | None:
    """The head a ``{top: k}`` target resolved to, from the one ``heads.LxHy`` stat a baseline keeps."""
    target = name[name.rfind("[") + 1:-1] if name.endswith("]") else ""
    stats = entry.get("stats") if isinstance(entry.get("stats"), dict) else {}
    heads = [k[len("heads."):] for k in stats if k.startswith("heads.") and _is_head(k[len("heads."):])]
    return heads[0] if target and not _is_head(target) and len(heads) == 1 else None


def _from_baseline(data: dict[str, Any], path: str) -> Side:
    claims: dict[str, ClaimRow] = {}
    for key, entry in data["claims"].items():
        if not isinstance(entry, dict):
            raise DiffInputError(f"{path}: baseline claim {key!r} is not a mapping; is this an icltest baseline?")
        name = key.rsplit("::", 1)[-1]
        claims[key] = ClaimRow(key=key, name=name, value=_as_float(entry.get("value")),
                               status="pass" if entry.get("passed") is True else "fail",
                               expect=entry.get("expect"), unit=entry.get("unit"), head=_baseline_head(name, entry))
    env_raw = data.get("env") if isinstance(data.get("env"), dict) else {}
    models: list[dict[str, Any]] = []
    if isinstance(env_raw.get("models"), dict):  # {"models": {name: {weights_sha256, ...}}}
        for name, facts in env_raw["models"].items():
            if isinstance(facts, dict):
                models.append({"name": str(name)} | {k: facts[k] for k in MODEL_KEYS if k in facts and k != "name"})
    elif isinstance(env_raw.get("model"), dict):
        models.append({k: env_raw["model"][k] for k in MODEL_KEYS if k in env_raw["model"]})
    env: dict[str, Any] = {}
    for k, v in env_raw.items():
        if k in ("model", "models") or k in MODEL_KEYS or k in ENV_SKIP:
            continue
        if isinstance(v, dict):  # {"libraries": {"torch": ...}}: compared by the leaf name, as in reports
            env.update({str(kk): vv for kk, vv in v.items() if not isinstance(vv, (dict, list))})
        elif not isinstance(v, list):
            env["session_seed" if k == "seed" else k] = v
    _add_model_env(env, models)
    probes = sorted({e["probe"] for e in data["claims"].values() if isinstance(e, dict) and isinstance(e.get("probe"), str)})
    if probes:
        env["probes"] = ", ".join(probes)
    side = Side(path=path, source="baseline", claims=claims, models=models, env=env)
    side.notes.append("is a baseline file, which keeps no per-head maps")
    return side


def _add_model_env(env: dict[str, Any], models: list[dict[str, Any]]) -> None:
    if len(models) == 1:
        for k, v in models[0].items():
            if k not in ("name", "weights_sha256"):
                env[f"model.{k}"] = v


def _maps_from_records(records: list[Any]) -> list[dict[str, Any]]:
    out = []
    for record in records:
        if not isinstance(record, dict):
            continue
        model = record.get("model") or {}
        for entry in (record.get("details") or {}).get("maps") or []:
            if isinstance(entry, dict) and not any(m["name"] == entry.get("name") and m["probe"] == entry.get("probe")
                                                   and m["model"] == model.get("name") for m in out):
                out.append(dict(entry, model=model.get("name"), weights_sha256=model.get("weights_sha256")))
    return out


def _valid_maps(maps: Any, side: Side) -> list[dict[str, Any]]:
    """Maps whose values form a rectangular layer x head table of numbers / nulls; others noted."""
    out = []
    for i, entry in enumerate(maps if isinstance(maps, list) else []):
        values = entry.get("values") if isinstance(entry, dict) else None
        ok = (isinstance(values, list) and values and all(isinstance(row, list) for row in values)
              and len({len(row) for row in values}) == 1 and len(values[0]) > 0
              and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for row in values
                      for v in row))
        if not ok:
            side.notes.append(f"maps[{i}] ({entry.get('name') if isinstance(entry, dict) else '?'}) is not a "
                              "layer x head table of numbers; left out")
            continue
        table = [[float(v) if v is not None and math.isfinite(float(v)) else None for v in row] for row in values]
        out.append({"model": entry.get("model"), "weights_sha256": entry.get("weights_sha256"),
                    "name": str(entry.get("name") or f"map{i}"), "kind": entry.get("kind", "score"),
                    "probe": entry.get("probe"), "unit": entry.get("unit", ""), "values": table,
                    "targets": entry.get("targets") or []})
    return out
