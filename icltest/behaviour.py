"""Behavioural measurements: one metric on one set of inputs, clean or under an ablation.

A :class:`MetricRun` builds its inputs once (a token probe or a batch of task prompts), then
answers ``value()`` for the clean model and ``value(ablation)`` for any set of heads or blocks.
Values are cached by ablation, so claims that share a (model, metric) share their forward passes:
the clean run is computed once however many ablation claims compare against it.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch

from icltest.scores import metrics as M

CHUNK = 16  # prompts per forward pass for task metrics


@dataclass(frozen=True)
class Ablation:
    """What to remove: heads (layer, head) or whole blocks (layers of one part), and how."""

    heads: tuple[tuple[int, int], ...] = ()
    layers: tuple[int, ...] = ()
    part: str = "attn"
    method: str = "zero"

    def label(self) -> str:
        if self.heads:
            names = ",".join(f"L{l}H{h}" for l, h in self.heads)
            return f"{self.method}-ablate heads {names}"
        return f"{self.method}-ablate {self.part} of layers {','.join(map(str, self.layers))}"


@dataclass
class _Inputs:
    tokens: torch.Tensor  # [batch, seq]
    valid: torch.Tensor  # [batch, seq] positions that count for means (False at BOS/padding)
    mask: torch.Tensor | None  # attention mask for left-padded prompts
    label: str
    params: dict[str, Any]
    answer_ids: list[int] = field(default_factory=list)
    probe: Any = None
    other_ids: list[int] = field(default_factory=list)  # logit_diff: the competing answer's first token


def _device(loaded: Any) -> torch.device:
    return next(loaded.model.parameters()).device


class MetricRun:
    """One metric on one input set, for one loaded model.

    Args:
        session: the session (counts forward passes, builds vocabularies).
        loaded: the loaded model.
        metric: a :class:`~icltest.schema.spec.MetricSpec` (or anything with the same attributes).
        probe_spec: the token probe for repeated_token_loss / icl_score (ignored by task metrics).
        reference_seed: seed of the reference inputs for mean / resample ablation (default seed + 1).
    """

    def __init__(self, session: Any, loaded: Any, metric: Any, probe_spec: Any = None,
                 reference_seed: int | None = None) -> None:
        self.session, self.loaded, self.metric, self.probe_spec = session, loaded, metric, probe_spec
        self.inputs = self._build(seed=None)
        base_seed = int(self.inputs.params.get("seed", 0) or 0)
        self.reference_seed = base_seed + 1 if reference_seed is None else int(reference_seed)
        self._values: dict[Ablation | None, float] = {}
        self._references: dict[str, Any] = {}
        self.seconds = 0.0

    # ------------------------------------------------------------------ inputs

    @property
    def is_task(self) -> bool:
        return self.metric.name in ("accuracy", "recall", "answer_prob", "logit_diff")

    def _build(self, seed: int | None) -> _Inputs:
        if self.is_task:
            return self._task_inputs(seed)
        from icltest.probes import make_probe

        spec = self.probe_spec
        if spec is None:
            from icltest.schema.spec import ProbeSpec

            spec = ProbeSpec()
        if seed is not None:
            spec = spec.model_copy(update={"seed": seed}) if hasattr(spec, "model_copy") else _with_seed(spec, seed)
        if self.metric.name == "repeated_token_loss" and getattr(spec, "kind", "repeated_random") != "repeated_random":
            raise ValueError("repeated_token_loss needs a repeated_random probe")
        probe = make_probe(spec, self.session.vocab(self.loaded), self.loaded.tokenizer)
        return _Inputs(probe.tokens, probe.valid, None, probe.label, dict(probe.params), probe=probe)

    def _task_inputs(self, seed: int | None) -> _Inputs:
        from icltest.probes.books import BOOK_KINDS, build_book_prompts
        from icltest.probes.tasks import build_icl_prompts, pad_left

        m = self.metric
        kwargs = dict(n=m.n or 48, seed=m.seed or 0 if seed is None else seed,
                      chat_template=m.chat_template or "no", shots=m.shots or 0)
        tok = self.loaded.tokenizer
        if m.task in BOOK_KINDS:
            batch = build_book_prompts(m.task, tok, **kwargs)
        else:
            batch = build_icl_prompts(m.task, tok, **kwargs)
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        ids, mask = pad_left(batch.input_ids, pad)
        params = dict(batch.params)
        label = f"task {params['task']}(shots={params['shots']}, n={params['n']}, seed={params['seed']}, {params['template']})"
        other: list[int] = []
        if m.name == "logit_diff":
            from icltest.probes.books import remembered_answers

            other = remembered_answers(batch, tok)
        return _Inputs(ids, mask.bool(), mask, label, params, answer_ids=list(batch.answer_ids), other_ids=other)

    # ------------------------------------------------------------------ running

    def _forward(self, ids: torch.Tensor, keep: Any, **kwargs: Any) -> torch.Tensor:
        """Logits at the kept positions only: the unembedding is most of a small model's cost."""
        model = self.loaded.model
        with torch.no_grad():
            try:
                out = model(input_ids=ids, logits_to_keep=keep, **kwargs).logits
            except TypeError:  # an architecture without logits_to_keep: compute all, then select
                out = model(input_ids=ids, **kwargs).logits
                out = out[:, -keep:] if isinstance(keep, int) else out[:, keep.to(out.device)]
        self.session.forward_passes += 1
        return out

    def _last_logits(self, inputs: _Inputs) -> torch.Tensor:
        device = _device(self.loaded)
        outs = []
        for start in range(0, inputs.tokens.shape[0], CHUNK):
            ids = inputs.tokens[start:start + CHUNK].to(device)
            mask = inputs.mask[start:start + CHUNK].to(device)  # type: ignore[index]
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            outs.append(self._forward(ids, 1, attention_mask=mask, position_ids=pos)[:, -1].float().cpu())
        return torch.cat(outs)

    def _loss_indices(self, inputs: _Inputs) -> list[int]:
        """Loss indices (i predicts token i+1) the metric reads."""
        m, probe = self.metric, inputs.probe
        if m.name == "repeated_token_loss":
            positions = M.segment_positions(prefix=probe.prefix, segment=probe.segment,
                                            repeats=probe.params["repeats"], part=m.part or "second_half")
            return sorted(p - 1 for p in positions)
        late, early = icl_positions(probe, m.late, m.early)
        window = m.window or 1
        return sorted({i for end in (late, early) for i in range(max(0, end - window), end)})

    def _token_losses(self, inputs: _Inputs) -> torch.Tensor:
        """[batch, seq-1] losses, computed at the indices the metric reads (NaN elsewhere)."""
        tokens = inputs.tokens
        index = torch.tensor(self._loss_indices(inputs), dtype=torch.long)
        index = index[(index >= 0) & (index < tokens.shape[1] - 1)]
        logits = self._forward(tokens.to(_device(self.loaded)), index).float().cpu()
        picked = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tokens[:, index + 1], reduction="none")
        full = torch.full((tokens.shape[0], tokens.shape[1] - 1), float("nan"))
        full[:, index] = picked
        return full

    def _score(self, inputs: _Inputs) -> float:
        m = self.metric
        if self.is_task:
            last = self._last_logits(inputs)
            if m.name == "answer_prob":
                return float(M.answer_prob(last, inputs.answer_ids).mean())
            if m.name == "logit_diff":
                return float(M.logit_diff(last, inputs.answer_ids, inputs.other_ids).mean())
            return M.first_token_accuracy(last, inputs.answer_ids)
        loss = self._token_losses(inputs)
        probe = inputs.probe
        if m.name == "repeated_token_loss":
            return M.segment_loss(loss, prefix=probe.prefix, segment=probe.segment,
                                  repeats=probe.params["repeats"], part=m.part or "second_half")
        late, early = icl_positions(probe, m.late, m.early)
        return M.icl_score(loss, late=late, early=early, window=m.window or 1)

    def value(self, ablation: Ablation | None = None) -> float:
        """The metric, clean (None) or with ``ablation`` applied for the duration of the run."""
        if ablation not in self._values:
            start = time.perf_counter()
            with self._apply(ablation):
                self._values[ablation] = self._score(self.inputs)
            self.seconds += time.perf_counter() - start
        return self._values[ablation]

    def _apply(self, ablation: Ablation | None) -> Any:
        from icltest.interventions import ablate_heads, ablate_layers

        if ablation is None:
            return nullcontext()
        adapter = self.loaded.adapter
        if ablation.heads:
            reference = self._reference("heads", ablation.method) if ablation.method != "zero" else None
            return ablate_heads(adapter, ablation.heads, ablation.method, reference, seed=self.reference_seed)
        reference = self._reference(ablation.part, ablation.method) if ablation.method != "zero" else None
        return ablate_layers(adapter, ablation.layers, ablation.part, ablation.method, reference)

    def _reference(self, what: str, method: str) -> Any:
        """Activations on the reference inputs (same kind, seed ``reference_seed``), captured once."""
        from icltest.interventions import capture_head_outputs, capture_layer_outputs

        key = what
        if key not in self._references:
            if method == "resample" and self.is_task:
                raise ValueError("resample ablation needs equal-length inputs; task prompts differ in length — "
                                 "use method: mean (or zero) with task metrics")
            ref = self._build(seed=self.reference_seed)
            if method == "resample" and tuple(ref.tokens.shape) != tuple(self.inputs.tokens.shape):
                raise ValueError(f"resample reference shape {tuple(ref.tokens.shape)} differs from the probe's "
                                 f"{tuple(self.inputs.tokens.shape)}")
            model, adapter = self.loaded.model, self.loaded.adapter
            if ref.mask is not None:  # left-padded prompts: capture chunk by chunk, mask the padding
                parts = [self._capture(what, ref, s) for s in range(0, ref.tokens.shape[0], CHUNK)]
                self._references[key] = _concat_reference(parts, ref.valid)
            elif what == "heads":
                self._references[key] = capture_head_outputs(_MaskedModel(model), adapter, ref.tokens, ref.valid)
                self.session.forward_passes += 1
            else:
                self._references[key] = capture_layer_outputs(_MaskedModel(model), adapter, ref.tokens, what, ref.valid)
                self.session.forward_passes += 1
        return self._references[key]

    def _capture(self, what: str, ref: _Inputs, start: int) -> Any:
        from icltest.interventions import capture_head_outputs, capture_layer_outputs

        model, adapter = self.loaded.model, self.loaded.adapter
        ids = ref.tokens[start:start + CHUNK]
        valid = ref.valid[start:start + CHUNK]
        mask = ref.mask[start:start + CHUNK]  # type: ignore[index]
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        self.session.forward_passes += 1
        wrapped = _MaskedModel(model, mask, pos)
        if what == "heads":
            return capture_head_outputs(wrapped, adapter, ids, valid)
        return capture_layer_outputs(wrapped, adapter, ids, what, valid)

    def describe(self) -> dict[str, Any]:
        return {"metric": self.metric.name, "inputs": self.inputs.label, "params": self.inputs.params,
                "reference_seed": self.reference_seed}


