"""Public Hypothesis strategies for token sequences, for property claims and users' own tests.

Each strategy draws *one sequence* (a `TokenSequence`): property claims judge sequences one
at a time so that Hypothesis can shrink a failure to the smallest sequence that still fails.
Token ids are drawn with `sampled_from` over the sorted non-special vocabulary, so shrinking
moves towards short segments, few repeats, little noise and low token ids.

Usage in a user's test (the plugin provides the `icl_model` fixture)::

    from hypothesis import given
    from icltest import strategies as icl

    @given(seq=icl.repeated_segments(vocab, length=(4, 32), repeats=(2, 3)))
    def test_my_head(seq): ...
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from hypothesis import strategies as st

from icltest.errors import InputError


@dataclass(frozen=True)
class TokenSequence:
    """One generated input and the structure a check needs to interpret it.

    Attributes:
        ids: token ids, BOS included when `prefix` is 1.
        prefix: number of leading non-generated positions (BOS).
        segment: length of the repeated segment (0 for unstructured sequences).
        repeats: number of copies of the segment.
        copies: start position of each copy in `ids` (noise may sit between copies).
        noise: number of noise tokens inserted before each copy after the first.
        answer: for few-shot prompts, the id of the answer's first token (what should come next).
    """

    ids: tuple[int, ...]
    prefix: int = 0
    segment: int = 0
    repeats: int = 0
    copies: tuple[int, ...] = ()
    noise: tuple[int, ...] = field(default=())
    answer: int | None = None

    def __len__(self) -> int:
        return len(self.ids)


def _range(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    lo, hi = (int(v) for v in value)
    if lo > hi:
        raise InputError(f"{name}: range [{lo}, {hi}] is empty")
    return lo, hi


def _tokens(vocab: Any) -> list[int]:
    allowed = getattr(vocab, "allowed", vocab)
    ids = sorted(int(i) for i in (allowed.tolist() if hasattr(allowed, "tolist") else allowed))
    if not ids:
        raise InputError("the vocabulary to draw from is empty")
    return ids


def _bos(vocab: Any, bos: bool | None) -> list[int]:
    bos_id = getattr(vocab, "bos_id", None)
    use = bos if bos is not None else bos_id is not None
    if use and bos_id is None:
        raise InputError("bos=True but the vocabulary has no BOS id")
    return [int(bos_id)] if use else []


def random_tokens(vocab: Any, length: int | Sequence[int] = (4, 64), bos: bool | None = None) -> st.SearchStrategy[TokenSequence]:
    """Unstructured random token sequences from the non-special vocabulary."""
    lo, hi = _range(length, "length")
    ids = _tokens(vocab)
    head = _bos(vocab, bos)
    return st.lists(st.sampled_from(ids), min_size=lo, max_size=hi).map(
        lambda body: TokenSequence(tuple(head + body), prefix=len(head))
    )


def repeated_segments(
    vocab: Any,
    length: int | Sequence[int] = (4, 64),
    repeats: int | Sequence[int] = (2, 4),
    bos: bool | None = None,
) -> st.SearchStrategy[TokenSequence]:
    """A segment of distinct random tokens repeated `repeats` times (the induction probe)."""
    return repeated_with_noise(vocab, length=length, repeats=repeats, noise_tokens=0, bos=bos)


def repeated_with_noise(
    vocab: Any,
    length: int | Sequence[int] = (4, 64),
    repeats: int | Sequence[int] = (2, 4),
    noise_tokens: int | Sequence[int] = (0, 8),
    bos: bool | None = None,
) -> st.SearchStrategy[TokenSequence]:
    """Repeated segments with random distractor tokens inserted before each later copy.

    Noise tokens are drawn from outside the segment so they never create extra copies.
    """
    l_lo, l_hi = _range(length, "length")
    r_lo, r_hi = _range(repeats, "repeats")
    n_lo, n_hi = _range(noise_tokens, "noise_tokens")
    if l_lo < 1 or r_lo < 1:
        raise InputError("length and repeats must be >= 1")
    ids = _tokens(vocab)
    if l_hi + n_hi > len(ids):
        raise InputError(f"length + noise up to {l_hi + n_hi} exceeds the {len(ids)} drawable tokens")
    head = _bos(vocab, bos)

    @st.composite
    def build(draw: Any) -> TokenSequence:
        segment = draw(st.lists(st.sampled_from(ids), min_size=l_lo, max_size=l_hi, unique=True))
        count = draw(st.integers(r_lo, r_hi))
        taken = set(segment)
        others = st.sampled_from(ids).filter(lambda t: t not in taken)
        body: list[int] = []
        copies: list[int] = []
        noise: list[int] = []
        for copy in range(count):
            if copy:
                k = draw(st.integers(n_lo, n_hi))
                body += draw(st.lists(others, min_size=k, max_size=k)) if k else []
                noise.append(k)
            copies.append(len(head) + len(body))
            body += segment
        return TokenSequence(tuple(head + body), len(head), len(segment), count, tuple(copies), tuple(noise))

    return build()


def few_shot_prompts(
    tokenizer: Any, task: str, shots: int | Sequence[int] = (1, 5), chat_template: str = "no"
) -> st.SearchStrategy[TokenSequence]:
    """Few-shot prompts from a shipped (or user) task: demonstrations, then a query to answer.

    Hypothesis chooses the query and the demonstrations (never the query's own pair), so shrinking
    moves towards fewer shots and the first pairs of the task file. ``answer`` is the id of the
    answer's first token as it follows the prompt.
    """
    from icltest.probes.tasks import encode_prompts, load_task, use_chat_template

    spec = load_task(task)
    s_lo, s_hi = _range(shots, "shots")
    if s_hi > len(spec.pairs) - 1:
        raise InputError(f"shots up to {s_hi} but task {spec.name!r} has only {len(spec.pairs)} pairs")
    chat = use_chat_template(tokenizer, chat_template)
    fmt = spec.prompt
    cache: dict[tuple[int, ...], TokenSequence] = {}

    @st.composite
    def build(draw: Any) -> TokenSequence:
        query = draw(st.integers(0, len(spec.pairs) - 1))
        k = draw(st.integers(s_lo, s_hi))
        others = [i for i in range(len(spec.pairs)) if i != query]
        demos = draw(st.lists(st.sampled_from(others), min_size=k, max_size=k, unique=True))
        key = (query, *demos)
        if key not in cache:
            text = fmt.delimiter.join([fmt.demonstration(spec.pairs[i]) for i in demos] + [fmt.query(spec.pairs[query].input)])
            batch = encode_prompts(tokenizer, [text], [spec.pairs[query].output], chat=chat, answer_prefix=fmt.answer_prefix)
            cache[key] = TokenSequence(tuple(batch.input_ids[0]), answer=int(batch.answer_ids[0]))
        return cache[key]

    return build()


def natural_text_spans(
    tokenizer: Any, length: int | Sequence[int] = (16, 128), corpus: str = "essays", bos: bool | None = None
) -> st.SearchStrategy[TokenSequence]:
    """Contiguous spans of the shipped prose corpus (shrinks towards short spans at document starts)."""
    from icltest.probes.natural_text import load_corpus

    lo, hi = _range(length, "length")
    docs = [[int(i) for i in tokenizer(d, add_special_tokens=False)["input_ids"]] for d in load_corpus(corpus)]
    docs = [d for d in docs if len(d) >= lo]
    if not docs:
        raise InputError(f"no document in corpus {corpus!r} has {lo} tokens")
    bos_id = getattr(tokenizer, "bos_token_id", None)
    use = bos if bos is not None else bos_id is not None
    if use and bos_id is None:
        raise InputError("bos=True but the tokenizer has no BOS token")
    head = [int(bos_id)] if use else []

    @st.composite
    def build(draw: Any) -> TokenSequence:
        doc = docs[draw(st.integers(0, len(docs) - 1))]
        n = draw(st.integers(lo, min(hi, len(doc))))
        start = draw(st.integers(0, len(doc) - n))
        return TokenSequence(tuple(head + doc[start:start + n]), prefix=len(head))

    return build()


STRATEGIES = {
    "random_tokens": random_tokens,
    "repeated_random": repeated_segments,
    "repeated_with_noise": repeated_with_noise,
    "few_shot": few_shot_prompts,
    "natural_text": natural_text_spans,
}
