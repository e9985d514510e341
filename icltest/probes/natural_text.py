"""Natural-text probes: spans of ordinary prose, for the in-context-learning score.

Olsson et al. (2022) measure in-context learning as the loss at a late token minus the loss at an
early one on ordinary text: entities and phrasing introduced early make later tokens predictable,
and only context can supply that. Random tokens cannot show it (they have no structure beyond
repeats), so this probe reads the project's own corpus (``icltest/data/text/*.yaml``, original
prose written for icltest) and cuts each document to the same number of tokens.

Seeds share documents: the corpus is small (24 documents), so two batches of ``b`` documents share
at least ``2b - 24`` of them (8 for the usual 16), whatever the seeds. Another seed is therefore no
independent reference for mean / resample ablation; :func:`natural_text_reference` builds one from
the documents the judged batch does not hold.
"""
from __future__ import annotations

import random
from importlib import resources
from typing import Any

import torch
import yaml

from icltest.errors import InputError
from icltest.probes.random_tokens import Probe


def load_corpus(name: str = "essays") -> list[str]:
    """The documents of a shipped corpus, in file order.

    Raises:
        InputError: unknown corpus (a spec names it).
        ValueError: a malformed shipped corpus file (a bug in icltest).
    """
    folder = resources.files("icltest").joinpath("data", "text")
    names = sorted(e.name[:-5] for e in folder.iterdir() if e.name.endswith(".yaml"))
    if name not in names:
        raise InputError(f"unknown text corpus {name!r}; shipped corpora: {', '.join(names)}")
    data = yaml.safe_load(folder.joinpath(f"{name}.yaml").read_text(encoding="utf-8"))
    docs = data.get("documents") if isinstance(data, dict) else None
    if not isinstance(docs, list) or not docs:
        raise ValueError(f"corpus {name!r}: expected a 'documents' list")
    out = []
    for i, doc in enumerate(docs):
        text = doc.get("text") if isinstance(doc, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"corpus {name!r}: documents[{i}] has no text")
        out.append(text.strip())
    return out


def _encoded(tokenizer: Any, corpus: str) -> list[list[int]]:
    return [[int(i) for i in tokenizer(d, add_special_tokens=False)["input_ids"]] for d in load_corpus(corpus)]


def _with_bos(tokens: torch.Tensor, use_bos: bool, bos_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    valid = torch.ones_like(tokens, dtype=torch.bool)
    if use_bos:
        rows = tokens.shape[0]
        first = torch.full((rows, 1), int(bos_id), dtype=torch.long)  # type: ignore[arg-type]
        tokens = torch.cat([first, tokens], dim=1)
        valid = torch.cat([torch.zeros((rows, 1), dtype=torch.bool), valid], dim=1)
    return tokens, valid


def natural_text(tokenizer: Any, *, length: int, batch: int, seed: int, corpus: str = "essays",
                 bos: Any = "auto", bos_id: int | None = None) -> Probe:
    """``batch`` seeded documents, each cut to its first ``length`` tokens (after BOS when used).

    Raises:
        InputError: fewer than ``batch`` documents reach ``length`` tokens, or BOS is asked for
            and the tokenizer has none.
    """
    encoded = _encoded(tokenizer, corpus)
    long_enough = [i for i, ids in enumerate(encoded) if len(ids) >= length]
    if len(long_enough) < batch:
        longest = sorted((len(e) for e in encoded), reverse=True)
        raise InputError(
            f"natural_text probe: only {len(long_enough)} of {len(encoded)} documents in corpus {corpus!r} have "
            f"{length} tokens for this tokenizer (longest: {longest[:3]}); lower length or batch"
        )
    rng = random.Random(int(seed))
    chosen = sorted(rng.sample(long_enough, batch))
    tokens = torch.tensor([encoded[i][:length] for i in chosen], dtype=torch.long)
    use_bos = bos in (True, "yes") or (bos == "auto" and bos_id is not None)
    if use_bos and bos_id is None:
        raise InputError("probe asks for bos: yes but the tokenizer defines no BOS token")
    tokens, valid = _with_bos(tokens, use_bos, bos_id)
    params = {"kind": "natural_text", "corpus": corpus, "length": length, "batch": batch, "seed": seed,
              "bos": bos_id if use_bos else None, "documents": chosen}
    label = (f"natural_text(corpus={corpus}, length={length}, batch={batch}, seed={seed}, "
             f"bos={'id ' + str(bos_id) if use_bos else 'none'})")
    return Probe(tokens, valid, label, params, segment=0, prefix=1 if use_bos else 0)


def natural_text_reference(tokenizer: Any, probe: Probe, *, seed: int) -> Probe:
    """The reference for mean / resample ablation of a natural-text probe: other documents.

    Every corpus document long enough that the judged ``probe`` does not hold, in a seeded order,
    repeated cyclically to the probe's batch (resample pairs row i of the judged batch with a
    reference row, so the shapes must match; the mean then weighs documents almost equally), cut
    to the same length and with the same BOS.

    Raises:
        InputError: the judged batch holds every long-enough document, so none is left.
    """
    params = probe.params
    length, batch, corpus = int(params["length"]), int(params["batch"]), params["corpus"]
    encoded = _encoded(tokenizer, corpus)
    taken = set(params["documents"])
    free = [i for i, ids in enumerate(encoded) if len(ids) >= length and i not in taken]
    if not free:
        raise InputError(
            f"natural_text reference: the probe uses every document of corpus {corpus!r} that has {length} tokens, "
            "so none is left for a mean / resample reference; lower batch or length")
    random.Random(int(seed)).shuffle(free)
    chosen = [free[r % len(free)] for r in range(batch)]
    tokens = torch.tensor([encoded[i][:length] for i in chosen], dtype=torch.long)
    bos_id = params.get("bos")
    tokens, valid = _with_bos(tokens, bos_id is not None, bos_id)
    out = dict(params, seed=seed, documents=chosen, reference_for=sorted(taken))
    label = (f"natural_text reference(corpus={corpus}, length={length}, {len(free)} documents not in the judged "
             f"batch, repeated to {batch} rows, seed={seed})")
    return Probe(tokens, valid, label, out, segment=0, prefix=probe.prefix)
