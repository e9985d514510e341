"""`kind: steering` — adding a concept vector to the residual stream raises the concept's tokens.

Concept injection (Turner et al. 2023, activation addition; Anthropic 2025, "Emergent introspective
awareness in large language models"); the library is :mod:`icltest.interventions.steering`.

- **vector** at layer L: ``blocks.L.resid_post`` at the last token of ``template`` ("Tell me about
  {word}") for the concept, minus the mean over ``reference_words`` (plain concrete nouns);
- **injection**: ``resid_post[L] += strength * v`` (``scale: raw``, the multiplier of the raw
  difference vector as in the seed's pseudo code) or ``+= strength * r_L * v / ||v||`` (``scale:
  norm``, r_L = mean last-token residual norm of the reference-word prompts at L: strength in units of the
  residual stream) at every token of each neutral prompt from its first real token on;
- **value** (one item per concept): the mean over neutral prompts of ``log P(T)`` at the next
  position with injection minus without (nats), ``T`` = the first tokens of ``word``, `` word``,
  ``Word``, `` Word`` (ids in the details). The vectors come from the template prompts, the
  judged prompts are the neutral ones: disjoint inputs;
- **control**: ``draws`` seeded Gaussian directions with the vector's norm, injected the same way:
  where the concept's gain falls among theirs (p, z). A second reference: the other concepts'
  vectors ("wrong concept") raising this concept's tokens;
- ``generate: N``: greedy continuations (N tokens) with and without injection: share mentioning the word;
- ``sweep``: gain vs strength at the claim's layer and vs layer at its strength (also the next-token
  KL from the clean model: the damage), in ``details["sweeps"]``;
- ``detection``: the seed's "Do you detect an injected thought?" dialogue through the chat template,
  the vector injected from "Trial 1" on (prompt and answer): P(first answer token is yes-like) with vs
  without injection and whether the greedy answer names the concept.
"""
from __future__ import annotations

import math
import random
import statistics
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, StrictFloat, StrictInt, field_validator, model_validator

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.schema.base import ClaimBase, Expectation, _Strict
from icltest.schema.blocks import ChatTemplate, ControlExpect, _draws_for_p

LayerIndex = Annotated[
    Union[StrictInt, Annotated[StrictFloat, Field(ge=0.0, le=1.0)]],
    Field(description="a layer: an index (negative counts from the end, -1 = last) or a fraction of depth "
                      "0.0-1.0 written with a decimal point (0.5 = round(0.5 * (n_layers - 1)))"),
]
Word = Annotated[str, Field(min_length=1, pattern=r"^\S(.*\S)?$")]


class SteeringExpect(_Strict):
    gain: Expectation | None = Field(None, description="mean log-probability gain of the concept's tokens (nats)")
    mention: Expectation | None = Field(
        None, description="share of neutral prompts whose injected greedy continuation names the concept (needs generate)")

    @model_validator(mode="after")
    def _something(self) -> "SteeringExpect":
        if self.gain is None and self.mention is None:
            raise ValueError("give gain and/or mention")
        return self


class RandomDirections(_Strict):
    """Inject seeded Gaussian directions with the concept vector's norm instead, and compare gains."""

    draws: int = Field(19, ge=1, le=1000, description="random directions; p <= 0.05 needs >= 19")
    seed: int = Field(0, ge=0)
    expect: ControlExpect | None = None

    @model_validator(mode="after")
    def _reachable(self) -> "RandomDirections":
        if self.expect is None:
            return self
        if self.expect.z is not None and self.draws < 2:
            raise ValueError(f"z needs draws >= 2, got draws: {self.draws}")
        if self.expect.p is not None:
            needed = _draws_for_p(self.expect.p)
            if needed is None or self.draws < needed:
                raise ValueError(f"p {self.expect.p} can never pass with draws: {self.draws} (smallest p is "
                                 f"1/{self.draws + 1}){'' if needed is None else f'; use draws >= {needed}'}")
        return self


class Sweep(_Strict):
    strengths: list[Annotated[float, Field(gt=0)]] | None = Field(
        None, min_length=1, description="gain vs strength at the claim's layer")
    layers: list[LayerIndex] | None = Field(None, min_length=1, description="gain vs layer at the claim's strength")


class Detection(_Strict):
    """The seed's detection dialogue; the vector injected from 'Trial 1' on. Reported, never judged:
    one dialogue per concept is one trial (injected vs control trial vs random vector), a number
    with no spread, and no verdict should rest on it."""

    new_tokens: int = Field(24, ge=1, le=256, description="greedy answer length")


