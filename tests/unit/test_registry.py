"""The claim-kind registry: built-ins, register(), entry points, and the spec schema built from them."""
from __future__ import annotations

import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path
from typing import Literal

import pytest

from icltest.claims import registry
from icltest.errors import ClaimKindError, IcltestError
from icltest.schema import ClaimBase, Expectation, SpecError, load_spec

BUILTINS = ["ablation", "circuit", "function_vector", "head_attention", "head_attribution", "head_rank", "head_score",
            "icl_score", "implicit_update", "logit_attribution", "property", "source_tracking", "steering",
            "task_accuracy"]
SPEC = "schema_version: 1\nmodel: smollm2-135m\nclaims:\n  - id: a\n    kind: vocab_size\n    expect: '> 10'\n"


def _kind(name: str = "vocab_size", literal: str | None = None, **drop: bool) -> types.ModuleType:
    """A claim-kind module built in memory (what a package's module would hold)."""
    module = types.ModuleType(f"kind_{name}")
    schema = type("Schema", (ClaimBase,), {"__annotations__": {"kind": Literal[literal or name], "expect": Expectation},
                                           "__module__": module.__name__})
    parts = {"Schema": schema, "targets": lambda claim: [], "measure": lambda *a: None, "judge": lambda *a: None}
    for key, value in parts.items():
        if not drop.get(key):
            setattr(module, key, value)
    return module


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTERED", {})


def test_builtin_kinds_are_registered_and_their_schemas_live_in_their_modules() -> None:
    assert registry.known_kinds() == BUILTINS
    for kind in BUILTINS:
        module = registry.claim_module(kind)
        assert module.__name__ == f"icltest.claims.{kind}"
        assert module.Schema.__module__ == module.__name__  # the schema sits next to measure/judge


def test_unknown_kind_lists_known_kinds_with_a_guess() -> None:
    with pytest.raises(ClaimKindError) as info:
        registry.claim_module("head_scor")
    message = str(info.value)
    assert "unknown claim kind 'head_scor' (did you mean 'head_score'?)" in message
    assert all(kind in message for kind in BUILTINS)
    assert isinstance(info.value, IcltestError)


def test_register_adds_a_kind_to_spec_validation_and_unregister_removes_it(clean_registry: None, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SPEC)
    with pytest.raises(SpecError, match="unknown claim kind 'vocab_size'"):
        load_spec(path)
    registry.register("vocab_size", _kind())
    claim = load_spec(path).spec.claims[0]
    assert type(claim).__module__ == "kind_vocab_size" and claim.expect.check(11)
    path.write_text(SPEC.replace("expect:", "expct:"))
    with pytest.raises(SpecError, match=r"s\.yaml:6:5: claims\[0\]\.expct: unknown key 'expct' \(did you mean 'expect'\?\)"):
        load_spec(path)
    registry.unregister("vocab_size")
    path.write_text(SPEC)
    with pytest.raises(SpecError, match="unknown claim kind 'vocab_size'"):
        load_spec(path)


def test_register_by_module_path_is_lazy(clean_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    registry.register("vocab_size", "kind_not_imported_yet:THING")  # nothing is imported here
    module = types.ModuleType("kind_not_imported_yet")
    module.THING = _kind()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kind_not_imported_yet", module)
    assert registry.claim_module("vocab_size") is module.THING  # type: ignore[attr-defined]


def test_register_refuses_to_shadow_a_kind_silently(clean_registry: None) -> None:
    with pytest.raises(ClaimKindError, match="already registered .*replace=True"):
        registry.register("head_score", _kind("head_score"))
    with pytest.raises(ClaimKindError, match="must be an identifier"):
        registry.register("head-count", _kind())


@pytest.mark.parametrize("module, message", [
    (_kind(judge=True), "does not define judge"),
    (_kind(literal="other"), r"kind: Literal\['vocab_size'\]"),
    ("no_such_module_for_icltest", "could not be loaded: ModuleNotFoundError"),
])
def test_broken_kinds_say_what_is_missing(clean_registry: None, module: object, message: str) -> None:
    registry.register("vocab_size", module)
    with pytest.raises(ClaimKindError, match=message):
        registry.claim_module("vocab_size")


def test_schema_must_subclass_claim_base(clean_registry: None) -> None:
    module = _kind()
    module.Schema = type("Schema", (), {})  # type: ignore[attr-defined]
    registry.register("vocab_size", module)
    with pytest.raises(ClaimKindError, match="must subclass icltest.schema.ClaimBase"):
        registry.claim_module("vocab_size")


def test_entry_point_cannot_redefine_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = metadata.EntryPoint(name="head_score", value="somepkg.kinds", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: [fake] if group == registry.ENTRY_POINT_GROUP else [])
    with pytest.raises(ClaimKindError, match="redefines the built-in claim kind 'head_score'"):
        registry.known_kinds()


def test_spec_model_is_rebuilt_when_the_registry_changes(clean_registry: None) -> None:
    from icltest.schema.spec import spec_model

    before = spec_model()
    assert spec_model() is before  # cached while the kinds stay the same
    registry.register("vocab_size", _kind())
    after = spec_model()
    assert after is not before
    assert "vocab_size" in after.model_json_schema()["properties"]["claims"]["items"]["discriminator"]["mapping"]


def test_validating_a_spec_imports_no_torch() -> None:
    code = ("import sys, icltest.plugin\nfrom icltest.schema.spec import spec_model\nspec_model()\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
