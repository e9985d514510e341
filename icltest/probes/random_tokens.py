"""Random-token probes: the standard input for induction, previous-token and duplicate heads.

Random tokens carry no meaning, so a head that attends to "the token after the previous copy"
can only be doing so by the induction mechanism, not from semantics. Tokens are drawn without
replacement inside a segment so every repeated position has exactly one earlier copy per repeat.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from icltest.errors import InputError


@dataclass(frozen=True)
class Vocab:
    """The token ids a random probe may draw from, and the BOS id the model expects.

    Attributes:
        allowed: sorted ids that are not special/added tokens and exist in the embedding.
        bos_id: id prepended when a probe asks for BOS, or None when the tokenizer has none.
        special_ids: ids excluded because they are special or added tokens.
    """

    allowed: torch.Tensor
    bos_id: int | None
    special_ids: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        return int(self.allowed.numel())


def vocab_from_tokenizer(tokenizer: Any, embedding_rows: int | None = None) -> Vocab:
    """Derive the drawable vocabulary: every id below the embedding size that is not special.

    Added tokens (chat markers, Gemma's `<unusedN>` and image tokens) are excluded as well as
    `all_special_ids`, because the model never saw them in running text.
    """
    n = len(tokenizer)
    if embedding_rows is not None:
        n = min(n, int(embedding_rows))
    special = set(int(i) for i in getattr(tokenizer, "all_special_ids", []) or [])
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    special.update(int(i) for i in added)
    mask = torch.ones(n, dtype=torch.bool)
    for i in special:
        if 0 <= i < n:
            mask[i] = False
    bos = getattr(tokenizer, "bos_token_id", None)
    return Vocab(
        allowed=torch.nonzero(mask).flatten(),
        bos_id=int(bos) if bos is not None else None,
        special_ids=tuple(sorted(special)),
    )


@dataclass
class Probe:
    """A token batch plus what a score needs to interpret it.

    Attributes:
        tokens: [batch, seq] ids.
        valid: [batch, seq] positions that may be queries or targets (False at BOS).
        label: text naming the probe and its parameters (goes into every failure message).
        params: the parameters as a dict (goes into JSON results).
        segment: length of the repeated segment, for metrics by repeat.
        prefix: number of leading non-probe positions (1 when BOS was prepended).
    """

    tokens: torch.Tensor
    valid: torch.Tensor
    label: str
    params: dict[str, Any] = field(default_factory=dict)
    segment: int = 0
    prefix: int = 0


def _use_bos(bos: Any, vocab: Vocab) -> bool:
    if bos in (True, "yes"):
        if vocab.bos_id is None:
            raise InputError("probe asks for bos: yes but the tokenizer defines no BOS token")
        return True
    if bos in (False, "no"):
        return False
    return vocab.bos_id is not None


def repeated_random(
    vocab: Vocab, *, length: int, repeats: int, batch: int, seed: int, bos: Any = "auto"
) -> Probe:
    """[BOS] + a random segment of `length` distinct tokens, repeated `repeats` times."""
    if vocab.size < length:
        raise InputError(f"probe length {length} exceeds the {vocab.size} drawable tokens")
    generator = torch.Generator().manual_seed(int(seed))
    rows = []
    for _ in range(batch):
        pick = torch.randperm(vocab.size, generator=generator)[:length]
        rows.append(vocab.allowed[pick].repeat(repeats))
    tokens = torch.stack(rows)
    use_bos = _use_bos(bos, vocab)
    valid = torch.ones_like(tokens, dtype=torch.bool)
    if use_bos:
        tokens = torch.cat([torch.full((batch, 1), vocab.bos_id, dtype=tokens.dtype), tokens], dim=1)
        valid = torch.cat([torch.zeros((batch, 1), dtype=torch.bool), valid], dim=1)
    params = {
        "kind": "repeated_random", "length": length, "repeats": repeats, "batch": batch,
        "seed": seed, "bos": vocab.bos_id if use_bos else None, "vocab_size": vocab.size,
    }
    label = (
        f"repeated_random(length={length}, repeats={repeats}, batch={batch}, seed={seed}, "
        f"bos={'id ' + str(vocab.bos_id) if use_bos else 'none'})"
    )
    return Probe(tokens, valid, label, params, segment=length, prefix=1 if use_bos else 0)


def make_probe(spec: Any, vocab: Vocab, tokenizer: Any = None) -> Probe:
    """Build the probe a spec's `probe:` mapping describes (natural text needs the tokenizer)."""
    kind = getattr(spec, "kind", "repeated_random")
    if kind == "natural_text":
        from icltest.probes.natural_text import natural_text

        if tokenizer is None:
            raise ValueError("a natural_text probe needs the model's tokenizer")
        return natural_text(tokenizer, length=spec.length, batch=spec.batch, seed=spec.seed,
                            corpus=getattr(spec, "corpus", "essays"), bos=getattr(spec, "bos", "auto"),
                            bos_id=vocab.bos_id)
    if kind == "repeated_random":
        return repeated_random(
            vocab, length=spec.length, repeats=spec.repeats, batch=spec.batch, seed=spec.seed,
            bos=getattr(spec, "bos", "auto"),
        )
    raise ValueError(f"unknown probe kind '{kind}'")