class SteeringClaim(ClaimBase):
    """Adding a concept vector at a layer raises the concept's next-token probability on neutral prompts."""

    renamed_keys: ClassVar[dict[str, str]] = {
        "baseline_n": "`baseline_n` is now `reference_n` (a seeded sample of the reference words); `baseline:` is "
                      "the release-baseline tolerance ({max_drop, direction})"}

    kind: Literal["steering"]
    concepts: list[Word] | None = Field(None, min_length=1, description="concept words (default: the first 5 shipped)")
    reference_words: list[Word] | None = Field(
        None, min_length=2, description="words whose mean vector is subtracted (default: 50 shipped nouns)")
    reference_n: int | None = Field(None, ge=2, description="use a seeded sample of this many reference words")
    seed: int = Field(0, ge=0, description="seed of the reference-word sample")
    template: str = Field("Tell me about {word}", description="concept prompt; must contain {word}")
    chat_template: ChatTemplate = Field("no", description="wrap concept and neutral prompts in the chat template")
    prompts: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, min_length=1, description="neutral prompts the vector is injected into (default: 16 shipped)")
    layer: LayerIndex
    strength: float = Field(gt=0, description="multiplier (see scale)")
    scale: Literal["raw", "norm"] = Field(
        "raw", description="raw: strength * v; norm: strength * (mean residual norm at the layer) * v / ||v||")
    generate: int = Field(0, ge=0, le=256, description="greedy tokens per prompt for the mention share (0: none)")
    expect: SteeringExpect
    control: RandomDirections | None = None
    sweep: Sweep | None = None
    detection: Detection | None = None

    @field_validator("template")
    @classmethod
    def _has_word(cls, value: str) -> str:
        import string

        try:
            fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(value) if name is not None]
        except ValueError as exc:
            raise ValueError(f"template {value!r} must contain {{word}} and no other braces ({exc})") from None
        odd = ["{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
               for name, spec, conv in fields if name != "word" or spec or conv]
        if odd:  # a format spec or attribute access is not a word: {word:>9999}, {word.__class__}
            raise ValueError(f"template {value!r}: the only placeholder allowed is a bare {{word}}, got "
                             f"{', '.join(odd)}; double other braces ({{{{ }}}})")
        if not fields:
            raise ValueError(f"template {value!r} has no {{word}}: the concept would never appear")
        return value

    @field_validator("baseline", mode="before")
    @classmethod
    def _old_baseline(cls, value: Any) -> Any:
        """``baseline: [words]`` was this kind's list of reference words; say where it went."""
        if isinstance(value, (list, tuple, str)):
            raise ValueError("`baseline:` is the release-baseline tolerance ({max_drop, direction}); the words whose "
                             "mean is subtracted from the concept vector are now `reference_words: [...]` "
                             "(and `baseline_n` is `reference_n`)")
        return value

    @field_validator("reference_words")
    @classmethod
    def _disjoint(cls, value: Any, info: Any) -> Any:
        concepts = info.data.get("concepts") or []
        both = sorted(set(w.lower() for w in concepts) & set(w.lower() for w in value or []))
        if both:
            raise ValueError(f"concept words {both} are also reference words: a concept minus itself is no vector")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "SteeringClaim":
        if self.expect.mention is not None and self.generate == 0:
            raise ValueError("expect.mention needs generate: N (greedy tokens per prompt)")
        if (self.reference_n is not None and self.reference_words is not None
                and self.reference_n > len(self.reference_words)):
            raise ValueError(f"reference_n {self.reference_n} > {len(self.reference_words)} reference words")
        return self


Schema = SteeringClaim


def _defaults() -> Any:
    from icltest.interventions.steering import load_concept_data

    return load_concept_data()


def _concepts(claim: Any) -> list[str]:
    return list(claim.concepts) if claim.concepts else list(_defaults().concepts[:5])


def targets(claim: Any) -> list[Target]:
    return [Target(c) for c in _concepts(claim)]


def resolve_layer(value: Any, n_layers: int) -> int | None:
    """Index, negative index or fraction of depth -> layer (None: out of range)."""
    if isinstance(value, float):
        return round(value * (n_layers - 1))
    layer = value + n_layers if value < 0 else value
    return layer if 0 <= layer < n_layers else None


