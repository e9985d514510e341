"""Natural-text probes: spans of ordinary prose, for the in-context-learning score.

Olsson et al. (2022) measure in-context learning as the loss at a late token minus the loss at an
early one on ordinary text: entities and phrasing introduced early make later tokens predictable,
and only context can supply that. Random tokens cannot show it (they have no structure beyond
repeats), so this probe reads the project's own corpus (``icltest/data/text/*.yaml``, original
prose written for icltest) and cuts each document to the same number of tokens.
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


def natural_text(tokenizer: Any, *, length: int, batch: int, seed: int, corpus: str = "essays",
                 bos: Any = "auto", bos_id: int | None = None) -> Probe:
    """``batch`` seeded documents, each cut to its first ``length`` tokens (after BOS when used).

    Raises:
        InputError: fewer than ``batch`` documents reach ``length`` tokens, or BOS is asked for
            and the tokenizer has none.
    """
    docs = load_corpus(corpus)
    encoded = [[int(i) for i in tokenizer(d, add_special_tokens=False)["input_ids"]] for d in docs]
    long_enough = [i for i, ids in enumerate(encoded) if len(ids) >= length]
    if len(long_enough) < batch:
        longest = sorted((len(e) for e in encoded), reverse=True)
        raise InputError(
            f"natural_text probe: only {len(long_enough)} of {len(docs)} documents in corpus {corpus!r} have "
            f"{length} tokens for this tokenizer (longest: {longest[:3]}); lower length or batch"
        )
    rng = random.Random(int(seed))
    chosen = sorted(rng.sample(long_enough, batch))
    tokens = torch.tensor([encoded[i][:length] for i in chosen], dtype=torch.long)
    use_bos = bos in (True, "yes") or (bos == "auto" and bos_id is not None)
    if use_bos and bos_id is None:
        raise InputError("probe asks for bos: yes but the tokenizer defines no BOS token")
    valid = torch.ones_like(tokens, dtype=torch.bool)
    if use_bos:
        tokens = torch.cat([torch.full((batch, 1), int(bos_id), dtype=torch.long), tokens], dim=1)
        valid = torch.cat([torch.zeros((batch, 1), dtype=torch.bool), valid], dim=1)
    params = {"kind": "natural_text", "corpus": corpus, "length": length, "batch": batch, "seed": seed,
              "bos": bos_id if use_bos else None, "documents": chosen}
    label = (f"natural_text(corpus={corpus}, length={length}, batch={batch}, seed={seed}, "
             f"bos={'id ' + str(bos_id) if use_bos else 'none'})")
    return Probe(tokens, valid, label, params, segment=0, prefix=1 if use_bos else 0)