class _MaskedModel:
    """Calls a model with fixed mask / position ids and only the last logits (reference capture
    reads activations, never the unembedding)."""

    def __init__(self, model: Any, mask: torch.Tensor | None = None, positions: torch.Tensor | None = None) -> None:
        self.model, self.mask, self.positions = model, mask, positions

    def parameters(self) -> Iterable[Any]:
        return self.model.parameters()

    def __call__(self, input_ids: torch.Tensor) -> Any:
        device = input_ids.device
        kwargs: dict[str, Any] = {}
        if self.mask is not None:
            kwargs = {"attention_mask": self.mask.to(device), "position_ids": self.positions.to(device)}  # type: ignore[union-attr]
        try:
            return self.model(input_ids=input_ids, logits_to_keep=1, **kwargs)
        except TypeError:
            return self.model(input_ids=input_ids, **kwargs)


def _concat_reference(parts: list[Any], valid: torch.Tensor) -> Any:
    """Join chunked captures (every chunk is left-padded to the same width) into one reference."""
    from icltest.interventions import HeadReference, LayerReference

    if isinstance(parts[0], HeadReference):
        return HeadReference(z={l: torch.cat([p.z[l] for p in parts]) for l in parts[0].z}, valid=valid)
    return LayerReference(part=parts[0].part, out={l: torch.cat([p.out[l] for p in parts]) for l in parts[0].out},
                          valid=valid)


