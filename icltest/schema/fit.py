"""Does a spec fit a model? Heads, layers and probe lengths checked against the model's shape.

Why: a head the model lacks used to surface only after a full forward pass, and a probe longer
than the model's positions as a raw ``IndexError`` inside the position embedding. Both follow from
the config alone (:class:`icltest.models.geometry.ModelGeometry`), so the plugin runs this at
collection whenever the config is cheap to read (local folders, GGUF files, aliases, cached hub
configs): the file is then a located spec error and nothing loads. For a hub id whose config is
not cached, each item runs it on the loaded model before its first forward pass.

The walk is generic over the validated claim (pydantic models and lists), so a head, a layer
selection or a strategy in any claim kind, an outside one included, is checked at its own key.
Torch-free.
"""
from __future__ import annotations

from typing import Any, Iterable

from pydantic import BaseModel

from icltest.schema.errors import SpecProblem
from icltest.schema.yamlsource import dotted

Path_ = tuple[Any, ...]


def _spans(values: list[int]) -> str:
    """``[2, 3, 4, 5, 9]`` -> ``2-5, 9``."""
    out: list[str] = []
    for v in sorted(set(values)):
        if out and out[-1].split("-")[-1] == str(v - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{v}"
        else:
            out.append(str(v))
    return ", ".join(out)


def _plural(values: list[int], word: str) -> str:
    return f"{word}s {_spans(values)} are" if len(set(values)) > 1 else f"{word} {values[0]} is"


def _bos(block: Any) -> int:
    """BOS is counted unless the block turns it off (``auto`` with no BOS token may overcount by one)."""
    return 0 if getattr(block, "bos", "auto") in ("no", False) else 1


def _range_hi(value: Any, default: tuple[int, int] | None) -> int | None:
    if value is None:
        return default[1] if default else None
    return int(value[-1]) if isinstance(value, (list, tuple)) else int(value)


def probe_tokens(probe: Any) -> tuple[int, str] | None:
    """(tokens per sequence, how that was counted) for a probe block, or None for kinds it cannot tell."""
    bos = _bos(probe)
    head = "BOS + " if bos else ""
    if probe.kind == "repeated_random":
        return bos + probe.length * probe.repeats, f"{head}{probe.length} x {probe.repeats}"
    if probe.kind == "natural_text":
        return bos + probe.length, f"{head}{probe.length}"
    return None


def strategy_tokens(strategy: Any) -> tuple[int, str] | None:
    """The longest sequence a property strategy can draw, or None when unbounded here (tasks)."""
    from icltest.claims.property import DEFAULT_RANGES

    kind, bos = strategy.kind, _bos(strategy)
    head = "BOS + " if bos else ""
    if kind == "natural_text":
        length = _range_hi(strategy.length, None)
        return (bos + length, f"{head}{length}") if length else None
    if kind not in ("random_tokens", "repeated_random", "repeated_with_noise"):
        return None
    length = _range_hi(strategy.length, DEFAULT_RANGES["length"])
    if kind == "random_tokens":
        return bos + length, f"{head}{length}"
    repeats = _range_hi(strategy.repeats, DEFAULT_RANGES["repeats"])
    if kind == "repeated_random":
        return bos + length * repeats, f"{head}{length} x {repeats}"
    noise = _range_hi(strategy.noise_tokens, DEFAULT_RANGES["noise_tokens"])
    return bos + length * repeats + noise * (repeats - 1), f"{head}{length} x {repeats} + {noise} x {repeats - 1} noise"


def uses_probe(claim: Any) -> bool:
    """Whether the claim runs a token probe (task and property claims build their own inputs)."""
    from icltest.runs.metrics import METRICS

    if getattr(claim, "strategy", None) is not None or getattr(claim, "task", None) is not None:
        return False
    metric = getattr(claim, "metric", None)
    info = METRICS.get(getattr(metric, "name", None)) if metric is not None else None
    return info is None or info.inputs == "probe"


class _Fit:
    """Collects the problems of one spec against one geometry."""

    def __init__(self, spec: Any, geometry: Any) -> None:
        self.spec, self.g = spec, geometry
        self.problems: list[SpecProblem] = []

    def add(self, path: Path_, message: str) -> None:
        self.problems.append(SpecProblem(self.spec.location(path), dotted(path), message))

    def _range(self) -> str:
        return f"for this model ({self.g.describe()})"

    def head(self, ref: Any, path: Path_) -> None:
        if ref.layer >= self.g.n_layers or ref.head >= self.g.n_heads:
            self.add(path, f"head L{ref.layer}H{ref.head} is out of range {self._range()}")

    def layers(self, values: list[int], path: Path_) -> None:
        bad = [v for v in values if v >= self.g.n_layers]
        if bad:
            self.add(path, f"{_plural(bad, 'layer')} out of range {self._range()}")

    def tokens(self, counted: tuple[int, str] | None, path: Path_, what: str,
               suffix: str = "; lower its length or repeats") -> None:
        if counted is None or self.g.positions is None or counted[0] <= self.g.positions:
            return
        self.add(path, f"{what} {counted[0]} tokens long ({counted[1]}) but the model has {self.g.positions} "
                       f"positions ({self.g.positions_key}){suffix}")

    def walk(self, value: Any, path: Path_) -> None:
        from icltest.schema.base import HeadRange, HeadRef, TopHeads
        from icltest.schema.blocks import LayerSelection, StrategySpec

        if isinstance(value, HeadRef):
            self.head(value, path)
        elif isinstance(value, HeadRange):
            self.layers(list(value.layers), path + ("layers",))
            bad = [h for h in value.heads or [] if h >= self.g.n_heads]
            if bad:
                self.add(path + ("heads",), f"{_plural(bad, 'head')} out of range {self._range()}")
        elif isinstance(value, TopHeads):
            total = self.g.n_layers * self.g.n_heads
            if value.top > total:
                self.add(path + ("top",), f"top {value.top} exceeds the model's {total} heads ({self.g.describe()})")
        elif isinstance(value, LayerSelection):
            self.layers(list(value.layers), path + ("layers",))
        elif isinstance(value, StrategySpec):
            self.tokens(strategy_tokens(value), path, "the strategy can draw sequences up to",
                        "; lower its length / repeats / noise_tokens ranges")
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                if not (len(path) == 2 and name == "probe"):  # a claim's probe: see fit_problems
                    self.walk(getattr(value, name), path + (name,))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                self.walk(item, path + (i,))


def fit_problems(spec: Any, geometry: Any, claims: Iterable[int] | None = None) -> list[SpecProblem]:
    """Every head, layer and probe in ``spec`` (a LoadedSpec) that ``geometry`` cannot serve, located.

    Args:
        claims: indices of the claims to check (default: all); the file's default probe is checked
            for those of them that use it.
    """
    from icltest.claims.registry import BUILTIN
    from icltest.schema.base import ProbeSpec

    fit = _Fit(spec, geometry)
    default = getattr(spec.spec.defaults, "probe", None)
    users: list[str] = []
    for index in range(len(spec.spec.claims)) if claims is None else claims:
        claim = spec.spec.claims[index]
        fit.walk(claim, ("claims", index))
        if not uses_probe(claim):
            continue
        if claim.probe is not None:
            fit.tokens(probe_tokens(claim.probe), ("claims", index, "probe"), "the probe is")
        elif default is not None:
            users.append(f"claims[{index}]")
        elif claim.kind in BUILTIN:  # an outside kind may not read the probe it was not given
            fit.tokens(probe_tokens(ProbeSpec()), ("claims", index), "the default probe is",
                       "; give the claim (or the file's defaults:) a shorter probe:")
    if users:
        fit.tokens(probe_tokens(default), ("defaults", "probe"), "the probe is", f"; used by {', '.join(users)}; lower its length or repeats")
    fit.problems.sort(key=lambda p: tuple(int(x) for x in p.where.rsplit(":", 2)[1:]))
    return fit.problems


def check_at_collection(session: Any, spec: Any, source: Any) -> None:
    """Raise a SpecError listing every misfit, when the model's config is cheap to read.

    A model whose config cannot be read (missing folder, unsupported architecture) is not this
    file's error: the session remembers the failure and each item reports it in one line.
    """
    from icltest.errors import ModelError
    from icltest.schema.errors import SpecError

    try:
        geometry = session.geometry(source)
    except ModelError:
        return
    problems = fit_problems(spec, geometry) if geometry is not None else []
    if problems:
        raise SpecError(problems)
