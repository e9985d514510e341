"""Run mode: run a suite on two models with pytest, then diff; optional attention-pattern matching.

Each model gets its own ``python -m pytest SUITE --icl-model M --icl-json OUT -p no:cacheprovider
-q`` in a subprocess (from the current folder, so the project's conftest and ini apply), exactly
what a user would type; claims that fail are results, not errors (pytest exits 1), while a usage
error, an internal error or a suite that collected nothing stops the diff with one line.

``--patterns`` loads both models in this process and runs one ``repeated_random`` probe through
each: the same token ids when both tokenizers draw from the same vocabulary (else refused, one
line). Each head's attention pattern is averaged over the batch (the probe's sequences differ in
their tokens but share their layout, so the average keeps the head's positional habit: an
induction stripe, the previous-token diagonal), flattened over the causal (query, key) cells, and
heads are matched by the Pearson correlation of those patterns with the same optimal assignment
as the profile matching (cost 1 - correlation, plus the same small penalty for an index change).
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from icltest.diff.inputs import DiffInputError

PYTEST_EXIT = {2: "interrupted or a test-collection error", 3: "internal error", 4: "usage error",
               5: "no tests collected"}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.strip("/").replace("/", "_"))[-60:] or "model"


def _first_error(lines: list[str]) -> str:
    """The most telling line of a failed pytest run: the first error line, else the last line."""
    summary = re.compile(r"^=*\s*(\d+ \w+(, )?)+ in [\d.]+s")
    for line in lines:
        text = line.strip()
        if summary.match(text):
            continue
        if text.startswith(("E ", "ERROR:")) or re.search(r"\b\w*Error\b:", text) or "error:" in text.lower():
            return text[2:].strip() if text.startswith("E ") else text
    return lines[-1].strip() if lines else ""


def _model_text(value: Any) -> str:
    """A spec's ``model:`` as written: ``smollm2-135m``, ``org/name@rev``, ``path/to/folder``."""
    if isinstance(value, dict):
        name = next((str(value[k]) for k in ("alias", "id", "path", "gguf") if value.get(k)), None)
        if name is None:
            return json.dumps(value, default=str)
        return f"{name}@{value['revision']}" if value.get("revision") else name
    return str(value)


def suite_models(suite: str | Path) -> list[tuple[Path, str]]:
    """(spec file, its ``model:``) for every spec in ``suite`` (a file, or the spec files in a folder)
    that names its own model. Such a spec ignores ``--icl-model``: the spec's model wins, so run
    mode would measure that one model twice. Files that do not parse are left to pytest's error."""
    import yaml

    from icltest.discovery import looks_like_spec

    root = Path(suite)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
                       and looks_like_spec(p, named=False))
    else:
        files = [root]
    found = []
    for path in files:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("model") not in (None, "", {}):
            found.append((path, _model_text(data["model"])))
    return found


