"""Spec file -> validated :class:`Spec` with source locations, or one SpecError listing every problem.

The schema comes from :func:`icltest.schema.spec.spec_model`, i.e. from the claim-kind registry, so
a kind declared by another package gets the same located errors and "did you mean" as a built-in.
"""
from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from icltest.schema.errors import SpecError, SpecProblem
from icltest.schema.spec import SpecBase, _did_you_mean, claim_models, spec_model
from icltest.schema.yamlsource import SourceMap, display_path, dotted, load_yaml


@dataclass
class LoadedSpec:
    """A validated spec plus where each of its values came from.

    Attributes:
        spec: the validated :class:`Spec`.
        path: the file it came from.
        source: path -> line/col map, for errors raised later (e.g. a head the model lacks).
    """

    spec: SpecBase
    path: Path
    source: SourceMap

    def location(self, path: tuple[Any, ...] = ()) -> str:
        """``file:line:col`` of a value in the file, e.g. ``location(("claims", 0, "heads", 1))``."""
        return self.source.where(tuple(path))


def _data_path(data: Any, loc: tuple[Any, ...], tags: set[str]) -> tuple[tuple[Any, ...], bool]:
    """Map a pydantic error location onto the YAML data, skipping union tags.

    Returns (path into the data, whether the last loc element was found there).
    """
    path: list[Any] = []
    node, found = data, True
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node, found = node[part], True
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node, found = node[part], True
        else:
            found = False  # a union tag ('head_score', 'list') or a missing key
            if isinstance(node, dict) and isinstance(part, str) and part not in tags:
                path.append(part)
                break
    return tuple(path), found


_UNION_TAGS = {"list", "top", "range", "repeated_random", "natural_text"}  # besides the claim kinds


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every pydantic model class mentioned in a field annotation (unions, lists, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out.extend(_models_in(arg))
    return list(dict.fromkeys(out))


def _pick(models: list[type[BaseModel]], value: Any) -> type[BaseModel] | None:
    """Choose among union members by the data's ``kind`` (probes), else by shared keys (heads)."""
    if len(models) <= 1:
        return models[0] if models else None
    if not isinstance(value, dict):
        return None
    kind = value.get("kind")
    for model in models:
        field = model.model_fields.get("kind")
        if field is not None and (kind in typing.get_args(field.annotation) or (kind is None and field.default)):
            return model
    return max(models, key=lambda m: len(set(value) & set(m.model_fields)))


def _model_at(spec_data: Any, path: tuple[Any, ...], spec: type[BaseModel],
              claims: dict[str, type[BaseModel]]) -> type[BaseModel] | None:
    """The schema model that validates the mapping at ``path`` (for 'did you mean' on unknown keys)."""
    model: type[BaseModel] | None = spec
    node: Any = spec_data
    for i, key in enumerate(path):
        if model is None:
            return None
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            node = None
        if isinstance(key, int):
            continue
        if model is spec and key == "claims":
            claim = node[path[i + 1]] if isinstance(node, list) and len(path) > i + 1 else None
            model = claims.get(claim.get("kind")) if isinstance(claim, dict) else None
            continue
        field = model.model_fields.get(key)
        model = _pick(_models_in(field.annotation), node) if field is not None else None
    return model


def _problem(error: dict[str, Any], data: Any, source: SourceMap, spec: type[BaseModel],
             claims: dict[str, type[BaseModel]]) -> SpecProblem:
    loc = tuple(error["loc"])
    kind = error["type"]
    path, found = _data_path(data, loc, set(claims) | _UNION_TAGS)
    key = dotted(path)
    message = error["msg"]
    if kind == "extra_forbidden":
        parent = path[:-1]
        model = _model_at(data, parent, spec, claims)
        renamed = getattr(model, "renamed_keys", None) or {}  # a key a kind once had: say what it is now
        if isinstance(path[-1], str) and path[-1] in renamed:
            return SpecProblem(source.where(path, key=True), key, renamed[path[-1]])
        keys = sorted(model.model_fields) if model else []
        if parent and parent[-1] == "heads" and isinstance(path[-1], str):
            keys = ["layers", "heads", "top", "by"]
        hint = _did_you_mean(path[-1], keys)
        message = f"unknown key '{path[-1]}'{hint}" + (f"; expected one of: {', '.join(keys)}" if keys else "")
        return SpecProblem(source.where(path, key=True), key, message)
    if kind == "missing":
        return SpecProblem(source.where(path[:-1]), key, f"required key '{path[-1]}' is missing")
    if kind in ("union_tag_invalid", "union_tag_not_found") and path and path[0] == "claims":
        claim = data["claims"][path[1]] if len(path) > 1 else {}
        given = claim.get("kind") if isinstance(claim, dict) else None
        known = ", ".join(claims)
        if given is None:
            return SpecProblem(source.where(path), key + ".kind" if key else "kind",
                               f"a claim needs a kind: one of {known}")
        return SpecProblem(source.where(path + ("kind",)), dotted(path + ("kind",)),
                           f"unknown claim kind {given!r}{_did_you_mean(given, claims)}; expected one of: {known}")
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", ""))
        options = re.findall(r"'([^']*)'", expected)
        given = error.get("input")
        hint = _did_you_mean(given, options) if isinstance(given, str) and options else ""
        message = f"got {given!r}{hint}; expected one of: {', '.join(options) or expected}"  # Literal[1]: unquoted
    elif kind in ("value_error", "assertion_error"):
        message = re.sub(r"^(Value|Assertion) error, ", "", message)
    elif "input" in error and not isinstance(error["input"], (dict, list)):
        message = f"{message} (got {error['input']!r})"
    return SpecProblem(source.where(path), key, message)


def validate(data: Any, source: SourceMap) -> SpecBase:
    """Validate loaded YAML data against the schema, mapping every error to its line."""
    if not isinstance(data, dict):
        raise SpecError.single(source.where(()), "", f"a spec file is a mapping with schema_version, model and claims; got {type(data).__name__}")
    model, claims = spec_model(), claim_models()
    try:
        spec = model.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(e, data, source, model, claims) for e in exc.errors(include_url=False)]
        # "unknown key 'layer' (did you mean 'layers'?)" already explains the missing 'layers'.
        guessed = {(p.key.rsplit(".", 1)[0], m.group(1)) for p in problems
                   if (m := re.search(r"did you mean '([^']+)'", p.message)) and p.message.startswith("unknown key")}
        problems = [p for p in problems if not (p.message.startswith("required key")
                                                 and (p.key.rsplit(".", 1)[0], p.key.rsplit(".", 1)[-1]) in guessed)]
        unique = list(dict.fromkeys(problems))
        unique.sort(key=lambda p: tuple(int(x) for x in p.where.rsplit(":", 2)[1:]))
        raise SpecError(unique) from None
    seen: dict[str, int] = {}
    problems = []
    for index, claim in enumerate(spec.claims):
        if claim.id in seen:
            first = source.where(("claims", seen[claim.id], "id")).rsplit(":", 2)[1]
            problems.append(SpecProblem(source.where(("claims", index, "id")), f"claims[{index}].id",
                                        f"duplicate claim id '{claim.id}' (first used at line {first}); ids name pytest items and must be unique"))
        seen.setdefault(claim.id, index)
        problems += _duplicate_heads(claim, ("claims", index), source)
    from icltest.baseline import spec_problems as baseline_problems

    problems += baseline_problems(spec, source)  # a baseline.max_drop with no direction to apply it in
    if problems:
        raise SpecError(problems)
    return spec


