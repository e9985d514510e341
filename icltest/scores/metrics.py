"""Behavioural metrics: logits / per-token losses -> the numbers an ablation claim compares.

Pure functions of tensors, so each is checked on hand-made tensors with known answers. Two index
conventions meet here and are the usual source of off-by-one bugs, so they are fixed once:

* *token positions* p = 0 .. seq-1 index the input ids;
* *loss indices* i = 0 .. seq-2 index ``token_losses``' output, and loss i is the loss of
  predicting token i+1, so token position p is predicted by loss index p-1 (position 0 by none).

Functions that take positions (``segment_loss``, ``icl_score``) convert them; callers never do.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch

PARTS: tuple[str, ...] = ("first", "second_half", "later", "all")


def token_losses(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy in nats, float32 whatever the model's dtype.

    Args:
        logits: [batch, seq, vocab].
        tokens: [batch, seq] ids that produced them.

    Returns:
        [batch, seq-1]; entry i is the loss of predicting ``tokens[:, i+1]`` from ``logits[:, i]``.
    """
    if logits.dim() != 3 or tokens.dim() != 2 or tuple(logits.shape[:2]) != tuple(tokens.shape):
        raise ValueError(
            f"expected logits [batch, seq, vocab] and tokens [batch, seq], got {tuple(logits.shape)} "
            f"and {tuple(tokens.shape)}"
        )
    if tokens.shape[1] < 2:
        raise ValueError("token_losses needs sequences of at least 2 tokens (one prediction)")
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), tokens[:, 1:].to(logits.device), reduction="none"
    )


def _repeats_for(part: Any, repeats: int) -> list[int]:
    if isinstance(part, bool):
        raise ValueError(f"part must be one of {list(PARTS)} or a repeat index, got {part!r}")
    if isinstance(part, int):
        if not 0 <= part < repeats:
            raise ValueError(f"repeat index {part} out of range: the probe has repeats 0..{repeats - 1}")
        return [part]
    if part == "first":
        return [0]
    if part in ("second_half", "later"):
        if repeats < 2:
            raise ValueError(f"part {part!r} needs at least 2 repeats, the probe has {repeats}")
        return list(range(1, repeats))
    if part == "all":
        return list(range(repeats))
    raise ValueError(f"part must be one of {list(PARTS)} or a repeat index, got {part!r}")


def segment_positions(*, prefix: int, segment: int, repeats: int, part: Any) -> list[int]:
    """Token positions of the chosen repeats that something predicts (position 0 never is).

    Repeat r occupies positions ``prefix + r*segment`` .. ``prefix + (r+1)*segment - 1``.
    """
    if prefix < 0 or segment < 1 or repeats < 1:
        raise ValueError(f"need prefix >= 0, segment >= 1, repeats >= 1; got {prefix}, {segment}, {repeats}")
    positions = []
    for r in _repeats_for(part, repeats):
        start = prefix + r * segment
        positions.extend(p for p in range(start, start + segment) if p > 0)
    return positions


def segment_loss(
    token_loss: torch.Tensor, *, prefix: int, segment: int, repeats: int, part: str | int
) -> float:
    """Mean loss over the predicted positions of some repeats of a repeated-segment probe.

    The repeated-random probe's behavioural signature of induction is a loss near log(V) on the
    first repeat (random tokens are unpredictable) and near 0 on later ones (they can be copied).

    Args:
        token_loss: [batch, seq-1] from :func:`token_losses`.
        prefix: leading non-probe positions (1 when BOS was prepended).
        segment: segment length.
        repeats: number of repeats in the probe.
        part: "first" (repeat 0; its first token is skipped when prefix == 0 since nothing
            predicts it), "second_half" or "later" (both mean every repeat >= 1: "second_half" is
            the usual name for the two-repeat probe, "later" reads better for three or more),
            "all", or an int repeat index.

    Returns:
        The mean over batch and those positions, as a float.
    """
    if token_loss.dim() != 2:
        raise ValueError(f"token_loss must be [batch, seq-1], got shape {tuple(token_loss.shape)}")
    positions = segment_positions(prefix=prefix, segment=segment, repeats=repeats, part=part)
    needed = prefix + repeats * segment
    if token_loss.shape[1] + 1 < needed:
        raise ValueError(
            f"token_loss covers {token_loss.shape[1] + 1} tokens but prefix {prefix} + {repeats} "
            f"repeats x {segment} needs {needed}; check the probe's prefix/segment/repeats"
        )
    if not positions:
        raise ValueError(f"part {part!r} selects no predicted position")
    index = torch.tensor([p - 1 for p in positions], device=token_loss.device)
    return float(token_loss.float().index_select(1, index).mean().item())


