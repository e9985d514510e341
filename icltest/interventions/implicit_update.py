"""Implicit weight updates: a context's effect at one block, rewritten as rank-1 patches to its weights.

Dherin et al. (2025, "Learning without training") observe that for a block ``M_W(A(.))`` whose
MLP reads the vector ``A`` (the normalised MLP input at the last token), the context ``C`` changes
``A(x)`` into ``A(C, x) = A(x) + dA``, and for every matrix ``W`` that reads ``A``::

    W A(C, x) = (W + dW) A(x),    dW = (W dA) A(x)^T / ||A(x)||^2      (rank 1)

so the with-context MLP output is the context-free MLP output of patched weights. Goldwaser et
al. (2025, "Equivalence of context and parameter updates in modern transformer blocks") extend it
to the whole block (skip connection, gating, pre- and post-norms): patches on the matrices that read
the normalised input make the MLP's hidden vector the with-context one ("input controllability"),
and a rank-1 patch on the down projection plus, behind a post-norm, a patch of the norm's scale
make the block write any vector ("output controllability"); together they reproduce the
with-context block output from the context-free input.

Two forms here (``through``):

- ``mlp``: every matrix that reads the MLP input (SwiGLU / GeGLU: ``gate_proj`` and ``up_proj``;
  GPT-2: ``c_fc``, its bias untouched; GPT-NeoX: ``dense_h_to_4h``) gets ``dW`` above. Compared at
  ``blocks.L.mlp_out``: the MLP's output as it is added to the residual stream (on Gemma 2/3 after
  the post-feedforward norm, which needs no patch because the hidden vector is reproduced).
- ``block``: the same input patches, then the down projection ``D`` is patched so that the MLP
  branch writes ``v = resid_post(C, x) - (resid_post(x) - mlp_out(x))``, i.e. the with-context
  block output minus what the context-free skip path (and, in GPT-NeoX's parallel block, the
  context-free attention) already carries: ``dD = (m - D z_C - b) z_C^T / ||z_C||^2`` with ``z_C``
  the with-context hidden vector. Without a post-norm ``m = v``. Behind an RMSNorm post-norm
  (Gemma 2/3) the norm can only write vectors ``gamma * u`` with ``rms(u) = 1`` (up to eps), so its
  scale is patched as well: ``gamma' = sqrt(mean(v^2) + eps)`` on every coordinate and ``m = v``,
  which makes ``norm'(v) = v`` exactly. Compared at ``blocks.L.resid_post``.

The patches are exact in real arithmetic; in floating point the error is rounding (measured in
``benchmarks/implicit_update.py``). They are token-dependent: built for one prompt's last token.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from icltest.errors import InputError, InterventionError
from icltest.interventions.core import WeightEdit, apply, capture
from icltest.models.forward import logits_at
from icltest.models.hookpoints import HookPoint, check_point

THROUGH: tuple[str, ...] = ("mlp", "block")
POINTS: tuple[str, ...] = ("mlp_in", "mlp_hidden", "mlp_out", "resid_post")


# ------------------------------------------------------------------------------------ modules

def _is_conv1d(module: Any) -> bool:
    return type(module).__name__ == "Conv1D"  # GPT-2: y = x @ W + b, W is [in, out]


def weight_matrix(module: Any) -> torch.Tensor:
    """The module's weight as [out, in] (Linear as stored, GPT-2 Conv1D transposed)."""
    weight = module.weight.detach()
    return weight.t() if _is_conv1d(module) else weight


def _in_features(module: Any) -> int | None:
    if isinstance(module, torch.nn.Linear):
        return module.in_features
    if _is_conv1d(module):
        return int(module.weight.shape[0])
    return None


def param_name(model: Any, param: torch.Tensor) -> str:
    """The dotted name of ``param`` in ``model`` (what :class:`WeightEdit` takes)."""
    for name, p in model.named_parameters():
        if p is param:
            return name
    raise InterventionError("parameter not found in the model")


