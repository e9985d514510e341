"""`kind: source_tracking` — does a linear probe on the heads' logit-lens contributions tell where an answer came from?

Kahardipraja et al. (2025) project each head's output through the unembedding (its direct logit
contribution to the token the model produces) and train a linear probe on those numbers to tell
answers copied from the context from answers recalled from memory. Here:

- inputs: :func:`icltest.probes.source.build_source_prompts`: open-book prompts (answer only in
  the context) and closed-book questions behind a distractor context, same format and the same
  mix of demonstrations, so only the source of the answer differs;
- features: every head's direct logit attribution (:mod:`icltest.attribution.dla`) to the token
  the model predicts at the last position ([n_layers * n_heads] per prompt); ``features:
  layers`` uses each attention and MLP block's instead;
- probe: standardised logistic regression (L2, C = 1), trained on ``select``-split prompts,
  scored on ``test``-split prompts it never saw: the ROC AUC is the claim's value;
- baselines: the AUC of the predicted token's probability alone (is the probe more than a
  confidence detector?) and a label-permutation control: the probe retrained on shuffled
  training labels ``draws`` times, and where the real AUC falls among those draws (p).
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
    n: int = Field(64, ge=8, le=4096, description="prompts per split (training: select, scoring: test)")
    seed: int = Field(0, ge=0)
    expect: SourceExpect
    control: PermutationControl | None = None


Schema = SourceTrackingClaim


def targets(claim: Any) -> list[Target]:
    return [Target(f"{claim.features}")]


def _features(claim: Any, ctx: ClaimContext, split: str) -> dict[str, Any]:
    """Per prompt: features, label, predicted token's probability and whether it is the answer."""
    import torch

    from icltest.attribution.dla import direct_effects
    from icltest.probes.prompts import pad_left
    from icltest.probes.source import build_source_prompts

    tok = ctx.loaded.tokenizer
    try:
        batch, labels = build_source_prompts(tok, n=claim.n, seed=claim.seed, split=split, shots=claim.shots)
    except InputError as exc:
        raise ClaimSpecError(ctx.location(("shots",)), "shots", str(exc)) from None
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    ids, mask = pad_left(batch.input_ids, pad)
    model = ctx.loaded.model
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                       position_ids=(mask.cumsum(-1) - 1).clamp(min=0).to(device), logits_to_keep=1).logits[:, -1].float().cpu()
    predicted = logits.argmax(-1)
    read = torch.zeros_like(ids, dtype=torch.bool)
    read[:, -1] = True
    effects = direct_effects(ctx.loaded, ids, read, predicted, mask=mask)
    ctx.session.forward_passes += 2
    if claim.features == "heads":
        x = effects.heads.flatten(1)
    else:
        x = torch.cat([effects.attn(), effects.mlp], 1)
    return {"x": x.numpy(), "y": labels, "confidence": torch.softmax(logits, -1).max(-1).values.numpy(),
            "correct": (predicted == torch.tensor(batch.answer_ids)).numpy(), "label": f"source prompts ({split}, "
            f"shots={claim.shots}, n={claim.n}, seed={claim.seed}, bos={batch.params.get('bos')})"}


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
    # confidence alone, oriented on the training prompts
    sign = 1.0 if roc_auc_score(train["y"], train["confidence"]) >= 0.5 else -1.0
    conf_auc = float(roc_auc_score(test["y"], sign * test["confidence"]))
    y_test, correct = np.asarray(test["y"]), np.asarray(test["correct"])
    details: dict[str, Any] = {
        "features": f"{claim.features}: {train['x'].shape[1]} direct logit attributions to the predicted token",
        "train": train["label"], "test": test["label"], "train_auroc": round(float(roc_auc_score(
            train["y"], model.predict_proba(train["x"])[:, 1])), 4),
        "confidence_auroc": round(conf_auc, 4),
        "answer_correct": {"context": round(float(correct[y_test == 1].mean()), 4),
                           "memory": round(float(correct[y_test == 0].mean()), 4)},
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
    summary = (f"held-out AUROC {m.value:.3f} (expected {claim.expect.auroc}); train {d['train_auroc']:.3f}; "
               f"confidence alone {d['confidence_auroc']:.3f}")
    if "control" in d:
        c = d["control"]
        summary += f"; permuted labels {c['mean']:.3f} +- {c['sd']:.3f} (max {c['max']:.3f}, p {c['p']})"
        if claim.control.expect is not None:
            ok = claim.control.expect.p.check(c["p"])
            passed = passed and ok
            expect += f"; control p {claim.control.expect.p}"
            summary += "" if ok else " FAILED"
    return Verdict(passed, expect, summary, m)