def icl_score(token_loss: torch.Tensor, *, late: int, early: int, window: int = 1) -> float:
    """In-context learning score (Olsson et al., 2022): loss at a late token minus an early one.

    Negative means the model predicts better with more context. ``late`` and ``early`` are token
    positions (the paper's "500th and 50th token"), converted here to loss indices (pos - 1).

    Args:
        token_loss: [batch, seq-1] from :func:`token_losses`.
        late: token position with more context; 1 <= early < late <= seq-1.
        early: token position with less context.
        window: average each side over this many positions ending at ``late`` / ``early``
            (one token's loss over a small batch is noisy); needs ``early - window + 1 >= 1``.
    """
    if token_loss.dim() != 2:
        raise ValueError(f"token_loss must be [batch, seq-1], got shape {tuple(token_loss.shape)}")
    last = token_loss.shape[1]  # the last token position is seq-1 == number of losses
    if not (1 <= early < late <= last):
        raise ValueError(
            f"icl_score needs token positions 1 <= early < late <= {last} (position 0 is never "
            f"predicted; the probe has {last + 1} tokens), got early={early}, late={late}"
        )
    if window < 1 or early - window + 1 < 1:
        raise ValueError(f"window {window} must be >= 1 and fit before early={early} (early - window + 1 >= 1)")
    losses = token_loss.float()
    late_mean = losses[:, late - window:late].mean()
    early_mean = losses[:, early - window:early].mean()
    return float((late_mean - early_mean).item())


def _first_ids(answer_ids: Any, n: int, name: str = "answer_ids") -> torch.Tensor:
    """One id per row: ints are taken as is, token-id sequences contribute their first token."""
    if isinstance(answer_ids, torch.Tensor):
        ids = answer_ids[:, 0] if answer_ids.dim() == 2 else answer_ids
        ids = ids.long().flatten()
    else:
        out = []
        for item in answer_ids:
            if isinstance(item, (int,)) or (isinstance(item, torch.Tensor) and item.dim() == 0):
                out.append(int(item))
            else:
                seq = list(item)
                if not seq:
                    raise ValueError(f"{name}: an answer tokenized to no tokens")
                out.append(int(seq[0]))
        ids = torch.tensor(out, dtype=torch.long)
    if ids.numel() != n:
        raise ValueError(f"{name} has {ids.numel()} answers for {n} rows of logits")
    return ids


def _check_last(logits_last: torch.Tensor) -> None:
    if logits_last.dim() != 2:
        raise ValueError(f"logits_last must be [n, vocab], got shape {tuple(logits_last.shape)}")


def first_token_accuracy(logits_last: torch.Tensor, answer_ids: Sequence[Any]) -> float:
    """Fraction of rows whose argmax is the answer's first token.

    Args:
        logits_last: [n, vocab], the logits at the position that predicts the answer.
        answer_ids: one int per row, or one token-id sequence per row (its first id counts).
    """
    _check_last(logits_last)
    ids = _first_ids(answer_ids, logits_last.shape[0]).to(logits_last.device)
    if ids.numel() == 0:
        return math.nan
    return float((logits_last.argmax(dim=-1) == ids).float().mean().item())


