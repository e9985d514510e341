"""A two-layer GPT-2 whose weights are set by hand, so its circuits are known exactly.

Real checkpoints only let a test say "this head scored 0.83 last time"; a constructed model lets it
say "this head IS an induction head, by construction", so a score, an ablation or a report that
disagrees is a bug in icltest, not a finding. No training is involved: every weight is written from
the residual-stream layout below.

Residual stream (``d_model = 4 * (V + P)``; ``V`` = vocab size, ``P`` = positions)::

    [0, V)            token one-hot                    (written by wte)
    [V, V+P)          position one-hot                 (written by wpe)
    [V+P, 2V+P)       previous token one-hot           (written by L0H0's OV)
    [2V+P, 3V+P)      copied token one-hot             (written by L1H0's OV, read by lm_head)
    [3V+P, d_model)   unused (zero)

Heads (head_dim ``V + P``, four heads per layer; every head not listed has zero Q/K/V/O weights,
so it attends uniformly and writes nothing; MLPs are zero):

* L0H0, previous token: query reads position i, key at j reads position j+1 (shifted), so the
  scores peak at j = i-1. OV copies the attended token into the previous-token block.
* L0H1, duplicate token: query and key both read the token block (match = earlier copies), and a
  position block with a negative query weight penalises the query's own position, which always
  matches itself. OV is zero: the pattern is what is being tested, and writing nothing keeps the
  residual (and so layer 1's LayerNorm) simple.
* L1H0, induction: query reads the current token, key reads the previous-token block, so the head
  attends to the position after an earlier copy of the current token. OV copies the attended token
  into the copied-token block, the only block ``lm_head`` reads, so the model predicts the repeated
  continuation. ``lm_head`` is untied from ``wte`` on purpose: with tied weights the logits would also
  read the current token and predict a repeat of it everywhere (first-copy loss ~14 nats); untied,
  a query with no earlier copy attends uniformly, copies a blur of the prefix, and its loss stays
  near ``log V`` as a real model's does on unpredictable random tokens.

All LayerNorms have weight 1 and bias 0. Normalisation rescales a residual with ``n`` equal hot
entries to about ``sqrt(d_model / n)`` per entry, so query scales are chosen from that to leave score
gaps of ~20 nats after GPT-2's ``1/sqrt(head_dim)`` scaling (attention >= 0.99 on targets).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["KnownCircuit", "build_known_circuit", "build_tokenizer"]

HEADS: dict[str, tuple[int, int]] = {"previous_token": (0, 0), "duplicate_token": (0, 1), "induction": (1, 0)}
N_HEAD = 4
N_LAYER = 2
TARGET_GAP = 20.0  # attention-logit gap between a target key and the rest, in nats
LOGIT_GAP = 15.0  # logit of the copied token over the rest when attention is on one position


@dataclass
class KnownCircuit:
    """A constructed model plus the answers a test should find in it.

    Attributes:
        model: ``GPT2LMHeadModel`` in eval mode with eager attention.
        tokenizer: ``PreTrainedTokenizerFast`` with tokens ``<bos>``, ``t1`` .. ``t{V-1}``.
        heads: mechanism name -> (layer, head) that implements it.
    """

    model: Any
    tokenizer: Any
    heads: dict[str, tuple[int, int]] = field(default_factory=lambda: dict(HEADS))

    def save(self, directory: str | Path) -> Path:
        """Write model and tokenizer so ``AutoModelForCausalLM/AutoTokenizer.from_pretrained`` reload them.

        The plugin loads local directories exactly as it loads hub ids, so a saved known circuit
        exercises the real loading path in tests without a network.
        """
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        return path


def build_tokenizer(vocab_size: int = 64) -> Any:
    """A real fast tokenizer over ``<bos>, t1, ..., t{V-1}``, split on whitespace.

    Built with the ``tokenizers`` library rather than faked, so ``decode``, ``all_special_ids`` and
    ``save_pretrained`` behave like any hub tokenizer. Unknown words map to ``<bos>`` inside the
    WordLevel model only; the wrapper declares no unk token, so ``all_special_ids == [0]``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<bos>": 0, **{f"t{i}": i for i in range(1, vocab_size)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<bos>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>")


