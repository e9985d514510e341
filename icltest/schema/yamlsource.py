"""Safe YAML loading that remembers where every value came from.

PyYAML's composer gives nodes with start marks; we build plain Python values from them and keep
a map ``path -> (key mark, value mark)`` so validation errors can name ``file:line:col``. Only the
safe tags are accepted (no ``!!python/...``), duplicate keys are errors (PyYAML silently keeps
the last one), and floats keep their source text so ``18.10`` can mean layer 18, head 10.

Hostile YAML is refused with a located error before anything is built. An alias is the *same*
node wherever it is used, so the node graph of "billion laughs" is tiny while its expansion is
exponential, and an alias inside its own anchor is a cycle: the graph is measured first (each
node once, its expanded size memoised), then a value that expands past :data:`MAX_VALUES`, a
cycle, or nesting deeper than :data:`MAX_DEPTH` is an error at that value. A value reached again
through an alias is built once and shared. Nesting too deep for PyYAML's own recursive composer,
numbers too long for Python to read and control characters are located errors too.
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


MAX_VALUES = 100_000
"""Values a document may hold once its aliases are expanded (specs hold hundreds to thousands)."""
MAX_DEPTH = 64
"""Nesting levels a document may have (specs use fewer than ten)."""


def _at(smap: SourceMap, node: yaml.Node, path: Path_, message: str) -> SpecError:
    return SpecError.single(f"{smap.display}:{_mark(node).line}:{_mark(node).col}", _dotted(path), message)


def _measure(root: yaml.Node, smap: SourceMap) -> None:
    """Refuse cycles, deep nesting and alias bombs, visiting each node once (aliases share nodes).

    Recursion is bounded by MAX_DEPTH, so this cannot itself overflow the stack.
    """
    sizes: dict[int, int] = {}
    open_paths: dict[int, Path_] = {}  # nodes being measured -> the path they were entered at

    def size(node: yaml.Node, path: Path_, depth: int) -> int:
        key = id(node)
        if key in open_paths:
            return_path = open_paths[key]
            raise _at(smap, node, return_path, "this value refers to itself through a YAML alias (an alias used "
                      "inside its own anchor), so it would expand forever")
        if key in sizes:
            return sizes[key]
        if depth > MAX_DEPTH:  # the key: only where the nesting starts (a 64-deep path is no help)
            raise _at(smap, node, path[:2], f"the document is nested more than {MAX_DEPTH} levels deep; specs need "
                      "only a few levels")
        total = 1
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            open_paths[key] = path
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    name = k.value if isinstance(k, yaml.ScalarNode) else "?"
                    total += size(k, path, depth + 1) + size(v, path + (name,), depth + 1)
            else:
                total += sum(size(child, path + (i,), depth + 1) for i, child in enumerate(node.value))
            del open_paths[key]
        if total > MAX_VALUES:
            raise _at(smap, node, path, f"YAML aliases expand this value to more than {MAX_VALUES} values (an "
                      "alias bomb?); write the values out, or use fewer nested aliases")
        sizes[key] = total
        return total

    size(root, (), 0)


def _scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode, path: Path_, smap: SourceMap) -> Any:
    try:
        value = loader.construct_object(node, deep=True)
    except ValueError as exc:  # a 5000-digit integer, a timestamp with month 13
        text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        raise _at(smap, node, path, f"cannot read this value ({text!r}): {exc}") from None
    if isinstance(value, float) and node.tag == "tag:yaml.org,2002:float":
        return YamlFloat(value, node.value)
    return value


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, smap: SourceMap, problems: list[SpecProblem],
           built: dict[int, Any] | None = None) -> Any:
    built = {} if built is None else built
    smap.values[path] = _mark(node)
    if id(node) in built:  # an alias of a mapping or list already built: share it
        return built[id(node)]
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
        problems.append(SpecProblem(f"{smap.display}:{_mark(node).line}:{_mark(node).col}", _dotted(path),
                                    f"tag {node.tag!r} is not allowed: specs are plain YAML (no !!python or custom tags)"))
        return None
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves << merge keys, as safe_load does
        out: dict[Any, Any] = {}
        built[id(node)] = out
        for key_node, value_node in node.value:
            key = _scalar(loader, key_node, path, smap) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                given = (repr(key_node.value) if isinstance(key_node, yaml.ScalarNode)
                         else "a mapping" if isinstance(key_node, yaml.MappingNode) else "a list")
                problems.append(SpecProblem(f"{smap.display}:{_mark(key_node).line}:{_mark(key_node).col}",
                                            _dotted(path), f"keys must be plain strings, got {given}"))
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
            out[key] = _build(loader, value_node, path + (key,), smap, problems, built)
        return out
    if isinstance(node, yaml.SequenceNode):
        items: list[Any] = []
        built[id(node)] = items
        items.extend(_build(loader, child, path + (i,), smap, problems, built) for i, child in enumerate(node.value))
        return items
    return _scalar(loader, node, path, smap)


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def dotted(path: Path_) -> str:
    """``('claims', 0, 'expect')`` -> ``claims[0].expect``."""
    return _dotted(tuple(path))


def _reader_error(exc: yaml.reader.ReaderError, text: str, display: str) -> SpecError:
    """A control character, located (PyYAML gives a character index, not a line)."""
    line = text.count("\n", 0, exc.position) + 1
    col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
    code = exc.character if isinstance(exc.character, int) else ord(exc.character)
    return SpecError.single(f"{display}:{line}:{col}", "",
                            f"not valid YAML: unacceptable character #x{code:04x}: control characters are not allowed")


def load_yaml(text: str, display: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document safely, returning (data, source map).

    Raises:
        SpecError: syntax errors, unsafe tags, multiple documents, duplicate keys.
    """
    smap = SourceMap(display)
    try:
        loader = _SAFE(text)  # the reader refuses control characters here
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, display) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError.single(f"{display}:1:1", "", "the file is empty; a spec needs schema_version, model and claims")
        _measure(node, smap)
        problems: list[SpecProblem] = []
        data = _build(loader, node, (), smap, problems)
    except RecursionError:  # PyYAML composes recursively: nesting in the hundreds overflows it first
        mark = loader.get_mark()
        raise SpecError.single(f"{display}:{mark.line + 1}:{mark.column + 1}", "",
                               f"the document is nested more than {MAX_DEPTH} levels deep; specs need only a few "
                               "levels") from None
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, display) from None
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
