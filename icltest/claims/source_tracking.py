"""`kind: source_tracking` — does a linear probe on the heads' logit-lens contributions tell whether an answer came from the context or from memory?

Kahardipraja et al. (2025) project each head's output through the unembedding (its direct logit
contribution to the token the model produces) and train a linear probe on those numbers to tell
answers copied from the context from answers recalled from memory. Here:

- inputs: conflict prompts (:mod:`icltest.probes.source`): a closed-book question behind a
  context stating another answer ("In this story, the capital of Kenya is Stockholm."). The
  *model's own answer* labels each prompt: its first token is the context's answer (context) or
  the true one (memory); prompts answered with anything else are dropped and counted. Question
  wording and answer words are shared by both classes; only which source won differs;
- features: every head's direct logit attribution (:mod:`icltest.attribution.dla`, centred
  logits) to the token the model predicts at the last position ([n_layers * n_heads] per
  prompt); ``features: layers`` uses each attention and MLP block's instead;
- probe: standardised logistic regression (L2, C = 1), trained on ``select``-split prompts,
  scored on ``test``-split prompts whose items it never saw: the ROC AUC is the claim's value;
- baselines: the AUC of the predicted token's probability alone and of the summed direct effect
  of all heads (one number: is the per-head pattern needed?), and a label-permutation control:
  the probe retrained on shuffled training labels ``draws`` times, and where the real AUC falls
  among those draws (p). By construction the text also tells the classes apart (the context's
  answer is in the prompt): the claim is that the *heads' contributions* carry it linearly.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from icltest.claims.base import ClaimContext, ClaimSpecError, Measurement, Target, Verdict
from icltest.errors import InputError
from icltest.schema.base import ClaimBase, Expectation, _Strict


class SourceExpect(_Strict):
    auroc: Expectation = Field(description="ROC AUC of the probe on held-out prompts")


class PermutationExpect(_Strict):
    p: Expectation = Field(description="(1 + draws reaching the real AUC) / (1 + draws)")


class PermutationControl(_Strict):
    """Retrain the probe on permuted training labels; the real AUC's place among the draws."""

    draws: int = Field(19, ge=1, le=1000)
    seed: int = Field(0, ge=0)
    expect: PermutationExpect | None = None


class SourceTrackingClaim(ClaimBase):
    """A linear probe on per-head logit-lens features separates context-sourced from memory-sourced answers."""

    kind: Literal["source_tracking"]
    features: Literal["heads", "layers"] = "heads"
    shots: int = Field(2, ge=0, le=64, description="even: half open-book, half closed-book demonstrations")
    n: int = Field(96, ge=8, le=4096, description="prompts per split (training: select, scoring: test)")
    min_class: int = Field(5, ge=2, description="fewest prompts of each source a split must give (else an error)")
    seed: int = Field(0, ge=0)
    expect: SourceExpect
    control: PermutationControl | None = None


Schema = SourceTrackingClaim


def targets(claim: Any) -> list[Target]:
    return [Target(f"{claim.features}")]


def _features(claim: Any, ctx: ClaimContext, split: str) -> dict[str, Any]:
    """Per kept prompt: features, label (by the model's answer), confidence; and the counts."""
    import torch

    from icltest.attribution.dla import direct_effects
    from icltest.probes.prompts import pad_left
    from icltest.probes.source import CONTEXT, MEMORY, build_source_prompts, label_by_output

    tok = ctx.loaded.tokenizer
    try:
        batch, ids_ab = build_source_prompts(tok, n=claim.n, seed=claim.seed, split=split, shots=claim.shots)
    except InputError as exc:
        raise ClaimSpecError(ctx.location(("shots",)), "shots", str(exc)) from None
    from icltest.probes.prompts import pad_id

    pad = pad_id(tok)
    ids, mask = pad_left(batch.input_ids, pad)
    read = torch.zeros_like(ids, dtype=torch.bool)
    read[:, -1] = True
    effects = direct_effects(ctx.loaded, ids, read, None, mask=mask)  # on the model's own greedy token
    labels = label_by_output(effects.targets.tolist(), ids_ab)
    counts = {"context": labels.count(CONTEXT), "memory": labels.count(MEMORY), "neither": labels.count(None)}
    label = (f"conflict prompts ({split} split, shots={claim.shots}, n={claim.n}, seed={claim.seed}, "
             f"bos={batch.params.get('bos')}; answered from context {counts['context']}, from memory "
             f"{counts['memory']}, neither {counts['neither']} (dropped))")
    if min(counts["context"], counts["memory"]) < claim.min_class:
        raise ClaimSpecError(ctx.location(("n",)), "n",
                             f"the model answered {counts['context']} {split} prompts from the context and "
                             f"{counts['memory']} from memory (of {claim.n}); a probe needs at least {claim.min_class} "
                             "of each: raise n (or lower min_class)")
    keep = torch.tensor([lab is not None for lab in labels])
    ctx.session.forward_passes += 1
    x = effects.heads if claim.features == "heads" else torch.stack([effects.attn(), effects.mlp], 1)
    y = [lab for lab in labels if lab is not None]
    return {"x": x[keep].flatten(1).numpy(), "y": y, "confidence": effects.target_prob[keep].numpy(),
            "heads_sum": effects.heads[keep].sum((1, 2)).numpy(), "counts": counts, "label": label}


