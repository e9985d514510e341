"""Concept vectors and their injection into the residual stream (activation addition).

Method (Turner et al. 2023, "activation addition"; Anthropic 2025, "Emergent introspective
awareness in large language models"):

- **concept vector** at layer L: ``resid_post`` of layer L at the last token of
  ``template.format(word=concept)`` minus the mean of the same over reference words
  (:func:`concept_vectors`); with a chat template the prompt is one user message followed by the
  generation prompt, so the last token is the one right before the assistant's answer;
- **injection**: ``resid_post[L] += strength * v`` at every position of a prompt, or from a given
  position on (:class:`Injection`, :func:`inject`), also at every generated token (a one-token
  call is a cached decoding step, which always lies after the start);
- **concept probability**: ``log sum_{t in T} p(t | prompt)`` at the next position, where ``T`` is
  the set of first tokens of the word written four ways (:func:`concept_token_ids`).

Log-probability rather than probability: a concept word's next-token probability on a neutral
prompt is ~1e-6..1e-3 and varies by orders of magnitude between prompts; the mean log-probability
gain is the mean log ratio p(injected)/p(clean), which no single prompt dominates.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterator, Sequence

import torch

from icltest.models.forward import logits_at
from icltest.models.hookpoints import hooked, point
from icltest.probes.prompts import bos_id_for, pad_id, pad_left

BATCH = 64


@dataclass(frozen=True)
class ConceptData:
    """The shipped defaults (``icltest/data/concepts.yaml``)."""

    template: str
    concepts: tuple[str, ...]
    reference_words: tuple[str, ...]
    neutral_prompts: tuple[str, ...]
    detection: dict[str, Any] = field(default_factory=dict)


def load_concept_data() -> ConceptData:
    import yaml

    data = yaml.safe_load(resources.files("icltest").joinpath("data", "concepts.yaml").read_text())
    return ConceptData(data["template"], tuple(data["concepts"]), tuple(data["reference_words"]),
                       tuple(data["neutral_prompts"]), dict(data["detection"]))


def _encode(tokenizer: Any, text: str) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def encode_texts(tokenizer: Any, texts: Sequence[str], chat: bool) -> list[list[int]]:
    """Token ids per text: plain text after the tokenizer's BOS (once, if it has one), or one user
    message of the chat template followed by the generation prompt."""
    out = []
    bos = None if chat else bos_id_for(tokenizer, "auto")
    for text in texts:
        if chat:
            ids = _encode(tokenizer, tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False))
        else:
            ids = _encode(tokenizer, text)
            if bos is not None and ids[:1] != [bos]:
                ids = [bos] + ids
        out.append(ids)
    return out


def last_token_resid(model: Any, adapter: Any, tokenizer: Any, seqs: Sequence[Sequence[int]],
                     layers: Sequence[int]) -> torch.Tensor:
    """``resid_post`` at the last token of each sequence, for each layer: [n, len(layers), d] (float32)."""
    from icltest.interventions.core import capture

    points = [point("resid_post", layer) for layer in layers]
    chunks = []
    for i in range(0, len(seqs), BATCH):
        ids, mask = pad_left(seqs[i:i + BATCH], pad_id(tokenizer))
        store = capture(adapter, points, lambda: logits_at(model, ids, 1, mask))
        chunks.append(torch.stack([store[p][:, -1].float().cpu() for p in points], 1))
    return torch.cat(chunks, 0)


@dataclass
class ConceptVectors:
    """Concept vectors at some layers, and the scale of the residual stream there.

    Attributes:
        concepts, layers: what the rows / columns of ``vectors`` are.
        vectors: [n_concepts, n_layers, d] = concept activation - reference-word mean.
        reference_mean: [n_layers, d].
        resid_norm: [n_layers], mean L2 norm of the reference-word prompts' last-token residual.
    """

    concepts: list[str]
    layers: list[int]
    vectors: torch.Tensor
    reference_mean: torch.Tensor
    resid_norm: torch.Tensor

    def at(self, concept: str, layer: int) -> torch.Tensor:
        return self.vectors[self.concepts.index(concept), self.layers.index(layer)]

    def norm_ratio(self, concept: str, layer: int) -> float:
        """||v|| / typical ||resid_post|| at that layer."""
        return float(self.at(concept, layer).norm() / self.resid_norm[self.layers.index(layer)])


def concept_vectors(model: Any, adapter: Any, tokenizer: Any, concepts: Sequence[str], reference: Sequence[str],
                    layers: Sequence[int], template: str = "Tell me about {word}", chat: bool = False) -> ConceptVectors:
    """Concept vectors (see the module docstring); ``concepts`` and ``reference`` must not overlap."""
    overlap = sorted(set(concepts) & set(reference))
    if overlap:
        raise ValueError(f"concept words {overlap} are also reference words")
    layers = list(layers)
    acts = last_token_resid(model, adapter, tokenizer,
                            encode_texts(tokenizer, [template.format(word=w) for w in [*concepts, *reference]], chat),
                            layers)
    concept_acts, base = acts[:len(concepts)], acts[len(concepts):]
    mean = base.mean(0)
    return ConceptVectors(list(concepts), layers, concept_acts - mean, mean, base.norm(dim=-1).mean(0))


class Injection:
    """A ``resid_*`` handler adding ``scale * vector`` to every row, at positions >= ``start``.

    Args:
        vectors: [d] (every row) or [batch, d] (one per row).
        scale: the strength multiplying the vectors.
        start: None (every position) or [batch] first injected position per row, in the padded
            coordinates of the prompt. A one-token call is taken as a cached decoding step and is
            always injected (every generated token lies after any start inside the prompt).
    """

    def __init__(self, vectors: torch.Tensor, scale: float = 1.0, start: torch.Tensor | None = None):
        self.vectors, self.scale, self.start = vectors, float(scale), start

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        v = self.vectors.to(device=x.device, dtype=x.dtype)
        v = v[None, None, :] if v.dim() == 1 else v[:, None, :]
        if v.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"{v.shape[0]} injection vectors for a batch of {x.shape[0]}")
        add = self.scale * v
        if self.start is not None and x.shape[1] > 1:
            pos = torch.arange(x.shape[1], device=x.device)
            add = add * (pos[None, :] >= self.start.to(x.device)[:, None])[..., None].to(x.dtype)
        return x + add


@contextmanager
def inject(adapter: Any, layer: int, vectors: torch.Tensor, scale: float = 1.0,
           start: torch.Tensor | None = None, name: str = "resid_post") -> Iterator[None]:
    """Add ``scale * vectors`` at ``blocks.{layer}.{name}`` (see :class:`Injection`) for one ``with`` block."""
    with hooked(adapter, {point(name, layer): [Injection(vectors, scale, start)]}):
        yield


def concept_token_ids(tokenizer: Any, word: str) -> dict[int, str]:
    """First token of ``word``, `` word``, ``Word`` and `` Word``: id -> the form it starts."""
    out: dict[int, str] = {}
    for form in (word, " " + word, word[:1].upper() + word[1:], " " + word[:1].upper() + word[1:]):
        ids = _encode(tokenizer, form)
        if ids:
            out.setdefault(ids[0], form)
    return out


def set_logprob(logits: torch.Tensor, token_sets: Sequence[Sequence[int]]) -> torch.Tensor:
    """``log sum_{t in set_i} softmax(logits_i)[t]`` per row: logits [batch, vocab] -> [batch]."""
    logp = torch.log_softmax(logits.float(), -1)
    return torch.stack([torch.logsumexp(logp[i, list(s)], 0) for i, s in enumerate(token_sets)])


def mentions(text: str, word: str) -> bool:
    """The word (any case, also as a prefix: "oceans", "Dogs") appears in ``text``, not inside another word's start."""
    return re.search(rf"(?<![A-Za-z]){re.escape(word)}", text, re.I) is not None


