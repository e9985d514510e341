"""Session-wide caches: each model loads once, each (model, probe) runs forward once.

Claims that share a probe share its forward pass: the first claim to need a (model, probe)
pair triggers one hooked forward that computes *every* pattern score for every head, layer by
layer, plus per-token losses; later claims read the stored [layers, heads] tables.

There is no global session: the pytest plugin keeps one per pytest run in ``config.stash`` and
the CLI builds its own. Loaded models are the one thing shared across sessions, per process
(:data:`_LOADED`): loading takes seconds to minutes, a loaded model is not changed by claims
(hooks and ablations are always removed), and nested pytest runs in one process (pytester)
should not pay for it again, while their forward-pass counts and run caches stay separate.

A model that failed to load (or whose config could not be read) is remembered for the session:
every later item that needs it gets the same short error at once instead of retrying a load
that may take minutes (hub retries) or print pages of output each time.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from icltest.errors import ModelError
from icltest.models.geometry import ModelGeometry
from icltest.models.loading import LoadedModel, ModelSource, load_model


_LOADED: dict[ModelSource, LoadedModel] = {}
"""Models loaded in this process, by source (what the plugin's sessions share)."""


def clear_loaded_models() -> None:
    """Forget the process's loaded models (frees their memory once no session holds them)."""
    _LOADED.clear()


@dataclass
class PatternRun:
    """The result of one hooked forward pass over one probe.

    Attributes:
        scores: score name -> float tensor [layers, heads] pooled over the batch.
        per_sequence: score name -> float tensor [layers, batch, heads] (NaN where undefined).
        token_loss: [batch, seq-1] next-token cross-entropy (nats) at each position.
        probe: the probe that was run.
        seconds: wall time of the forward pass.
    """

    scores: dict[str, Any]
    per_sequence: dict[str, Any]
    token_loss: Any
    probe: Any
    seconds: float


def _probe_key(spec: Any) -> str:
    if hasattr(spec, "model_dump"):
        return json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    return json.dumps(dict(vars(spec)), sort_keys=True, default=str)


@dataclass
class Session:
    """Caches for one pytest session or one CLI command.

    Attributes:
        cache_dir: where dequantized GGUF weights live (None: $ICLTEST_CACHE or ~/.cache/icltest).
        progress: print per-layer progress to stderr during forward passes (CLI scans).
        forward_passes: number of model forward passes run (tests use it to prove sharing).
        seed: the session seed property claims derive their Hypothesis seeds from (--icl-seed).
    """

    cache_dir: Path | None = None
    progress: bool = False
    seed: int = 0
    forward_passes: int = 0
    _models: dict[ModelSource, LoadedModel] = field(default_factory=dict)
    _vocabs: dict[ModelSource, Any] = field(default_factory=dict)
    _runs: dict[tuple[ModelSource, str], PatternRun] = field(default_factory=dict)
    _metric_runs: dict[Any, Any] = field(default_factory=dict)
    _failed: dict[ModelSource, ModelError] = field(default_factory=dict)
    _geometry: dict[ModelSource, ModelGeometry | None] = field(default_factory=dict)
    _memo: dict[Any, Any] = field(default_factory=dict)

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per session for ``key`` (start it with the claim kind's name and
        include the model source and everything that changes the result), then the stored value.

        What claims of one kind share (an attribution map, a span-attention run) lives here, so
        a kind needs no cache of its own.
        """
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def model(self, source: ModelSource | Any) -> LoadedModel:
        """The loaded model for ``source``: this session's, else the process's, else loaded now.

        Raises:
            ModelError: the load failed, now or earlier in this session (then without retrying).
        """
        if not isinstance(source, ModelSource):
            source = ModelSource.from_ref(source)
        if source not in self._models:
            self._raise_if_failed(source)
            if source not in _LOADED:
                try:
                    _LOADED[source] = load_model(source, self.cache_dir)
                except ModelError as exc:
                    self._failed[source] = exc
                    raise
            self._models[source] = _LOADED[source]
        return self._models[source]

    def geometry(self, source: ModelSource) -> ModelGeometry | None:
        """The model's layers, heads and positions from its config, without loading weights.

        None when that needs the network (a hub id not in the local cache). Cached per session;
        a failure (missing folder, unsupported architecture) is remembered like a failed load.
        """
        from icltest.models import geometry
        from icltest.models.aliases import _default_cache, resolve_alias

        if source in self._models:
            return self._models[source].geometry
        self._raise_if_failed(source)
        if source not in self._geometry:
            try:
                if source.alias:
                    folder, name = resolve_alias(source.alias, self.cache_dir or _default_cache())
                    found: ModelGeometry | None = geometry.from_gguf(folder / name)
                elif source.path and source.gguf_file:
                    found = geometry.from_gguf(Path(source.path) / source.gguf_file)
                elif source.path:
                    found = geometry.from_folder(Path(source.path))
                else:
                    found = geometry.from_hub_cache(source.id, source.revision) if source.id else None
            except ModelError as exc:
                self._failed[source] = exc
                raise
            self._geometry[source] = found
        return self._geometry[source]

    def _raise_if_failed(self, source: ModelSource) -> None:
        if source in self._failed:
            raise self._failed[source].with_traceback(None)

    def add_model(self, loaded: LoadedModel) -> None:
        """Register an already-built model (e.g. a constructed test model) in this session only."""
        self._models[loaded.source] = loaded

    def vocab(self, loaded: LoadedModel) -> Any:
        from icltest.probes import vocab_from_tokenizer

        if loaded.source not in self._vocabs:
            rows = loaded.model.get_input_embeddings().weight.shape[0]
            self._vocabs[loaded.source] = vocab_from_tokenizer(loaded.tokenizer, rows)
        return self._vocabs[loaded.source]

    def pattern_run(self, loaded: LoadedModel, probe_spec: Any) -> PatternRun:
        key = (loaded.source, _probe_key(probe_spec))
        if key not in self._runs:
            from icltest.probes import make_probe

            probe = make_probe(probe_spec, self.vocab(loaded), loaded.tokenizer)
            self._runs[key] = run_patterns(loaded, probe, progress=self._progress_fn(loaded))
            self.forward_passes += 1
        return self._runs[key]

    def _progress_fn(self, loaded: LoadedModel) -> Callable[[int], None] | None:
        if not self.progress:
            return None
        total = loaded.adapter.n_layers

        def report(layer: int) -> None:
            end = "\n" if layer + 1 == total else "\r"
            print(f"  forward {loaded.source.name}: layer {layer + 1}/{total}", end=end, file=sys.stderr)

        return report


def run_patterns(loaded: LoadedModel, probe: Any, progress: Callable[[int], None] | None = None) -> PatternRun:
    """One hooked forward pass: every pattern score for every head, computed layer by layer."""
    import torch

    from icltest.models.hooks import attention_callbacks
    from icltest.scores import patterns

    adapter = loaded.adapter
    device = next(loaded.model.parameters()).device
    tokens = probe.tokens.to(device)
    valid = probe.valid.to(device)
    targets = {name: getattr(patterns, f"{name}_targets")(tokens, valid) for name in patterns.SCORE_NAMES}
    n_layers, n_heads, batch = adapter.n_layers, adapter.n_heads, tokens.shape[0]
    pooled = {name: torch.full((n_layers, n_heads), float("nan")) for name in targets}
    per_seq = {name: torch.full((n_layers, batch, n_heads), float("nan")) for name in targets}

    def on_layer(layer: int, probs: torch.Tensor) -> None:
        for name, (target, query_mask) in targets.items():
            pooled[name][layer] = patterns.pattern_score(probs, target, query_mask).float().cpu()
            per_seq[name][layer] = patterns.pattern_score(probs, target, query_mask, per_sequence=True).float().cpu()
        if progress is not None:
            progress(layer)

    start = time.perf_counter()
    with torch.inference_mode(), attention_callbacks(adapter, on_layer):
        logits = loaded.model(input_ids=tokens).logits
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), tokens[:, 1:], reduction="none"
    ).cpu()
    del logits
    return PatternRun(pooled, per_seq, loss, probe, round(time.perf_counter() - start, 3))