def run_suite(suite: str, model: str, out: Path, pytest_args: str = "", tag: str = "") -> Path:
    """Run ``suite`` on ``model`` with pytest; the report JSON's path (DiffInputError on failure)."""
    report = out / f"{tag}{_slug(model)}.json"
    cmd = [sys.executable, "-m", "pytest", suite, "--icl-model", model, "--icl-json", str(report),
           "-p", "no:cacheprovider", "-q", *shlex.split(pytest_args or "")]
    start = time.perf_counter()
    print(f"icltest diff: running {suite} on {model} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if proc.returncode not in (0, 1) or not report.exists():
        why = PYTEST_EXIT.get(proc.returncode, f"exit status {proc.returncode}")
        if proc.returncode == 5 or "no match in any of" in proc.stdout + proc.stderr:
            why = "nothing collected: is the suite a spec file with schema_version at its head?"
        hint = _first_error(lines)
        raise DiffInputError(f"pytest on {model} failed ({why}; no report written): {hint[:300]}")
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        data = {}
    if isinstance(data, dict) and not data.get("claims"):
        errors = [e.get("error", "") for e in data.get("spec_errors") or [] if isinstance(e, dict)]
        first = next((l.strip() for e in errors for l in e.splitlines() if l.strip()), "")
        raise DiffInputError(f"pytest on {model} ran no claims" + (f" (spec error: {first[:300]})" if first else
                                                                    f": {lines[-1].strip()[:300] if lines else ''}"))
    print(f"icltest diff: {model}: {lines[-1].strip('= ') if lines else 'done'} "
          f"({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
    return report


def _positions(loaded: Any) -> int | None:
    config = getattr(loaded.model, "config", None)
    config = getattr(config, "text_config", None) or config
    for key in ("n_positions", "max_position_embeddings"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None


def mean_patterns(loaded: Any, tokens: Any) -> Any:
    """[layers * heads, causal cells]: each head's attention pattern averaged over the batch."""
    import torch

    from icltest.models.hooks import attention_callbacks

    adapter = loaded.adapter
    seq = tokens.shape[1]
    rows, cols = torch.tril_indices(seq, seq, offset=0)
    keep = rows > 0  # the first query can only attend to itself
    rows, cols = rows[keep], cols[keep]
    out = torch.zeros(adapter.n_layers, adapter.n_heads, rows.numel())

    def on_layer(layer: int, probs: Any) -> None:
        mean = probs.float().mean(dim=0).cpu()  # [heads, q, k]
        out[layer] = mean[:, rows, cols]

    device = next(loaded.model.parameters()).device
    with torch.inference_mode(), attention_callbacks(adapter, on_layer):
        loaded.model(input_ids=tokens.to(device))
    return out.reshape(adapter.n_layers * adapter.n_heads, -1).numpy()


def pattern_matching(model_a: str, model_b: str, *, length: int = 50, batch: int = 16, seed: int = 0,
                     poor: float = 0.5) -> dict[str, Any]:
    """Heads of two models matched by the correlation of their mean attention patterns."""
    import numpy as np

    from icltest.diff.heads import assign, head_name
    from icltest.models.loading import ModelSource
    from icltest.probes import repeated_random
    from icltest.session import Session

    session = Session()
    loaded = [session.model(ModelSource(path=ref) if Path(ref).is_dir() else ModelSource.from_ref(ref))
              for ref in (model_a, model_b)]
    vocabs = [session.vocab(m) for m in loaded]
    if vocabs[0].size != vocabs[1].size or not bool((vocabs[0].allowed == vocabs[1].allowed).all()) \
            or vocabs[0].bos_id != vocabs[1].bos_id:
        return {"available": False, "reason": f"attention patterns not compared: the tokenizers differ ({vocabs[0].size} "
                                              f"vs {vocabs[1].size} drawable tokens), so no probe is the same input"}
    limits = [p for p in (_positions(m) for m in loaded) if p]
    if limits:
        length = min(length, (min(limits) - 1) // 2)
    probe = repeated_random(vocabs[0], length=length, repeats=2, batch=batch, seed=seed)
    pats = [mean_patterns(m, probe.tokens) for m in loaded]
    a = pats[0] - pats[0].mean(axis=1, keepdims=True)
    b = pats[1] - pats[1].mean(axis=1, keepdims=True)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (a / na) @ (b / nb).T
    heads = [[head_name(l, h) for l in range(m.adapter.n_layers) for h in range(m.adapter.n_heads)] for m in loaded]
    dist = 1.0 - corr  # NaN where a head attends uniformly (no variance): incomparable
    match = assign(heads[0], heads[1], dist, poor=poor)
    for pair in match["pairs"]:  # similarity as the correlation itself
        pair["similarity"] = None if pair["distance"] is None else 1.0 - pair["distance"]
        pair["poor"] = pair["similarity"] is None or pair["similarity"] < poor
        pair.pop("nearest_b", None)
    match["poor"] = [p for p in match["pairs"] if p["poor"]]
    match["moved"] = sorted((p for p in match["pairs"] if p["moved"]), key=lambda p: -(p["similarity"] or 0.0))
    match["poor_threshold"] = poor
    return {"available": True, "probe": probe.label, "models": [model_a, model_b], "matching": match}