def _probe(x: Any, y: Any) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000)).fit(x, y)


def measure(claim: Any, target: Target, ctx: ClaimContext) -> Measurement:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    train, test = _features(claim, ctx, "select"), _features(claim, ctx, "test")
    model = _probe(train["x"], train["y"])
    auc = float(roc_auc_score(test["y"], model.predict_proba(test["x"])[:, 1]))
    def one_feature(key: str) -> float:  # a single number, its direction taken from the training prompts
        sign = 1.0 if roc_auc_score(train["y"], train[key]) >= 0.5 else -1.0
        return round(float(roc_auc_score(test["y"], sign * np.asarray(test[key]))), 4)

    details: dict[str, Any] = {
        "features": f"{claim.features}: {train['x'].shape[1]} direct logit attributions to the predicted token",
        "train": train["label"], "test": test["label"], "train_auroc": round(float(roc_auc_score(
            train["y"], model.predict_proba(train["x"])[:, 1])), 4),
        "confidence_auroc": one_feature("confidence"), "heads_sum_auroc": one_feature("heads_sum"),
        "answered": {"train": train["counts"], "test": test["counts"]},
        "probe": "standardised logistic regression, L2, C=1",
    }
    if claim.control is not None:
        rng = np.random.default_rng(claim.control.seed)
        draws = []
        for _ in range(claim.control.draws):
            shuffled = rng.permutation(np.asarray(train["y"]))
            draws.append(float(roc_auc_score(test["y"], _probe(train["x"], shuffled).predict_proba(test["x"])[:, 1])))
        arr = np.asarray(draws)
        details["control"] = {"draws": len(draws), "mean": round(float(arr.mean()), 4), "sd": round(float(arr.std(ddof=1)) if len(draws) > 1 else 0.0, 4),
                              "max": round(float(arr.max()), 4), "p": round((1 + int((arr >= auc).sum())) / (1 + len(draws)), 4),
                              "what": "probe retrained on permuted training labels, scored on the same held-out prompts"}
    return Measurement(auc, "held-out ROC AUC", details, test["label"], claim.seed)


def judge(claim: Any, target: Target, m: Measurement) -> Verdict:
    d = m.details
    passed = claim.expect.auroc.check(m.value)
    expect = f"auroc {claim.expect.auroc}"
    t = d["answered"]["test"]
    summary = (f"held-out AUROC {m.value:.3f} on {t['context']} context / {t['memory']} memory answers (expected "
               f"{claim.expect.auroc}); train {d['train_auroc']:.3f}; confidence alone {d['confidence_auroc']:.3f}, "
               f"summed heads alone {d['heads_sum_auroc']:.3f}")
    if "control" in d:
        c = d["control"]
        summary += f"; permuted labels {c['mean']:.3f} +- {c['sd']:.3f} (max {c['max']:.3f}, p {c['p']})"
        if claim.control.expect is not None:
            ok = claim.control.expect.p.check(c["p"])
            passed = passed and ok
            expect += f"; control p {claim.control.expect.p}"
            summary += "" if ok else " FAILED"
    return Verdict(passed, expect, summary, m)


def baseline_direction(claim: Any) -> str | None:
    """The value is the held-out ROC AUC: its bound decides, else higher."""
    from icltest.baseline import first_direction

    return first_direction(claim.expect.auroc, default="higher")