def _duplicate_heads(value: Any, path: tuple[Any, ...], source: SourceMap) -> list[SpecProblem]:
    """A head listed twice in one list (``[18.6, 'L18H6']``): each listed head becomes a pytest
    item named after it, so the second would clash with the first. Reported at the second."""
    from icltest.schema.base import HeadRef

    out: list[SpecProblem] = []
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            out += _duplicate_heads(getattr(value, name), path + (name,), source)
    elif isinstance(value, list):
        first: dict[tuple[int, int], int] = {}
        for i, item in enumerate(value):
            if isinstance(item, HeadRef):
                pair = (item.layer, item.head)
                if pair in first:
                    line, col = source.where(path + (first[pair],)).rsplit(":", 2)[1:]
                    out.append(SpecProblem(source.where(path + (i,)), dotted(path + (i,)),
                                           f"head {item} is listed twice (first at line {line}, col {col}); "
                                           "each listed head is its own pytest item"))
                first.setdefault(pair, i)
            else:
                out += _duplicate_heads(item, path + (i,), source)
    return out


def _decode(raw: bytes, display: str) -> str:
    """The file as text; spec files are UTF-8, and a byte that is not is located to its line."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SpecError.single(f"{display}:1:1", "", "spec files are UTF-8; this one starts with a UTF-16 "
                               "byte-order mark: save it as UTF-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = len(raw[raw.rfind(b"\n", 0, exc.start) + 1:exc.start].decode("utf-8", errors="replace")) + 1
        raise SpecError.single(f"{display}:{line}:{col}", "", f"spec files are UTF-8, but byte "
                               f"0x{raw[exc.start]:02x} here is not ({exc.reason}); save the file as UTF-8") from None


def load_spec(path: str | Path) -> LoadedSpec:
    """Read, parse and validate one spec file.

    Relative model paths are resolved against the spec file's folder, so a suite can ship next to
    the model it describes.

    Raises:
        SpecError: anything wrong with the file, each problem with its ``file:line:col``.
    """
    path = Path(path)
    display = display_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError.single(f"{display}:1:1", "", f"cannot read spec file: {exc}") from None
    text = _decode(raw, display)
    data, source = load_yaml(text, display)
    spec = validate(data, source)
    if spec.model is not None and spec.model.path and not Path(spec.model.path).expanduser().is_absolute():
        resolved = (path.parent / spec.model.path).resolve()
        spec = spec.model_copy(update={"model": spec.model.model_copy(update={"path": str(resolved)})})
    return LoadedSpec(spec=spec, path=path, source=source)