def _layer(ctx: ClaimContext, value: Any, key: tuple[Any, ...]) -> int:
    n = ctx.loaded.adapter.n_layers
    layer = resolve_layer(value, n)
    if layer is None:
        raise ClaimSpecError(ctx.location(key), ".".join(map(str, key)),
                             f"layer {value} does not exist: the model has layers 0..{n - 1} (or -{n}..-1, or 0.0-1.0)")
    return layer


def _reference(claim: Any, ctx: ClaimContext, concepts: list[str]) -> list[str]:
    words = list(claim.reference_words) if claim.reference_words else list(_defaults().reference_words)
    both = sorted(set(w.lower() for w in concepts) & set(w.lower() for w in words))
    if both:
        raise ClaimSpecError(ctx.location(("concepts",)), "concepts",
                             f"concept words {both} are in the reference words; pick other concepts or give "
                             "reference_words")
    if claim.reference_n is not None:
        if claim.reference_n > len(words):
            raise ClaimSpecError(ctx.location(("reference_n",)), "reference_n",
                                 f"reference_n {claim.reference_n} > {len(words)} reference words")
        words = sorted(random.Random(claim.seed).sample(words, claim.reference_n))
    return words


def _chat(claim: Any, ctx: ClaimContext) -> bool:
    from icltest.errors import InputError
    from icltest.probes.prompts import use_chat_template

    try:
        return use_chat_template(ctx.loaded.tokenizer, claim.chat_template)
    except InputError as exc:
        raise ClaimSpecError(ctx.location(("chat_template",)), "chat_template", str(exc)) from None


def _setup(claim: Any, ctx: ClaimContext) -> dict[str, Any]:
    """Vectors at every layer the claim reads, neutral prompts and their clean logits (shared per claim)."""
    from icltest.interventions import steering as st

    loaded = ctx.loaded
    concepts = _concepts(claim)
    layer = _layer(ctx, claim.layer, ("layer",))
    sweep_layers = [_layer(ctx, v, ("sweep", "layers", i)) for i, v in enumerate((claim.sweep and claim.sweep.layers) or [])]
    reference = _reference(claim, ctx, concepts)
    chat = _chat(claim, ctx)
    layers = sorted({layer, *sweep_layers})
    prompts = list(claim.prompts) if claim.prompts else list(_defaults().neutral_prompts)
    key = ("steering", ctx.loaded.source, tuple(concepts), tuple(reference), claim.template, chat, tuple(layers), tuple(prompts))

    def compute() -> dict[str, Any]:
        cv = st.concept_vectors(loaded.model, loaded.adapter, loaded.tokenizer, concepts, reference, layers,
                                claim.template, chat)
        seqs = st.encode_texts(loaded.tokenizer, prompts, chat)
        ctx.session.forward_passes += 2
        return {"cv": cv, "seqs": seqs, "clean": st.next_logits(loaded.model, loaded.adapter, seqs, loaded.tokenizer)}

    out = dict(ctx.session.memo(key, compute))
    out.update(layer=layer, sweep_layers=sweep_layers, reference=reference, chat=chat, concepts=concepts, prompts=prompts)
    return out


def _added(claim: Any, cv: Any, v: Any, layer: int, strength: float) -> tuple[Any, float]:
    """(direction, multiplier) actually added: raw v * strength, or unit v * strength * residual norm."""
    if claim.scale == "raw":
        return v, strength
    return v / v.norm(), strength * float(cv.resid_norm[cv.layers.index(layer)])