def _with_seed(spec: Any, seed: int) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(**{**vars(spec), "seed": seed})


def icl_positions(probe: Any, late: int | None, early: int | None) -> tuple[int, int]:
    """Default late/early token positions for a probe.

    Repeated random tokens: the middle of the first copy vs the same offset in the last copy
    (the late token is predictable only by copying). Natural text: Olsson et al.'s tokens 50 and
    500, scaled down when the probe is shorter (10% and the last position).
    """
    seq = int(probe.tokens.shape[1])
    if late is not None and early is not None:
        return late, early
    if probe.params.get("kind") == "repeated_random":
        offset = probe.segment // 2
        d_early = probe.prefix + offset
        d_late = probe.prefix + (probe.params["repeats"] - 1) * probe.segment + offset
    else:
        d_late = min(500, seq - 1)
        d_early = max(1, min(50, d_late // 10))
    return (late if late is not None else d_late), (early if early is not None else d_early)


def session_metric_run(session: Any, loaded: Any, metric: Any, probe_spec: Any, reference_seed: int | None) -> MetricRun:
    """The session's shared MetricRun for (model, metric, probe, reference seed)."""
    import json

    def dump(obj: Any) -> Any:
        return obj.model_dump(mode="json", exclude_none=True) if hasattr(obj, "model_dump") else (vars(obj) if obj is not None else None)

    key = (loaded.source, json.dumps([dump(metric), None if getattr(metric, "name", "") in ("accuracy", "recall", "answer_prob") else dump(probe_spec), reference_seed], sort_keys=True, default=str))
    runs = session._metric_runs
    if key not in runs:
        runs[key] = MetricRun(session, loaded, metric, probe_spec, reference_seed)
    return runs[key]

