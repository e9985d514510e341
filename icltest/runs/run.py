"""One metric on one input set under a list of interventions, cached by (inputs, interventions).

A :class:`Run` builds its inputs once (a token probe, or task prompts), then answers
``value()`` for the clean model and ``values([variant, ...])`` for any number of variants (an
:class:`Ablation` is one variant: heads or blocks to remove, and how). Variants are *stacked in
the batch*: K variants run as K copies of the input batch in one forward pass, each variant's
interventions restricted to its own rows, so a sweep over 270 heads costs 270 / K forward
passes instead of 270. Values are cached per variant, so claims that share a (model, metric,
inputs) share their forward passes: the clean run is computed once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from icltest.errors import InputError
from icltest.runs.metrics import METRICS
from icltest.scores import metrics as M

CHUNK = 16  # prompts per forward pass for task metrics
LOGIT_BUDGET = 2**30  # bytes of float32 logits one stacked forward may produce (then K shrinks)


@dataclass(frozen=True)
class Ablation:
    """One variant: what to remove (heads (layer, head) or whole blocks of one part), and how.

    ``post_norm`` ("frozen" / "live") says what head ablation means on post-norm models; see
    :mod:`icltest.interventions.ablate`. It is recorded with every result.
    """

    heads: tuple[tuple[int, int], ...] = ()
    layers: tuple[int, ...] = ()
    part: str = "attn"
    method: str = "zero"
    post_norm: str = "frozen"

    def label(self) -> str:
        if self.heads:
            names = ",".join(f"L{l}H{h}" for l, h in self.heads)
            return f"{self.method}-ablate heads {names}"
        return f"{self.method}-ablate {self.part} of layers {','.join(map(str, self.layers))}"


@dataclass
class Inputs:
    """A built input set.

    Attributes:
        tokens: [batch, seq] ids.
        valid: [batch, seq] positions that count for means (False at BOS / padding).
        mask: attention mask for left-padded prompts (task metrics), else None.
        label: human-readable description (kind, parameters, seed, BOS handling).
        params: the parameters, for records.
        answer_ids: task metrics: each prompt's first answer token id.
        probe: probe metrics: the probe object (prefix, segment, repeats...).
        other_ids: logit_diff: the competing (remembered) answer's ids.
        answer_tokens: task metrics: every answer token, as it follows the prompt.
        full: task metrics: rows scored on every answer token (their first token collides with
            another answer's); their input is prompt + answer[:-1], teacher-forced.
        prompts, answers: task metrics: the prompt texts and bare answers, for records and checks.
    """

    tokens: torch.Tensor
    valid: torch.Tensor
    mask: torch.Tensor | None
    label: str
    params: dict[str, Any]
    answer_ids: list[Any] = field(default_factory=list)
    probe: Any = None
    other_ids: list[Any] = field(default_factory=list)
    answer_tokens: list[list[int]] = field(default_factory=list)
    full: list[bool] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)

    @property
    def kept(self) -> int:
        """Positions of logits a task row needs: its longest fully scored answer (else 1)."""
        return max([len(t) for t, f in zip(self.answer_tokens, self.full) if f] or [1])


def _device(loaded: Any) -> torch.device:
    return next(loaded.model.parameters()).device


class Run:
    """One metric on one input set, for one loaded model.

    Args:
        session: the session (counts forward passes, builds vocabularies).
        loaded: the loaded model.
        metric: a :class:`~icltest.schema.spec.MetricSpec` (or anything with the same attributes).
        probe_spec: the token probe for probe metrics (ignored by task metrics).
        reference_seed: seed of the reference inputs for mean / resample (default seed + 1). Task
            references also use the other split of the items; natural-text references use the
            corpus documents the judged batch does not.
        stack: variants per forward pass (1 = one by one); None picks the most that fit
            :data:`LOGIT_BUDGET`.
    """

    def __init__(self, session: Any, loaded: Any, metric: Any, probe_spec: Any = None,
                 reference_seed: int | None = None, stack: int | None = None) -> None:
        self.session, self.loaded, self.metric, self.probe_spec = session, loaded, metric, probe_spec
        self.info = METRICS[metric.name]
        self.split = (getattr(metric, "split", None) or "test") if self.is_task else None
        self.inputs = self._build(seed=None)
        base_seed = int(self.inputs.params.get("seed", 0) or 0)
        self.reference_seed = base_seed + 1 if reference_seed is None else int(reference_seed)
        self.stack = stack
        self._values: dict[Ablation | None, float] = {}
        self._references: dict[str, Any] = {}
        self.seconds = 0.0

    # ------------------------------------------------------------------ inputs

    @property
    def is_task(self) -> bool:
        return self.info.inputs == "task"

    def _build(self, seed: int | None) -> Inputs:
        if self.is_task:
            return self._task_inputs(seed)
        from icltest.probes import make_probe
        from icltest.schema.spec import ProbeSpec

        spec = self.probe_spec if self.probe_spec is not None else ProbeSpec()
        if seed is not None:
            spec = spec.model_copy(update={"seed": seed})
        if self.info.probe_kind and getattr(spec, "kind", "repeated_random") != self.info.probe_kind:
            raise InputError(f"{self.metric.name} needs a {self.info.probe_kind} probe, got {spec.kind}")
        probe = make_probe(spec, self.session.vocab(self.loaded), self.loaded.tokenizer)
        return Inputs(probe.tokens, probe.valid, None, probe.label, dict(probe.params), probe=probe)

    def _task_inputs(self, seed: int | None, split: str | None = None) -> Inputs:
        from icltest.probes.books import BOOK_KINDS, build_book_prompts, remembered_answers
        from icltest.probes.splits import other_split
        from icltest.probes.tasks import build_icl_prompts, pad_left, task_label

        m = self.metric
        split = split or self.split
        kwargs = dict(n=m.n or 48, seed=(m.seed or 0) if seed is None else seed,
                      chat_template=m.chat_template or "no", shots=m.shots or 0, split=split,
                      shuffled_labels=bool(m.shuffled_labels), full_answers=m.name != "logit_diff")
        tok = self.loaded.tokenizer
        build = build_book_prompts if m.task in BOOK_KINDS else build_icl_prompts
        batch = build(m.task, tok, **kwargs)
        from icltest.probes.prompts import pad_id

        pad = pad_id(tok)
        # A fully scored row reads its answer teacher-forced: prompt + every answer token but the last.
        rows = [ids + tokens[:-1] if full else ids
                for ids, tokens, full in zip(batch.input_ids, batch.answer_tokens, batch.full)]
        ids, mask = pad_left(rows, pad)
        params = dict(batch.params, reference_split=other_split(split))
        other = remembered_answers(batch, tok) if m.name == "logit_diff" else []
        return Inputs(ids, mask.bool(), mask, task_label(params), params, answer_ids=list(batch.answer_ids),
                      other_ids=other, answer_tokens=batch.answer_tokens, full=batch.full,
                      prompts=batch.prompts, answers=batch.answers)

    def _reference_inputs(self) -> Inputs:
        """Inputs whose activations mean / resample ablation write, disjoint from the judged ones.

        Task metrics: the other split of the items at ``reference_seed`` (without it, another
        seed of the same split would only reorder the same items when n covers them). Natural
        text: the corpus documents the judged batch does not hold (seeds of one corpus overlap).
        Random tokens: the probe at ``reference_seed``.
        """
        from icltest.probes.splits import other_split

        if self.is_task:
            return self._task_inputs(self.reference_seed, split=other_split(self.split or "test"))
        if self.inputs.params.get("kind") == "natural_text":
            from icltest.probes.natural_text import natural_text_reference

            probe = natural_text_reference(self.loaded.tokenizer, self.inputs.probe, seed=self.reference_seed)
            return Inputs(probe.tokens, probe.valid, None, probe.label, dict(probe.params), probe=probe)
        return self._build(seed=self.reference_seed)

    # ------------------------------------------------------------------ forward passes

    def _forward(self, ids: torch.Tensor, keep: Any, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits at the kept positions only: the unembedding is most of a small model's cost."""
        from icltest.models.forward import logits_at

        with torch.no_grad():
            out = logits_at(self.loaded.model, ids, keep, mask)
        self.session.forward_passes += 1
        return out

    def _stacked(self, variants: Sequence[Ablation | None], ids: torch.Tensor, keep: Any,
                 mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """One forward pass over len(variants) copies of ``ids``; per-variant logits (float32, CPU)."""
        from icltest.interventions import apply

        n, k = ids.shape[0], len(variants)
        edits = [e for i, v in enumerate(variants) if v is not None for e in self._edits(v, (i * n, (i + 1) * n))]
        with apply(self.loaded.adapter, edits):
            logits = self._forward(ids.repeat(k, 1), keep, None if mask is None else mask.repeat(k, 1)).float().cpu()
        return list(logits.split(n))

    def _edits(self, ablation: Ablation, rows: tuple[int, int] | None) -> list[Any]:
        from icltest.interventions import block_ablation, head_ablation

        adapter = self.loaded.adapter
        if ablation.heads:
            ref = self._reference("heads") if ablation.method != "zero" else None
            edits, _ = head_ablation(adapter, ablation.heads, ablation.method, ref, seed=self.reference_seed,
                                     rows=rows, post_norm=ablation.post_norm)
            return edits
        ref = self._reference(ablation.part) if ablation.method != "zero" else None
        return block_ablation(adapter, ablation.layers, ablation.part, ablation.method, ref, rows=rows)

    def _group(self, n_variants: int, rows: int, kept: int) -> int:
        """Variants per forward pass: ``stack`` if set; else 1 on CPU (a CPU forward costs the same
        per row however the rows are batched, and measured slower stacked: benchmarks/
        stacked_ablation.py), and on an accelerator as many as fit :data:`LOGIT_BUDGET`."""
        if self.stack is not None:
            return max(1, int(self.stack))
        if _device(self.loaded).type == "cpu":
            return 1
        vocab = int(self.loaded.model.get_output_embeddings().weight.shape[0])
        return max(1, min(n_variants, LOGIT_BUDGET // max(1, rows * kept * vocab * 4)))

    # ------------------------------------------------------------------ reading the metric

    def _loss_indices(self) -> torch.Tensor:
        """Loss indices (i predicts token i+1) the metric reads."""
        m, probe, tokens = self.metric, self.inputs.probe, self.inputs.tokens
        if m.name == "repeated_token_loss":
            positions = M.segment_positions(prefix=probe.prefix, segment=probe.segment,
                                            repeats=probe.params["repeats"], part=m.part or "second_half")
            index = sorted(p - 1 for p in positions)
        else:
            late, early = icl_positions(probe, m.late, m.early)
            window = m.window or 1
            index = sorted({i for end in (late, early) for i in range(max(0, end - window), end)})
        out = torch.tensor(index, dtype=torch.long)
        return out[(out >= 0) & (out < tokens.shape[1] - 1)]

    def _read_probe(self, logits: torch.Tensor, index: torch.Tensor) -> float:
        tokens, probe, m = self.inputs.tokens, self.inputs.probe, self.metric
        picked = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tokens[:, index + 1], reduction="none")
        loss = torch.full((tokens.shape[0], tokens.shape[1] - 1), float("nan"))
        loss[:, index] = picked
        if m.name == "repeated_token_loss":
            return M.segment_loss(loss, prefix=probe.prefix, segment=probe.segment,
                                  repeats=probe.params["repeats"], part=m.part or "second_half")
        late, early = icl_positions(probe, m.late, m.early)
        return M.icl_score(loss, late=late, early=early, window=m.window or 1)

    def _read_task(self, kept: torch.Tensor) -> float:
        """The task metric from the last ``inputs.kept`` positions' logits [n, K, vocab]."""
        m, inputs = self.metric, self.inputs
        if m.name == "logit_diff":
            return float(M.logit_diff(kept[:, -1], inputs.answer_ids, inputs.other_ids).mean())
        if m.name == "answer_prob":
            return float(M.answer_probability(kept, inputs.answer_tokens, inputs.full).mean())
        if m.name == "answer_logprob":
            from icltest.attribution.patching import answer_logprob

            return float(answer_logprob(kept, inputs.answer_tokens, inputs.full).mean())
        return float(M.answer_matches(kept, inputs.answer_tokens, inputs.full).float().mean())

    def _evaluate(self, variants: Sequence[Ablation | None]) -> list[float]:
        inputs = self.inputs
        if not self.is_task:
            index = self._loss_indices()
            size = self._group(len(variants), inputs.tokens.shape[0], len(index))
            out: list[float] = []
            for start in range(0, len(variants), size):
                group = variants[start:start + size]
                out += [self._read_probe(lg, index) for lg in self._stacked(group, inputs.tokens, index)]
            return out
        kept = inputs.kept
        size = self._group(len(variants), min(CHUNK, inputs.tokens.shape[0]), kept)
        values = []
        for start in range(0, len(variants), size):
            group = variants[start:start + size]
            lasts: list[list[torch.Tensor]] = [[] for _ in group]
            for c in range(0, inputs.tokens.shape[0], CHUNK):
                ids, mask = inputs.tokens[c:c + CHUNK], inputs.mask[c:c + CHUNK]  # type: ignore[index]
                for slot, logits in zip(lasts, self._stacked(group, ids, kept, mask)):
                    slot.append(logits[:, -kept:])
            values += [self._read_task(torch.cat(parts)) for parts in lasts]
        return values

    def values(self, variants: Sequence[Ablation | None]) -> list[float]:
        """The metric under each variant (None = clean), stacked; cached per variant."""
        todo = list(dict.fromkeys(v for v in variants if v not in self._values))
        if todo:
            start = time.perf_counter()
            # frozen and live head ablations cannot share a forward pass (one norm scale per layer)
            for mode in dict.fromkeys(getattr(v, "post_norm", None) for v in todo):
                group = [v for v in todo if getattr(v, "post_norm", None) == mode]
                for variant, value in zip(group, self._evaluate(group)):
                    self._values[variant] = value
            self.seconds += time.perf_counter() - start
        return [self._values[v] for v in variants]

    def value(self, ablation: Ablation | None = None) -> float:
        """The metric, clean (None) or under one variant."""
        return self.values([ablation])[0]

    # ------------------------------------------------------------------ references

    def _reference(self, what: str) -> Any:
        """Activations on the reference inputs (same kind, seed ``reference_seed``), captured once."""
        from icltest.interventions import capture_head_outputs, capture_layer_outputs
        from icltest.interventions.reference import HeadReference, LayerReference

        if what not in self._references:
            ref = self._reference_inputs()
            model, adapter = self.loaded.model, self.loaded.adapter
            parts = []
            chunk = CHUNK if ref.mask is not None else ref.tokens.shape[0]
            for s in range(0, ref.tokens.shape[0], chunk):
                ids, valid = ref.tokens[s:s + chunk], ref.valid[s:s + chunk]
                mask = ref.mask[s:s + chunk] if ref.mask is not None else None
                wrapped = _CaptureModel(model, mask)
                self.session.forward_passes += 1
                if what == "heads":
                    parts.append(capture_head_outputs(wrapped, adapter, ids, valid))
                else:
                    parts.append(capture_layer_outputs(wrapped, adapter, ids, what, valid))
            if what == "heads":
                self._references[what] = HeadReference(
                    z={l: torch.cat([p.z[l] for p in parts]) for l in parts[0].z}, valid=ref.valid)
            else:
                self._references[what] = LayerReference(
                    part=what, out={l: torch.cat([p.out[l] for p in parts]) for l in parts[0].out}, valid=ref.valid)
        return self._references[what]

    def check_resample(self) -> None:
        """Resample needs equal-length inputs: raise InputError for task prompts."""
        if self.is_task:
            raise InputError("resample ablation needs equal-length inputs; task prompts differ in length - "
                             "use method: mean (or zero) with task metrics")

    def describe(self) -> dict[str, Any]:
        out = {"metric": self.metric.name, "inputs": self.inputs.label, "params": self.inputs.params,
               "reference_seed": self.reference_seed}
        if self.is_task:
            out["reference_split"] = self.inputs.params["reference_split"]
        return out


class _CaptureModel:
    """Calls a model with a fixed mask / position ids and only the last logits (reference capture
    reads activations, never the unembedding)."""

    def __init__(self, model: Any, mask: torch.Tensor | None = None) -> None:
        self.model, self.mask = model, mask

    def parameters(self) -> Any:
        return self.model.parameters()

    def __call__(self, input_ids: torch.Tensor) -> Any:
        from icltest.models.forward import logits_at

        return logits_at(self.model, input_ids, 1, self.mask)


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


def run_key(loaded: Any, metric: Any, probe_spec: Any, reference_seed: int | None) -> Any:
    """The cache key of a Run: task metrics ignore the token probe (the metric table says which)."""
    import json

    def dump(obj: Any) -> Any:
        return obj.model_dump(mode="json", exclude_none=True) if hasattr(obj, "model_dump") else (
            vars(obj) if obj is not None else None)

    probe = None if METRICS[metric.name].inputs == "task" else dump(probe_spec)
    return (loaded.source, json.dumps([dump(metric), probe, reference_seed], sort_keys=True, default=str))


def session_run(session: Any, loaded: Any, metric: Any, probe_spec: Any, reference_seed: int | None) -> Run:
    """The session's shared Run for (model, metric, inputs, reference seed)."""
    key = run_key(loaded, metric, probe_spec, reference_seed)
    runs = session._metric_runs
    if key not in runs:
        runs[key] = Run(session, loaded, metric, probe_spec, reference_seed)
    return runs[key]