def _gains(claim: Any, ctx: ClaimContext, s: dict[str, Any], vectors: Any, layer: int, strength: float,
           token_ids: list[int]) -> tuple[list[float], list[float]]:
    """Per vector (rows of ``vectors``, each already a raw vector of layer ``layer``): the mean
    log-probability gain of ``token_ids`` over the neutral prompts, and the mean next-token KL."""
    import torch

    from icltest.interventions import steering as st

    loaded, seqs, clean = ctx.loaded, s["seqs"], s["clean"]
    n, k = len(seqs), vectors.shape[0]
    dirs, mults = zip(*[_added(claim, s["cv"], vectors[i], layer, strength) for i in range(k)])
    per_row = torch.stack([d * m for d, m in zip(dirs, mults)]).repeat_interleave(n, 0)
    logits = torch.cat([st.next_logits(loaded.model, loaded.adapter, seqs * (rows // n), loaded.tokenizer, layer,
                                       per_row[i * n:i * n + rows], 1.0)
                        for i, rows in _chunks(k, n)])
    ctx.session.forward_passes += 1
    base = st.set_logprob(clean, [token_ids] * n).mean()
    lp = st.set_logprob(logits, [token_ids] * (n * k)).view(k, n).mean(1) - base
    kl = st.kl_from(clean.repeat(k, 1), logits).view(k, n).mean(1)
    return [float(x) for x in lp], [float(x) for x in kl]


def _chunks(k: int, n: int, rows: int = 256) -> list[tuple[int, int]]:
    """Split k vectors x n prompts into batches of whole vectors: (first vector, rows)."""
    per = max(1, rows // n)
    return [(i, min(per, k - i) * n) for i in range(0, k, per)]


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    import torch

    from icltest.interventions import steering as st
    from icltest.scores.control import control_summary

    s = _setup(claim, ctx)
    cv, layer, concept = s["cv"], s["layer"], target.id
    tok = ctx.loaded.tokenizer
    ids = st.concept_token_ids(tok, concept)
    token_ids = sorted(ids)
    v = cv.at(concept, layer)
    (gain,), (kl,) = _gains(claim, ctx, s, v[None], layer, claim.strength, token_ids)
    _, mult = _added(claim, cv, v, layer, claim.strength)
    details: dict[str, Any] = {
        "concept": concept, "layer": layer, "strength": claim.strength, "scale": claim.scale,
        "added_norm": round(float((v / v.norm() if claim.scale == "norm" else v).norm()) * mult, 4),
        "vector_norm": round(float(v.norm()), 4),
        "vector_norm_over_resid": round(cv.norm_ratio(concept, layer), 4),
        "resid_norm": round(float(cv.resid_norm[cv.layers.index(layer)]), 4),
        "concept_tokens": {str(i): tok.decode([i]) for i in token_ids},
        "kl_from_clean": round(kl, 4),
        "reference_words": len(s["reference"]), "prompts": len(s["seqs"]), "chat_template": s["chat"],
        "metric": "mean over neutral prompts of log P(concept's first tokens) at the next position, injected - clean (nats)",
    }
    others = [c for c in s["concepts"] if c != concept]
    if others:
        wrong, _ = _gains(claim, ctx, s, torch.stack([cv.at(c, layer) for c in others]), layer, claim.strength, token_ids)
        details["wrong_concepts"] = {c: round(g, 4) for c, g in zip(others, wrong)}
        details["wrong_concept_mean"] = round(statistics.fmean(wrong), 4)
    details["token_echo"] = _token_echo(claim, ctx, s, v, layer, token_ids, concept)
    draws = None
    if claim.control is not None:
        draws, _ = _gains(claim, ctx, s, st.random_like(v, claim.control.draws, claim.control.seed), layer,
                          claim.strength, token_ids)
        summary = control_summary(gain, draws)
        details["control"] = {k: summary[k] for k in ("n", "mean", "sd", "min", "max", "p", "z", "position")}
        details["control"]["what"] = f"{claim.control.draws} Gaussian directions with ||v|| (seed {claim.control.seed})"
    if claim.sweep is not None:
        details["sweeps"] = _sweeps(claim, ctx, s, concept, token_ids, gain, draws)
    if claim.generate:
        details["mention"] = _mention(claim, ctx, s, v, concept)
    if claim.detection is not None:
        details["detection"] = _detection(claim, ctx, s, v, concept)
    probe = (f"steering: {concept} at blocks.{layer}.resid_post, strength {claim.strength} ({claim.scale}), "
             f"{len(s['seqs'])} neutral prompts, {len(s['reference'])} reference words, template {claim.template!r}"
             f"{', chat template' if s['chat'] else ''}")
    return Measurement(gain, "log-prob gain (nats)", details, probe, claim.control.seed if claim.control else None)


def _token_echo(claim: Any, ctx: ClaimContext, s: dict[str, Any], v: Any, layer: int, token_ids: list[int],
                concept: str) -> dict[str, Any]:
    """The gain from the input embedding of the token the concept prompt ends on, scaled to ||v||.

    In the plain template the vector is read at the concept word's own token, so part of it is that
    token's identity; this reference says how much of the gain an embedding direction of the same
    norm gets on its own (reported, not judged)."""
    from icltest.interventions import steering as st

    tok, model = ctx.loaded.tokenizer, ctx.loaded.model
    last = st.encode_texts(tok, [claim.template.format(word=concept)], s["chat"])[0][-1]
    row = model.get_input_embeddings().weight[last].detach().float()
    direction = row / row.norm() * v.float().norm()
    (gain,), _ = _gains(claim, ctx, s, direction.to(v.dtype)[None], layer, claim.strength, token_ids)
    return {"gain": round(gain, 4), "token": tok.decode([last]),
            "what": "input embedding of the concept prompt's last token, scaled to ||v||, injected the same way"}


def _sweeps(claim: Any, ctx: ClaimContext, s: dict[str, Any], concept: str, token_ids: list[int],
            gain: float, draws: list[float] | None) -> list[dict[str, Any]]:
    import torch

    from icltest.interventions import steering as st

    cv, layer = s["cv"], s["layer"]
    n_random = min(5, claim.control.draws) if claim.control else 5
    seed = claim.control.seed if claim.control else 0
    out = []
    axes = []
    if claim.sweep.strengths:
        axes.append(("strength", [(layer, x) for x in claim.sweep.strengths], f"layer {layer}"))
    if claim.sweep.layers:
        axes.append(("layer", [(l, claim.strength) for l in sorted(set(s["sweep_layers"]))], f"strength {claim.strength}"))
    for axis, points, fixed in axes:
        gains, randoms, kls = [], [], []
        for l, x in points:
            v = cv.at(concept, l)
            vecs = torch.cat([v[None], st.random_like(v, n_random, seed)])
            g, k = _gains(claim, ctx, s, vecs, l, x, token_ids)
            key = x if axis == "strength" else l
            gains.append([key, round(g[0], 4)])
            randoms.append([key, round(statistics.fmean(g[1:]), 4)])
            kls.append([key, round(k[0], 4)])
        ref: dict[str, float] = {"no injection": 0.0}
        if draws:
            ref["random vector (mean, claim's point)"] = round(statistics.fmean(draws), 4)
        out.append({"name": f"gain vs {axis} ({fixed})", "x": axis, "y": "log-prob gain (nats)",
                    "points": gains, "reference": ref, "random": randoms})
        out.append({"name": f"damage vs {axis} ({fixed})", "x": axis, "y": "next-token KL from clean (nats)",
                    "points": kls, "reference": {"no injection": 0.0}})
    return out


def _mention(claim: Any, ctx: ClaimContext, s: dict[str, Any], v: Any, concept: str) -> dict[str, Any]:
    from icltest.interventions import steering as st
    from icltest.models.generate import greedy
    from icltest.probes.prompts import pad_left

    loaded, layer = ctx.loaded, s["layer"]
    tok = loaded.tokenizer
    ids, mask = pad_left(s["seqs"], st.pad_id(tok))
    direction, mult = _added(claim, s["cv"], v, layer, claim.strength)
    key = ("steering-clean-greedy", loaded.source, tuple(map(tuple, s["seqs"])), claim.generate)
    clean = ctx.session.memo(key, lambda: greedy(loaded.model, ids, mask, claim.generate))
    with st.inject(loaded.adapter, layer, direction, mult, start=(mask == 0).sum(1)):
        steered = greedy(loaded.model, ids, mask, claim.generate)
    ctx.session.forward_passes += claim.generate
    texts = [tok.decode(row, skip_special_tokens=True) for row in steered]
    clean_texts = [tok.decode(row, skip_special_tokens=True) for row in clean]
    return {"injected": sum(st.mentions(t, concept) for t in texts) / len(texts),
            "clean": sum(st.mentions(t, concept) for t in clean_texts) / len(texts),
            "new_tokens": claim.generate, "examples": texts[:3]}


def _detection(claim: Any, ctx: ClaimContext, s: dict[str, Any], v: Any, concept: str) -> dict[str, Any]:
    import torch

    from icltest.interventions import steering as st
    from icltest.models.generate import greedy

    loaded, layer = ctx.loaded, s["layer"]
    tok = loaded.tokenizer
    if not getattr(tok, "chat_template", None):
        raise ClaimSpecError(ctx.location(("detection",)), "detection", "the detection probe needs a chat template")
    data = _defaults().detection
    seq, start = st.detection_prompt(tok, data)
    yes, no = st.first_token_ids(tok, data["yes_words"]), st.first_token_ids(tok, data["no_words"])
    direction, mult = _added(claim, s["cv"], v, layer, claim.strength)
    rand = st.random_like(direction * mult, 1, claim.control.seed if claim.control else 0)[0]
    rows = torch.stack([direction * mult, torch.zeros_like(direction), rand])  # injected, control trial, random
    ids = torch.tensor([seq] * 3)
    starts = torch.full((3,), start)
    with st.inject(loaded.adapter, layer, rows, 1.0, starts):
        logits = st.next_logits(loaded.model, loaded.adapter, [seq] * 3, tok)
        answers = greedy(loaded.model, ids, None, claim.detection.new_tokens)
    probs = torch.softmax(logits, -1)
    texts = [tok.decode(a, skip_special_tokens=True) for a in answers]
    p_yes = [float(probs[i, yes].sum()) for i in range(3)]
    p_no = [float(probs[i, no].sum()) for i in range(3)]
    return {"p_yes": {"injected": p_yes[0], "control trial": p_yes[1], "random vector": p_yes[2]},
            "p_no": {"injected": p_no[0], "control trial": p_no[1], "random vector": p_no[2]},
            "yes_gain": p_yes[0] - p_yes[1],
            "named": float(st.mentions(texts[0], concept)), "named_control_trial": float(st.mentions(texts[1], concept)),
            "answers": {"injected": texts[0], "control trial": texts[1], "random vector": texts[2]},
            "injected_from_token": start, "prompt_tokens": len(seq),
            "yes_ids": yes, "no_ids": no}


def _bounds(exp: Any, keys: tuple[str, ...], values: dict[str, Any], label: str, expects: list[str],
            parts: list[str]) -> bool:
    """Check each bound ``exp`` sets against ``values``; note expectations and failures."""
    passed = True
    for key in keys:
        bound = getattr(exp, key)
        if bound is not None:
            ok = bound.check(values[key])
            passed &= ok
            expects.append(f"{label} {key} {bound}")
            parts[-1] += "" if ok else f" ({key} FAILED)"
    return passed


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    d = m.details
    parts, expects, passed = [], [], True
    if claim.expect.gain is not None:
        ok = claim.expect.gain.check(m.value)
        passed &= ok
        expects.append(f"gain {claim.expect.gain}")
        parts.append(f"{d['concept']} at L{d['layer']} x{d['strength']} ({d['scale']}): log-prob gain {m.value:.3f} nats"
                     f"{'' if ok else ' FAILED'} (KL {d['kl_from_clean']:.3f})")
    else:
        parts.append(f"{d['concept']} at L{d['layer']} x{d['strength']}: log-prob gain {m.value:.3f} nats")
    if claim.expect.mention is not None:
        share = d["mention"]["injected"]
        ok = claim.expect.mention.check(share)
        passed &= ok
        expects.append(f"mention {claim.expect.mention}")
        parts.append(f"mentioned in {share:.2f} of greedy continuations (clean {d['mention']['clean']:.2f})"
                     f"{'' if ok else ' FAILED'}")
    if "wrong_concept_mean" in d:
        parts.append(f"other concepts' vectors {d['wrong_concept_mean']:.3f}")
    if "token_echo" in d:
        parts.append(f"the prompt token's own embedding at ||v|| {d['token_echo']['gain']:.3f}")
    if "control" in d:
        c = d["control"]
        parts.append(f"random directions {c['mean']:.3f} +- {c['sd']:.3f}, p {c['p']:.3g}, z {c['z']:.3g}")
        exp = claim.control.expect
        if exp is not None:
            passed &= _bounds(exp, ("p", "z", "mean"), c, "control", expects, parts)
            if exp.effect_ratio is not None:
                passed = False
                parts[-1] += " (effect_ratio is not supported for steering: bound p or z)"
    if "detection" in d:
        det = d["detection"]
        parts.append(f"detection P(yes) {det['p_yes']['injected']:.3f} injected vs {det['p_yes']['control trial']:.3f} "
                     f"control trial, names concept {det['named']:.0f}")
    if math.isnan(m.value):
        passed = False
    return Verdict(bool(passed), "; ".join(expects), "; ".join(parts), m)


def baseline_direction(claim: Any) -> str | None:
    """The value is the log-prob gain even when only ``expect.mention`` is bounded: the gain's
    bound decides, else the mention share's (it moves with the gain), else higher."""
    from icltest.baseline import first_direction

    return first_direction(claim.expect.gain, claim.expect.mention, default="higher")
