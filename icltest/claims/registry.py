"""Which claim kinds exist: the built-ins, installed packages' entry points, and ``register()``.

A claim kind is one module (or object) providing ``Schema`` (a pydantic model subclassing
:class:`icltest.schema.base.ClaimBase` with ``kind: Literal["<kind>"]``), ``targets``,
``measure`` and ``judge``. The spec schema, the loader's error messages and the published JSON
Schema are all built from this registry, so a kind is added in one place:

- built-ins: the ``BUILTIN`` table below (lazy ``"module"`` / ``"module:attr"`` strings);
- other packages: an entry point in the ``icltest.claim_kinds`` group, e.g. in pyproject.toml
  ``[project.entry-points."icltest.claim_kinds"] token_count = "mypkg.token_count"``;
- code (a conftest, a notebook): ``register("token_count", "mypkg.token_count")``.

Entries stay strings until a spec needs them, and a kind's module must import nothing heavy at
top level (torch is imported inside ``measure``), so validating a spec stays fast.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from icltest.errors import ClaimKindError

ENTRY_POINT_GROUP = "icltest.claim_kinds"

BUILTIN: dict[str, str] = {
    "head_score": "icltest.claims.head_score",
    "head_rank": "icltest.claims.head_rank",
    "ablation": "icltest.claims.ablation",
    "icl_score": "icltest.claims.icl_score",
    "task_accuracy": "icltest.claims.task_accuracy",
    "property": "icltest.claims.property",
    "head_attention": "icltest.claims.head_attention",
    "logit_attribution": "icltest.claims.logit_attribution",
    "head_attribution": "icltest.claims.head_attribution",
    "source_tracking": "icltest.claims.source_tracking",
    "function_vector": "icltest.claims.function_vector",
    "steering": "icltest.claims.steering",
    "circuit": "icltest.claims.circuit",
    "implicit_update": "icltest.claims.implicit_update",
}
_REGISTERED: dict[str, Any] = {}
REQUIRED = ("Schema", "targets", "measure", "judge")


@dataclass(frozen=True)
class KindEntry:
    """Where one claim kind comes from.

    Attributes:
        kind: the ``kind:`` value specs use.
        target: ``"module"`` / ``"module:attr"``, or an already-imported module or object.
        origin: ``builtin``, ``entry point <value> (<distribution>)`` or ``register()``; named in
            errors so a broken kind points at the package that declared it.
    """

    kind: str
    target: Any
    origin: str


def register(kind: str, target: Any, *, replace: bool = False) -> None:
    """Add a claim kind from code (a module path, ``"module:attr"``, a module or an object).

    Nothing is imported until a spec is loaded. Replacing an existing kind must be asked for with
    ``replace=True``, so that a typo cannot silently shadow a built-in.

    Raises:
        ClaimKindError: the kind name is not an identifier, or it exists and ``replace`` is False.
    """
    if not kind.isidentifier():
        raise ClaimKindError(f"claim kind {kind!r} must be an identifier (letters, digits, _), as specs write it")
    if not replace and kind in entries():
        raise ClaimKindError(f"claim kind {kind!r} is already registered ({entries()[kind].origin}); "
                             "pass replace=True to override it")
    _REGISTERED[kind] = target


def unregister(kind: str) -> None:
    """Remove a kind added with :func:`register` (built-ins and entry points cannot be removed)."""
    _REGISTERED.pop(kind, None)


def _entry_points() -> dict[str, KindEntry]:
    found: dict[str, KindEntry] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(getattr(ep, "dist", None), "name", None) or "unknown distribution"
        entry = KindEntry(ep.name, ep, f"entry point {ep.name} = {ep.value} ({dist})")
        previous = found.get(ep.name)
        if previous is not None and previous.target.value != ep.value:
            raise ClaimKindError(f"claim kind {ep.name!r} is declared twice: {previous.origin} and {entry.origin}; "
                                 "uninstall one of them")
        if ep.name in BUILTIN:
            raise ClaimKindError(f"{entry.origin} redefines the built-in claim kind {ep.name!r}; "
                                 "rename the kind in that package")
        found[ep.name] = entry
    return found


def entries() -> dict[str, KindEntry]:
    """Every claim kind, in a stable order: built-ins, then entry points, then ``register()``.

    Entry points are re-read on each call (about a millisecond), so a package installed or put
    on ``sys.path`` during a session is seen by the next spec that is loaded.
    """
    out = {kind: KindEntry(kind, target, "builtin") for kind, target in BUILTIN.items()}
    out.update(sorted(_entry_points().items()))
    out.update((kind, KindEntry(kind, target, "register()")) for kind, target in _REGISTERED.items())
    return out


def known_kinds() -> list[str]:
    return sorted(entries())


def _load(entry: KindEntry) -> Any:
    target = entry.target
    try:
        if isinstance(target, metadata.EntryPoint):
            return target.load()
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            obj = importlib.import_module(module)
            return getattr(obj, attr) if attr else obj
    except (ImportError, AttributeError) as exc:
        raise ClaimKindError(f"claim kind {entry.kind!r} ({entry.origin}) could not be loaded: "
                             f"{type(exc).__name__}: {exc}") from exc
    return target


def _check(entry: KindEntry, impl: Any) -> Any:
    """Reject an implementation that lacks part of the contract, naming what is missing."""
    from typing import get_args

    from icltest.schema.base import ClaimBase

    missing = [name for name in REQUIRED if not hasattr(impl, name)]
    if missing:
        raise ClaimKindError(f"claim kind {entry.kind!r} ({entry.origin}) does not define {', '.join(missing)}; "
                             f"a claim kind provides {', '.join(REQUIRED)}")
    schema = impl.Schema
    if not (isinstance(schema, type) and issubclass(schema, ClaimBase)):
        raise ClaimKindError(f"claim kind {entry.kind!r} ({entry.origin}): Schema must subclass "
                             "icltest.schema.ClaimBase (it carries id, description, marks and probe)")
    field = schema.model_fields.get("kind")
    if field is None or get_args(field.annotation) != (entry.kind,):
        raise ClaimKindError(f"claim kind {entry.kind!r} ({entry.origin}): Schema must declare "
                             f"kind: Literal[{entry.kind!r}] (the registry name and the spec's kind: must agree)")
    return impl


def claim_module(kind: str) -> Any:
    """The implementation of a claim kind (its module, or the object its entry point names).

    Raises:
        ClaimKindError: the kind is unknown (the message lists the known kinds, with a guess), or
            its implementation cannot be imported or lacks part of the contract.
    """
    table = entries()
    if kind not in table:
        from icltest.schema.base import _did_you_mean

        raise ClaimKindError(f"unknown claim kind {kind!r}{_did_you_mean(kind, table)}; "
                             f"known kinds: {', '.join(table)}")
    entry = table[kind]
    return _check(entry, _load(entry))


def schema_models() -> dict[str, type]:
    """kind -> ``Schema`` for every registered kind (imports each kind's module, never torch)."""
    return {kind: _check(entry, _load(entry)).Schema for kind, entry in entries().items()}