def next_logits(model: Any, adapter: Any, seqs: Sequence[Sequence[int]], tokenizer: Any, layer: int | None = None,
                vectors: torch.Tensor | None = None, scale: float = 1.0, from_start: bool = True,
                start: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token logits [n, vocab] (float32, cpu) of left-padded ``seqs``, with row i injected with
    ``vectors[i]`` (None: no injection). ``from_start``: inject from each row's first real token
    (else at every position, padding included); ``start`` overrides it (padded coordinates)."""
    ids, mask = pad_left(seqs, pad_id(tokenizer))
    if vectors is None or layer is None:
        with torch.no_grad():
            return logits_at(model, ids, 1, mask)[:, -1].float().cpu()
    if start is None and from_start:
        start = (mask == 0).sum(1)
    with torch.no_grad(), inject(adapter, layer, vectors, scale, start):
        return logits_at(model, ids, 1, mask)[:, -1].float().cpu()


def random_like(vector: torch.Tensor, draws: int, seed: int) -> torch.Tensor:
    """``draws`` seeded Gaussian directions, each with ``vector``'s L2 norm: [draws, d]."""
    from icltest.scores.control import random_directions

    return random_directions(vector, draws, seed)


def kl_from(clean: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
    """KL(clean || edited) of next-token distributions, per row (nats)."""
    p = torch.log_softmax(clean.float(), -1)
    q = torch.log_softmax(edited.float(), -1)
    return (p.exp() * (p - q)).sum(-1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), -1)
    return -(logp.exp() * logp).sum(-1)


def detection_prompt(tokenizer: Any, data: dict[str, Any]) -> tuple[list[int], int]:
    """The detection dialogue through the chat template, and the index of the first token of the
    trial marker ("Trial 1"): injection runs from there on (Anthropic inject from the trial on)."""
    messages = [{"role": "user", "content": data["setup"]}, {"role": "assistant", "content": data["ack"]},
                {"role": "user", "content": data["trial"]}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = _encode(tokenizer, text)
    cut = text.index(data["trial_marker"])
    head = _encode(tokenizer, text[:cut])
    start = len(head)
    while start > 0 and ids[:start] != head[:start]:  # a merge across the cut: start earlier
        start -= 1
    return ids, start


def first_token_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    ids: set[int] = set()
    for w in words:
        for form in (w, " " + w):
            enc = _encode(tokenizer, form)
            if enc:
                ids.add(enc[0])
    return sorted(ids)
