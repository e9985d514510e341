"""Safe YAML loading that remembers where every value came from.

PyYAML's composer gives nodes with start marks; we build plain Python values from them and keep
a map ``path -> (key mark, value mark)`` so validation errors can name ``file:line:col``. Only the
safe tags are accepted (no ``!!python/...``), duplicate keys are errors (PyYAML silently keeps
the last one), and floats keep their source text so ``18.10`` can mean layer 18, head 10.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from icltest.schema.errors import SpecError, SpecProblem

Path_ = tuple[Any, ...]


class YamlFloat(float):
    """A float that remembers how it was written (``18.10`` stays distinguishable from ``18.1``)."""

    raw: str

    def __new__(cls, value: float, raw: str) -> "YamlFloat":
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    col: int  # 1-based


@dataclass
class SourceMap:
    """Where each path of a loaded document starts, for error messages."""

    display: str
    values: dict[Path_, Mark] = field(default_factory=dict)
    keys: dict[Path_, Mark] = field(default_factory=dict)

    def where(self, path: Path_ = (), *, key: bool = False) -> str:
        """``file:line:col`` of the value at ``path`` (or its key), falling back to the nearest parent."""
        path = tuple(path)
        while True:
            table = self.keys if key and path in self.keys else self.values
            if path in table:
                mark = table[path]
                return f"{self.display}:{mark.line}:{mark.col}"
            if not path:
                return f"{self.display}:1:1"
            path = path[:-1]


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


_SAFE = yaml.SafeLoader
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    value = loader.construct_object(node, deep=True)
    if isinstance(value, float) and node.tag == "tag:yaml.org,2002:float":
        return YamlFloat(value, node.value)
    return value


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, smap: SourceMap, problems: list[SpecProblem]) -> Any:
    smap.values[path] = _mark(node)
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
        problems.append(SpecProblem(f"{smap.display}:{_mark(node).line}:{_mark(node).col}", _dotted(path),
                                    f"tag {node.tag!r} is not allowed: specs are plain YAML (no !!python or custom tags)"))
        return None
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves << merge keys, as safe_load does
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(loader, key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                problems.append(SpecProblem(f"{smap.display}:{_mark(key_node).line}:{_mark(key_node).col}",
                                            _dotted(path), f"keys must be plain strings, got {key_node.value!r}"))
                continue
            if key in out:
                first = smap.keys[path + (key,)]
                problems.append(SpecProblem(
                    f"{smap.display}:{_mark(key_node).line}:{_mark(key_node).col}", _dotted(path + (key,)),
                    f"duplicate key '{key}' (first given at line {first.line}); YAML would silently keep "
                    "only the last one",
                ))
                continue
            smap.keys[path + (key,)] = _mark(key_node)
            out[key] = _build(loader, value_node, path + (key,), smap, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, child, path + (i,), smap, problems) for i, child in enumerate(node.value)]
    return _scalar(loader, node)


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def dotted(path: Path_) -> str:
    """``('claims', 0, 'expect')`` -> ``claims[0].expect``."""
    return _dotted(tuple(path))


def load_yaml(text: str, display: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document safely, returning (data, source map).

    Raises:
        SpecError: syntax errors, unsafe tags, multiple documents, duplicate keys.
    """
    smap = SourceMap(display)
    loader = _SAFE(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError.single(f"{display}:1:1", "", "the file is empty; a spec needs schema_version, model and claims")
        problems: list[SpecProblem] = []
        data = _build(loader, node, (), smap, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{display}:{mark.line + 1}:{mark.column + 1}" if mark else f"{display}:1:1"
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        if "could not determine a constructor" in problem:
            problem += " (only plain YAML is allowed in specs: no !!python or custom tags)"
        raise SpecError.single(where, "", f"not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError.single(f"{display}:1:1", "", f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if problems:
        raise SpecError(problems)
    return data, smap


def display_path(path: Path) -> str:
    """The path as users see it: relative to the working directory when it is below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