def input_matrices(adapter: Any, layer: int) -> list[tuple[str, Any]]:
    """(attribute name, module) of every projection in the MLP that reads the MLP input.

    Every Linear / Conv1D child of the MLP other than the down projection whose input width is the
    model width: SwiGLU / GeGLU ``gate_proj`` and ``up_proj``, GPT-2 ``c_fc``, GPT-NeoX
    ``dense_h_to_4h``.
    """
    mlp, down = adapter.mlp(layer), adapter.mlp_down(layer)
    width = _in_features(down)
    found = [(name, m) for name, m in mlp.named_children()
             if m is not down and _in_features(m) is not None and _in_features(m) != width]
    if not found:
        raise InterventionError(f"layer {layer}: found no projection reading the MLP input in {type(mlp).__name__}")
    return found


def _rank1(module: Any, u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``u a^T / ||a||^2`` in the parameter's layout (transposed for Conv1D), float64."""
    delta = torch.outer(u.double(), a.double()) / a.double().pow(2).sum()
    return delta.t() if _is_conv1d(module) else delta


def _norm_scale(norm: Any) -> tuple[torch.Tensor, float, float]:
    """(weight parameter, eps, offset) of an RMSNorm that computes ``(offset + weight) * x / rms(x)``.

    Gemma's norms store ``weight`` with the scale ``1 + weight``; others store the scale itself.
    The formula is checked on a test vector so that another norm is refused, not patched wrongly.
    """
    eps = next((float(getattr(norm, k)) for k in ("eps", "variance_epsilon") if hasattr(norm, k)), None)
    weight = getattr(norm, "weight", None)
    if eps is None or not isinstance(weight, torch.Tensor) or getattr(norm, "bias", None) is not None:
        raise InterventionError(f"{type(norm).__name__}: not an RMSNorm with a scale and eps; cannot patch its scale")
    offset = 1.0 if "Gemma" in type(norm).__name__ else 0.0
    probe = torch.linspace(-2.0, 3.0, weight.shape[-1], dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        got = norm(probe[None]).detach().double()[0]
    want = (offset + weight.detach().double()) * probe.double() / torch.sqrt(probe.double().pow(2).mean() + eps)
    if not torch.allclose(got, want, rtol=1e-4, atol=1e-6 * float(want.abs().max())):
        raise InterventionError(f"{type(norm).__name__} does not compute (offset + weight) * x / rms(x); "
                                "its scale cannot be patched")
    return weight, eps, offset


# ----------------------------------------------------------------------------------- reading

def read_last(adapter: Any, ids: Sequence[int] | torch.Tensor, layers: Sequence[int],
              points: Sequence[str] = POINTS) -> dict[tuple[int, str], torch.Tensor]:
    """One unpadded forward of ``ids``; (layer, point) -> the activation at the last token."""
    model = adapter.model
    device = next(model.parameters()).device
    row = torch.as_tensor(ids, dtype=torch.long).reshape(1, -1).to(device)
    hps = [HookPoint(layer, name) for layer in layers for name in points]
    store = capture(adapter, hps, lambda: logits_at(model, row))
    return {(hp.layer, hp.name): store[hp][0, -1] for hp in hps}


class _Stop(Exception):
    """Raised by the reader once the patched layer's output is read: later layers are not run."""


def read_point(adapter: Any, ids: Sequence[int] | torch.Tensor, hp: HookPoint) -> torch.Tensor:
    """The activation at ``hp`` at the last token of one unpadded forward, stopping after it."""
    from icltest.models.hookpoints import hooked

    model = adapter.model
    device = next(model.parameters()).device
    row = torch.as_tensor(ids, dtype=torch.long).reshape(1, -1).to(device)
    box: list[torch.Tensor] = []

    def read(x: torch.Tensor) -> None:
        box.append(x[0, -1].detach().clone())
        raise _Stop

    with torch.no_grad(), hooked(adapter, {hp: [read]}):
        try:
            model(input_ids=row)
        except _Stop:
            pass
    if not box:
        raise InterventionError(f"{hp} was not reached in the forward pass")
    return box[0]


# ------------------------------------------------------------------------------------ patches

@dataclass
class ImplicitPatch:
    """The weight edits that make the context-free input reproduce the with-context output at one layer.

    Attributes:
        layer: the block.
        through: "mlp" or "block".
        edits: the :class:`WeightEdit` list (rank-1 deltas; for ``block`` on post-norm models also
            the post-feedforward norm's new scale, as a value).
        point: where the reproduced output is read (``blocks.L.mlp_out`` / ``blocks.L.resid_post``).
        target: the with-context activation at ``point`` (last token).
        unpatched: the context-free activation at ``point`` (last token).
        deltas: parameter name -> the rank-1 delta (float64, parameter layout), for rank and norms.
    """

    layer: int
    through: str
    edits: list[WeightEdit]
    point: HookPoint
    target: torch.Tensor
    unpatched: torch.Tensor
    deltas: dict[str, torch.Tensor] = field(default_factory=dict)

    def fro(self) -> dict[str, float]:
        """||delta||_F per patched matrix (the norm-scale edit is a value, not listed)."""
        return {name: float(d.detach().norm()) for name, d in self.deltas.items()}


def implicit_patch(adapter: Any, layer: int, with_context: dict[tuple[int, str], torch.Tensor],
                   free: dict[tuple[int, str], torch.Tensor], *, through: str = "mlp",
                   matrices: Sequence[str] | None = None) -> ImplicitPatch:
    """Build the patch of ``layer`` from last-token activations of the prompt with and without context.

    Args:
        adapter: the model's adapter.
        layer: the block.
        with_context / free: :func:`read_last` of ``C + x`` and of ``x`` (POINTS at ``layer``).
        through: "mlp" (reproduce ``mlp_out``) or "block" (reproduce ``resid_post``); see the module
            docstring.
        matrices: restrict the input patches to these MLP attributes (default: every matrix that
            reads the MLP input; fewer is wrong on purpose, for tests that the claim can fail).

    Raises:
        InterventionError: an unknown ``through``, a layer out of range, a zero input vector or
            hidden vector, a norm whose scale cannot be patched, an unknown matrix name.
    """
    if through not in THROUGH:
        raise InterventionError(f"through must be one of {list(THROUGH)}, got {through!r}")
    check_point(adapter, HookPoint(layer, "mlp_in"))
    model = adapter.model
    a_free, a_ctx = free[(layer, "mlp_in")], with_context[(layer, "mlp_in")]
    if float(a_free.double().norm()) == 0.0:
        raise InterventionError(f"layer {layer}: the context-free MLP input is zero; no rank-1 patch exists")
    d_a = a_ctx.double() - a_free.double()
    reads = input_matrices(adapter, layer)
    if matrices is not None:
        unknown = sorted(set(matrices) - {name for name, _ in reads})
        if unknown:
            raise InterventionError(f"layer {layer}: {unknown} do not read the MLP input; it is read by "
                                    f"{[name for name, _ in reads]}")
        reads = [(name, m) for name, m in reads if name in matrices]
    edits, deltas = [], {}
    for name, module in reads:
        u = weight_matrix(module).double() @ d_a  # W dA (a bias is untouched: it adds the same to both)
        delta = _rank1(module, u, a_free)
        pname = param_name(model, module.weight)
        deltas[pname] = delta
        edits.append(WeightEdit(pname, delta=delta, note=f"rank-1 (W dA) A(x)^T / ||A(x)||^2 on {name}"))
    if through == "mlp":
        hp = HookPoint(layer, "mlp_out")
        return ImplicitPatch(layer, through, edits, hp, with_context[(layer, "mlp_out")], free[(layer, "mlp_out")], deltas)

    # block: the MLP branch must write what the with-context block adds beyond the context-free skip path
    hp = HookPoint(layer, "resid_post")
    target, y_free = with_context[(layer, "resid_post")], free[(layer, "resid_post")]
    v = target.double() - (y_free.double() - free[(layer, "mlp_out")].double())
    z = with_context[(layer, "mlp_hidden")]
    if float(z.double().norm()) == 0.0:
        raise InterventionError(f"layer {layer}: the with-context MLP hidden vector is zero; the down projection "
                                "cannot be patched")
    down = adapter.mlp_down(layer)
    with torch.no_grad():
        written = down(z[None].to(down.weight.dtype))[0].double()  # D z_C + b
    post = adapter.mlp_post_norm(layer)
    if post is not None:
        weight, eps, offset = _norm_scale(post)
        scale = torch.sqrt(v.pow(2).mean() + eps)
        new = torch.full_like(weight, 0.0, dtype=torch.float64) + scale - offset
        edits.append(WeightEdit(param_name(model, weight), value=new,
                                note=f"post-feedforward norm scale set to sqrt(mean(v^2) + eps) = {float(scale):.6g}"))
    pname = param_name(model, down.weight)
    delta = _rank1(down, v - written, z)
    deltas[pname] = delta
    edits.append(WeightEdit(pname, delta=delta, note="rank-1 (v - D z_C - b) z_C^T / ||z_C||^2 on the down projection"))
    return ImplicitPatch(layer, through, edits, hp, target, y_free, deltas)


def patched_output(adapter: Any, patch: ImplicitPatch, free_ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Run the context-free prompt with the patch applied; the activation at ``patch.point`` (last token).

    The weights are restored exactly when this returns (also after an error).
    """
    with apply(adapter, patch.edits):
        return read_point(adapter, free_ids, patch.point)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """||got - want|| / ||want|| in float64 (a zero ``want``: 0 when ``got`` is zero too, else inf)."""
    want64 = want.double()
    gap, size = float((got.double() - want64).norm()), float(want64.norm())
    if size == 0.0:
        return 0.0 if gap == 0.0 else float("inf")
    return gap / size


def applied_rank_ratio(param: torch.Tensor, delta: torch.Tensor) -> float:
    """sigma_2 / sigma_1 of the change the edit really makes to ``param`` in its dtype.

    ``(param + delta) - param`` as stored, so rounding in the parameter's precision is included: a
    float32 rank-1 patch has a second singular value of rounding size, not 0.
    """
    with torch.no_grad():
        applied = (param.detach() + delta.to(param.dtype)) - param.detach()
    s = torch.linalg.svdvals(applied.double())
    return float(s[1] / s[0]) if s.numel() > 1 and float(s[0]) > 0 else 0.0


# ------------------------------------------------------------------------------------ growth

def context_growth(adapter: Any, prefix: Sequence[int], context: Sequence[int], query: Sequence[int],
                   layers: Sequence[int], chunk: int = 16) -> dict[int, torch.Tensor]:
    """||dW_i||_F for the context's first i tokens, i = 0 .. len(context), per layer.

    ``dW_i`` is the patch of every matrix that reads the MLP input for the prompt
    ``prefix + context[:i] + query`` (``prefix``: BOS or nothing), against ``prefix + query``:
    ``||dW_i||_F = ||W (A_i - A_0)|| / ||A_0||`` with ``W`` those matrices stacked. Steps
    ``W_{i+1} - W_i`` (the seed's gradient-descent view, learning rate ``1 / ||A(x)||^2``) have norm
    ``||W (A_{i+1} - A_i)|| / ||A_0||``; :func:`growth_steps` reads them off the same activations.
    Left-padded forwards of ``chunk`` prompts at a time; each hook keeps only the last token, so
    memory grows with ``chunk x longest prompt``, not with the number of prefixes.

    Returns:
        layer -> [len(context) + 1, d_model] last-token MLP inputs ``A_i`` (float64).
    """
    from icltest.models.hookpoints import hooked
    from icltest.probes.prompts import pad_left

    rows = [list(prefix) + list(context[:i]) + list(query) for i in range(len(context) + 1)]
    model = adapter.model
    hps = [HookPoint(layer, "mlp_in") for layer in layers]
    out: dict[int, list[torch.Tensor]] = {hp.layer: [] for hp in hps}

    def keep_last(layer: int) -> Any:
        def read(x: torch.Tensor) -> None:
            out[layer].append(x[:, -1].detach().double())
        return read

    for start in range(0, len(rows), chunk):
        ids, mask = pad_left(rows[start:start + chunk], 0)
        with torch.no_grad(), hooked(adapter, {hp: [keep_last(hp.layer)] for hp in hps}):
            logits_at(model, ids, 1, mask)
    return {layer: torch.cat(parts) for layer, parts in out.items()}


def growth_norms(adapter: Any, layer: int, acts: torch.Tensor) -> tuple[list[float], list[float]]:
    """(||dW_i||_F for i = 0..m, ||W_i - W_{i-1}||_F for i = 1..m) from :func:`context_growth` rows."""
    w = torch.cat([weight_matrix(m).double() for _, m in input_matrices(adapter, layer)], 0)
    base = acts[0].norm()
    total = (w @ (acts - acts[0]).t()).norm(dim=0) / base
    steps = (w @ (acts[1:] - acts[:-1]).t()).norm(dim=0) / base
    return [float(t) for t in total], [float(s) for s in steps]


# ------------------------------------------------------------------------------------ inputs

@dataclass(frozen=True)
class Item:
    """One prompt split into ``prefix`` (BOS or nothing), context ``C`` and query ``x`` (token ids).

    The with-context prompt is ``prefix + context + query``, the context-free one ``prefix + query``;
    the query's tokens are the same in both (tokenized apart from the context).
    """

    prefix: tuple[int, ...]
    context: tuple[int, ...]
    query: tuple[int, ...]
    label: str = ""

    @property
    def with_context(self) -> list[int]:
        return [*self.prefix, *self.context, *self.query]

    @property
    def free(self) -> list[int]:
        return [*self.prefix, *self.query]


def _encode(tokenizer: Any, text: str) -> tuple[int, ...]:
    return tuple(int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"])


def task_items(tokenizer: Any, task: str, *, shots: int, n: int, seed: int, split: str = "test") -> list[Item]:
    """Few-shot prompts of a task: C = the ``shots`` demonstrations (with their delimiters), x = the query line.

    Prompts, queries and demonstrations are :func:`icltest.probes.tasks.build_icl_prompts`'s.

    Raises:
        InputError: unknown task, too many shots for the split (from the prompt builder).
    """
    from icltest.probes.prompts import bos_id_for
    from icltest.probes.tasks import build_icl_prompts, load_task

    spec = load_task(task)
    batch = build_icl_prompts(spec, tokenizer, shots=shots, n=n, seed=seed, split=split, full_answers=False)
    bos = bos_id_for(tokenizer, "auto")
    prefix = () if bos is None else (bos,)
    items = []
    for text, q in zip(batch.prompts, batch.query_indices):
        query = spec.prompt.query(spec.pairs[q].input)
        if not text.endswith(query):  # the builder writes demonstrations, delimiter, query
            raise InputError(f"task {task!r}: prompt does not end with its query line {query!r}")
        items.append(Item(prefix, _encode(tokenizer, text[: len(text) - len(query)]), _encode(tokenizer, query),
                          f"{spec.pairs[q].input!r}"))
    return items


def text_items(tokenizer: Any, *, corpus: str, context: int, query: int, n: int, seed: int) -> list[Item]:
    """Prose: C = a document's first ``context`` tokens, x = the ``query`` tokens that follow them.

    ``n`` documents drawn with ``seed`` among those long enough.

    Raises:
        InputError: unknown corpus, or fewer than ``n`` documents of ``context + query`` tokens.
    """
    import random

    from icltest.probes.natural_text import load_corpus
    from icltest.probes.prompts import bos_id_for

    docs = [_encode(tokenizer, d) for d in load_corpus(corpus)]
    long_enough = [i for i, d in enumerate(docs) if len(d) >= context + query]
    if len(long_enough) < n:
        raise InputError(f"corpus {corpus!r}: {len(long_enough)} of {len(docs)} documents have context + query = "
                         f"{context + query} tokens for this tokenizer; {n} are needed (lower n, context or query)")
    chosen = random.Random(seed).sample(long_enough, n)
    bos = bos_id_for(tokenizer, "auto")
    prefix = () if bos is None else (bos,)
    return [Item(prefix, docs[i][:context], docs[i][context:context + query], f"document {i}") for i in chosen]


# ------------------------------------------------------------------------------- measurement

def _spearman(values: Sequence[float]) -> float:
    """Spearman's rho of ``values`` against their index (1, 2, ...); NaN when constant."""
    from icltest.scores.ranking import spearman

    return spearman(list(range(len(values))), list(values))


def measure_identity(adapter: Any, items: Sequence[Item], layers: Sequence[int], *, through: str = "mlp",
                     rank_items: int = 1, matrices: Sequence[str] | None = None) -> dict[str, Any]:
    """Per layer and item: the patched context-free output's relative error against the with-context one.

    Per item: one forward with context and one without (every layer's last-token activations), then
    per layer one forward of the context-free prompt with that layer's patch applied, stopped after
    the layer. Also the unpatched error (the context's effect the patch must reproduce), the error
    relative to that effect, ||dW||_F per matrix and, on the first ``rank_items`` items, the
    applied patches' sigma_2 / sigma_1.

    Returns:
        {"errors": [items][layers] relative errors, "unpatched": same without the patch,
         "effect": [items][layers] ||with_context - unpatched|| / ||with_context||,
         "fro": [items][layers] {param: ||dW||_F}, "rank_ratio": [layers] max sigma_2 / sigma_1
         (None where not measured), "edits": [layers] descriptions of the first item's edits,
         "point": the compared hook point of the first layer}
    """
    errors, unpatched, fro = [], [], []
    ratios: list[float | None] = [None] * len(layers)
    described: list[list[dict[str, Any]]] = []
    for k, item in enumerate(items):
        with_ctx = read_last(adapter, item.with_context, layers)
        free = read_last(adapter, item.free, layers)
        row_e, row_u, row_f = [], [], []
        for j, layer in enumerate(layers):
            patch = implicit_patch(adapter, layer, with_ctx, free, through=through, matrices=matrices)
            got = patched_output(adapter, patch, item.free)
            row_e.append(relative_error(got, patch.target))
            row_u.append(relative_error(patch.unpatched, patch.target))
            row_f.append(patch.fro())
            if k < rank_items:
                params = dict(adapter.model.named_parameters())
                worst = max((applied_rank_ratio(params[name], d) for name, d in patch.deltas.items()), default=0.0)
                ratios[j] = worst if ratios[j] is None else max(ratios[j], worst)
            if k == 0:
                described.append([e.describe() for e in patch.edits])
        errors.append(row_e)
        unpatched.append(row_u)
        fro.append(row_f)
    return {"errors": errors, "unpatched": unpatched, "fro": fro, "rank_ratio": ratios, "edits": described}


def growth_stats(adapter: Any, items: Sequence[Item], layers: Sequence[int]) -> dict[str, Any]:
    """||dW_i|| as the context grows token by token, per layer: curves and how the steps trend.

    Per item and layer: ``total`` = ||dW_i||_F for i = 0..m (m context tokens), ``steps`` =
    ||W_i - W_{i-1}||_F for i = 1..m, Spearman's rho of the steps against i (negative: steps shrink
    as context accumulates) and the ratio of the mean step over the last third of the context to
    the mean over the first third.
    """
    per_layer: dict[int, dict[str, list[Any]]] = {layer: {"total": [], "steps": [], "rho": [], "late_early": []}
                                                  for layer in layers}
    for item in items:
        acts = context_growth(adapter, item.prefix, item.context, item.query, layers)
        for layer in layers:
            total, steps = growth_norms(adapter, layer, acts[layer])
            third = max(1, len(steps) // 3)
            early, late = sum(steps[:third]) / third, sum(steps[-third:]) / third
            rec = per_layer[layer]
            rec["total"].append(total)
            rec["steps"].append(steps)
            rec["rho"].append(_spearman(steps))
            rec["late_early"].append(late / early if early > 0 else float("nan"))
    return per_layer