def _ln_hot(d_model: int, n_hot: int) -> float:
    """Value LayerNorm gives each of ``n_hot`` equal entries in an otherwise zero vector."""
    mean = n_hot / d_model
    var = n_hot / d_model - mean**2
    return (1 - mean) / math.sqrt(var)


def build_known_circuit(vocab_size: int = 64, n_positions: int = 64, seed: int = 0) -> KnownCircuit:
    """Construct the known-answer model (see the module docstring for the layout).

    Args:
        vocab_size: ``V``; token 0 is BOS, 1..V-1 are ordinary tokens.
        n_positions: ``P``, the longest sequence the model accepts.
        seed: seeds the default initialisation before it is overwritten, so the construction is
            deterministic even if a future transformers version adds a parameter this code does
            not set.

    Returns:
        A :class:`KnownCircuit` in eval mode.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if vocab_size < 2 or n_positions < 2:
        raise ValueError(f"vocab_size and n_positions must be >= 2, got {vocab_size}, {n_positions}")
    V, P = vocab_size, n_positions
    D = V + P  # head_dim: the duplicate head needs a token block and a position block
    E = N_HEAD * D
    tok, pos, prev, copy = 0, V, V + P, 2 * V + P  # block offsets in the residual

    config = GPT2Config(
        vocab_size=V, n_positions=P, n_embd=E, n_layer=N_LAYER, n_head=N_HEAD,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
        bos_token_id=0, eos_token_id=0, tie_word_embeddings=False,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for ln in [model.transformer.ln_f] + [m for b in model.transformer.h for m in (b.ln_1, b.ln_2)]:
            ln.weight.fill_(1.0)

        t_idx, p_idx = torch.arange(V), torch.arange(P)
        model.transformer.wte.weight[t_idx, tok + t_idx] = 1.0
        model.transformer.wpe.weight[p_idx, pos + p_idx] = 1.0

        # Layer 0 input: token + position hot. Score = cq * hot^2 / sqrt(D) for a target.
        hot0 = _ln_hot(E, 2)
        cq0 = TARGET_GAP * math.sqrt(D) / hot0**2
        a0 = model.transformer.h[0].attn
        w, o = a0.c_attn.weight, a0.c_proj.weight  # Conv1D: [in, out]; out = [Q | K | V]
        q, k, v = 0, E, 2 * E
        # L0H0 previous token: q_i = e_i, k_j = e_{j+1}.
        h0 = 0 * D
        w[pos + p_idx, q + h0 + p_idx] = cq0
        w[pos + p_idx[:-1], k + h0 + p_idx[:-1] + 1] = 1.0
        w[tok + t_idx, v + h0 + t_idx] = 1.0
        o[h0 + t_idx, prev + t_idx] = 1.0 / hot0  # previous-token block ~ as large as the token block
        # L0H1 duplicate token: +1 for same token, -2 for same position (self), in units of the gap.
        h1 = 1 * D
        w[tok + t_idx, q + h1 + t_idx] = cq0
        w[pos + p_idx, q + h1 + V + p_idx] = -2 * cq0
        w[tok + t_idx, k + h1 + t_idx] = 1.0
        w[pos + p_idx, k + h1 + V + p_idx] = 1.0

        # Layer 1 input: token + position + previous token hot.
        hot1 = _ln_hot(E, 3)
        cq1 = TARGET_GAP * math.sqrt(D) / hot1**2
        a1 = model.transformer.h[1].attn
        w, o = a1.c_attn.weight, a1.c_proj.weight
        # L1H0 induction: query = current token, key = previous token; OV copies the attended token.
        w[tok + t_idx, q + t_idx] = cq1
        w[prev + t_idx, k + t_idx] = 1.0
        w[tok + t_idx, v + t_idx] = 1.0
        o[t_idx, copy + t_idx] = 1.0 / hot1
        # Final input: four hot blocks when the head attends to one position.
        model.lm_head.weight[t_idx, copy + t_idx] = LOGIT_GAP / _ln_hot(E, 4)
    model.eval()
    return KnownCircuit(model=model, tokenizer=build_tokenizer(V))