def answer_prob(logits_last: torch.Tensor, answer_ids: Sequence[Any]) -> torch.Tensor:
    """[n] softmax probability of each row's answer first token (float32)."""
    _check_last(logits_last)
    ids = _first_ids(answer_ids, logits_last.shape[0]).to(logits_last.device)
    probs = torch.softmax(logits_last.float(), dim=-1)
    return probs.gather(1, ids[:, None]).squeeze(1)


def logit_diff(logits_last: torch.Tensor, a_ids: Sequence[Any], b_ids: Sequence[Any]) -> torch.Tensor:
    """[n] logit of answer a minus logit of answer b (first tokens), float32.

    Differences of logits are invariant to the per-row constant softmax ignores, which makes them
    the usual metric for patching experiments (e.g. IOI: correct name minus wrong name).
    """
    _check_last(logits_last)
    n = logits_last.shape[0]
    a = _first_ids(a_ids, n, "a_ids").to(logits_last.device)
    b = _first_ids(b_ids, n, "b_ids").to(logits_last.device)
    logits = logits_last.float()
    return (logits.gather(1, a[:, None]) - logits.gather(1, b[:, None])).squeeze(1)


def _answer_steps(
    logits: torch.Tensor, answers: Sequence[Sequence[int]], full: Sequence[bool]
) -> list[tuple[torch.Tensor, list[int]]]:
    """Per row: (the logits that predict the scored answer tokens [L, vocab], those tokens)."""
    if logits.dim() != 3:
        raise ValueError(f"logits must be [n, kept positions, vocab], got shape {tuple(logits.shape)}")
    n, kept = logits.shape[0], logits.shape[1]
    if len(answers) != n or len(full) != n:
        raise ValueError(f"got {len(answers)} answers and {len(full)} full flags for {n} rows of logits")
    out = []
    for row, (answer, whole) in enumerate(zip(answers, full)):
        tokens = [int(t) for t in answer]
        if not tokens:
            raise ValueError("an answer tokenized to no tokens")
        tokens = tokens if whole else tokens[:1]
        if len(tokens) > kept:
            raise ValueError(f"answer of {len(tokens)} tokens but only {kept} positions of logits were kept")
        out.append((logits[row, kept - len(tokens):].float(), tokens))
    return out


def answer_matches(logits: torch.Tensor, answers: Sequence[Sequence[int]], full: Sequence[bool]) -> torch.Tensor:
    """[n] bool: the answer is the greedy continuation, on all its tokens where ``full`` is set.

    Teacher-forced: for a ``full`` row the input was prompt + answer[:-1], so its last len(answer)
    positions predict the answer's tokens one by one, and every one must be the argmax. Other rows
    are read at the last position on the first answer token, as first-token accuracy. Scoring in
    full is what tells " Doha" from " Dakar" when both start with the same token.

    Args:
        logits: [n, K, vocab], the last K positions of each (left-padded) row, K >= the longest
            scored answer.
        answers: each row's answer token ids as they follow the prompt.
        full: per row, score every answer token (True) or the first only (False).
    """
    rows = [bool(torch.equal(steps.argmax(-1).cpu(), torch.tensor(tokens))) for steps, tokens in
            _answer_steps(logits, answers, full)]
    return torch.tensor(rows, dtype=torch.bool)


def answer_probability(logits: torch.Tensor, answers: Sequence[Sequence[int]], full: Sequence[bool]) -> torch.Tensor:
    """[n] probability of the answer: the product of its teacher-forced token probabilities where
    ``full`` is set, else the first token's probability (arguments as :func:`answer_matches`)."""
    out = []
    for steps, tokens in _answer_steps(logits, answers, full):
        logp = torch.log_softmax(steps, dim=-1)
        out.append(float(logp[torch.arange(len(tokens)), torch.tensor(tokens)].sum().exp()))
    return torch.tensor(out, dtype=torch.float32)
