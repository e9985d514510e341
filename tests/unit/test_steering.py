"""Concept injection: vectors, injection and generation against plain torch hooks; verdicts; schema errors."""
from __future__ import annotations

import math
import types

import pytest
import torch

from icltest.claims import steering as claim_mod
from icltest.claims.base import Measurement, Target
from icltest.interventions import steering as st
from icltest.models.adapters import Adapter
from icltest.models.generate import greedy
from icltest.schema import load_spec
from icltest.testing.tiny_configs import build_tiny

WORDS = ["<pad>", "<bos>", "<unk>", "tell", "me", "about", "ocean", "bread", "desk", "chair", "lamp", "cup",
         "here", "is", "a", "short", "story", "my", "favourite", "thing", "Ocean", "Bread", "yes", "no"]


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", unk_token="<unk>", pad_token="<pad>")


@pytest.fixture(scope="module")
def tok():
    return _tokenizer()


def _layer_out(out):
    return out[0] if isinstance(out, tuple) else out


def _manual_last(model, ids: list[int], layer: int) -> torch.Tensor:
    """resid_post of ``layer`` at the last token, one unpadded prompt, via a plain forward hook."""
    store = {}
    handle = model.model.layers[layer].register_forward_hook(lambda m, a, o: store.__setitem__("x", _layer_out(o)))
    with torch.no_grad():
        model(input_ids=torch.tensor([ids]))
    handle.remove()
    return store["x"][0, -1]


@pytest.mark.parametrize("arch", ["llama", "gemma3_text"])
def test_concept_vector_equals_manual_hook_computation(tok, arch):
    model = build_tiny(arch)
    adapter = Adapter.for_model(model)
    concepts, reference = ["ocean", "bread"], ["desk", "chair", "lamp", "cup"]
    cv = st.concept_vectors(model, adapter, tok, concepts, reference, [0, 1], "tell me about {word}")
    for layer in (0, 1):
        base = torch.stack([_manual_last(model, [1] + tok(f"tell me about {w}", add_special_tokens=False)["input_ids"],
                                         layer) for w in reference]).mean(0)
        for c in concepts:
            want = _manual_last(model, [1] + tok(f"tell me about {c}", add_special_tokens=False)["input_ids"], layer) - base
            assert torch.allclose(cv.at(c, layer), want, atol=1e-5), (arch, layer, c)
    assert cv.vectors.shape == (2, 2, model.config.hidden_size)


def test_overlapping_concept_and_reference_words_is_refused(tok):
    model = build_tiny("llama")
    with pytest.raises(ValueError, match="also reference words"):
        st.concept_vectors(model, Adapter.for_model(model), tok, ["ocean"], ["ocean", "desk"], [0])


def _manual_add(model, layer, vec, scale, start=None):
    """A plain forward hook on the decoder layer adding scale * vec at positions >= start (per row)."""
    def hook(_m, _a, out):
        x = _layer_out(out)
        v = vec if vec.dim() == 2 else vec[None].expand(x.shape[0], -1)
        add = torch.zeros_like(x)
        for r in range(x.shape[0]):
            first = 0 if start is None or x.shape[1] == 1 else int(start[r])
            add[r, first:] = scale * v[r]
        y = x + add
        return (y,) + tuple(out[1:]) if isinstance(out, tuple) else y
    return model.model.layers[layer].register_forward_hook(hook)


def _tiny(arch, seed, shape):
    model = build_tiny(arch)
    torch.manual_seed(seed)
    return model, Adapter.for_model(model), torch.randint(3, 50, shape)


@pytest.mark.parametrize("arch", ["llama", "gemma3_text"])
def test_injection_adds_exactly_strength_times_v_from_start(arch):
    model, adapter, ids = _tiny(arch, seed=1, shape=(3, 7))
    vecs = torch.randn(3, model.config.hidden_size)
    start = torch.tensor([0, 2, 5])
    from icltest.interventions.core import capture
    from icltest.models.hookpoints import point

    clean = capture(adapter, [point("resid_post", 1)], lambda: model(input_ids=ids))[point("resid_post", 1)]
    with st.inject(adapter, 1, vecs, 2.5, start):
        hooked = capture(adapter, [point("resid_post", 1)], lambda: model(input_ids=ids))[point("resid_post", 1)]
        got = model(input_ids=ids).logits
    diff = hooked - clean
    for r in range(3):
        assert torch.allclose(diff[r, :start[r]], torch.zeros_like(diff[r, :start[r]]), atol=1e-6)
        assert torch.allclose(diff[r, start[r]:], (2.5 * vecs[r]).expand_as(diff[r, start[r]:]), atol=1e-5)
    handle = _manual_add(model, 1, vecs, 2.5, start)
    with torch.no_grad():
        want = model(input_ids=ids).logits
    handle.remove()
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, model(input_ids=ids).logits, atol=1e-3)  # the edit did something, and is undone


def _manual_greedy(model, ids, n, layer=None, vec=None, scale=1.0, start=None):
    """Reference: the whole sequence every step, a plain hook adding at positions >= start."""
    seq = ids.clone()
    for _ in range(n):
        handle = _manual_add(model, layer, vec, scale, start) if vec is not None else None
        with torch.no_grad():
            nxt = model(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
        if handle is not None:
            handle.remove()
        seq = torch.cat([seq, nxt], 1)
    return seq[:, ids.shape[1]:]


@pytest.mark.parametrize("arch", ["llama", "gemma3_text"])
def test_generation_under_injection_equals_manual_loop_with_and_without_cache(arch):
    model, adapter, ids = _tiny(arch, seed=2, shape=(2, 6))
    vec = 3.0 * torch.randn(model.config.hidden_size)
    plain = _manual_greedy(model, ids, 8)
    assert torch.equal(greedy(model, ids, None, 8, use_cache=True), plain)
    for start in (None, torch.tensor([1, 4])):
        want = _manual_greedy(model, ids, 8, 0, vec, 1.5, start)
        with st.inject(adapter, 0, vec, 1.5, start):
            cached = greedy(model, ids, None, 8, use_cache=True)
            full = greedy(model, ids, None, 8, use_cache=False)
        assert torch.equal(cached, want) and torch.equal(full, want), start
    assert not torch.equal(want, plain)  # the injection changes the continuation (the test can fail)


def test_generation_of_left_padded_rows_matches_unpadded(tok):
    model = build_tiny("llama")
    short, long = [1, 12, 13, 14], [1, 17, 18, 19, 13, 14]
    from icltest.probes.prompts import pad_left

    ids, mask = pad_left([short, long], 0)
    batch = greedy(model, ids, mask, 5)
    assert torch.equal(batch[0], greedy(model, torch.tensor([short]), None, 5)[0])
    assert torch.equal(batch[1], greedy(model, torch.tensor([long]), None, 5)[0])


def test_set_logprob_and_token_ids(tok):
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0], [3.0, 0.0, 0.0, 0.0]])
    got = st.set_logprob(logits, [[1, 3], [0]])
    p = torch.softmax(logits, -1)
    assert torch.allclose(got, torch.log(torch.stack([p[0, 1] + p[0, 3], p[1, 0]])))
    assert st.concept_token_ids(tok, "ocean") == {6: "ocean", 20: "Ocean"}  # " ocean" starts with the same id
    assert st.mentions("The Oceans are deep", "ocean") and not st.mentions("bioceanic", "ocean")


def test_random_directions_have_the_vectors_norm_and_replay():
    v = torch.tensor([3.0, 4.0, 0.0])
    r = st.random_like(v, 5, seed=3)
    assert torch.allclose(r.norm(dim=-1), torch.full((5,), 5.0))
    assert torch.equal(r, st.random_like(v, 5, seed=3)) and not torch.equal(r, st.random_like(v, 5, seed=4))


# ----------------------------------------------------------------------------- verdicts


def _spec(tmp_path, body: str):
    path = tmp_path / "s.yaml"
    path.write_text("schema_version: 1\nmodel: x\nclaims:\n  - id: s\n    kind: steering\n" + body)
    return path


def _claim(tmp_path, body):
    return load_spec(_spec(tmp_path, body)).spec.claims[0]


def _measurement(gain, draws):
    from icltest.scores.control import control_summary

    c = control_summary(gain, draws)
    return Measurement(gain, "nats", {"concept": "ocean", "layer": 3, "strength": 1.0, "scale": "raw",
                                      "kl_from_clean": 0.1, "control": c})


BASE = "    concepts: [ocean]\n    layer: 3\n    strength: 1.0\n    expect: {gain: '>= 1.0'}\n"


def test_verdict_needs_the_gain_and_the_control(tmp_path):
    claim = _claim(tmp_path, BASE + "    control: {draws: 19, seed: 0, expect: {p: '<= 0.05'}}\n")
    t = Target("ocean")
    noise = [0.1 * math.sin(i) for i in range(19)]
    assert claim_mod.judge(claim, t, _measurement(2.0, noise)).passed
    low = claim_mod.judge(claim, t, _measurement(0.5, noise))  # gain too small
    assert not low.passed and "FAILED" in low.summary
    beaten = claim_mod.judge(claim, t, _measurement(2.0, noise[:17] + [2.5, 3.0]))  # random directions do as well
    assert not beaten.passed and beaten.measurement.details["control"]["p"] == pytest.approx(3 / 20)
    assert not claim_mod.judge(claim, t, _measurement(float("nan"), noise)).passed


def test_measure_on_a_tiny_model_reports_controls_and_sweeps(tok, tmp_path):
    """End to end on a tiny llama with a word-level tokenizer: numbers must match a direct computation."""
    model = build_tiny("llama")
    loaded = types.SimpleNamespace(model=model, adapter=Adapter.for_model(model), tokenizer=tok, source="tiny")
    session = types.SimpleNamespace(forward_passes=0, memo=lambda key, f: f())
    claim = _claim(tmp_path, "    concepts: [ocean, bread]\n    reference_words: [desk, chair, lamp, cup]\n"
                   "    template: 'tell me about {word}'\n    prompts: ['here is a short story', 'my favourite thing is']\n"
                   "    layer: -1\n    strength: 2.0\n    expect: {gain: '> 0'}\n"
                   "    control: {draws: 4, seed: 1}\n    sweep: {strengths: [1.0, 2.0], layers: [0, 1]}\n")
    ctx = types.SimpleNamespace(session=session, loaded=loaded, probe_spec=None, location=lambda p: f"s.yaml:{p}")
    m = claim_mod.measure(claim, Target("ocean"), ctx)
    cv = st.concept_vectors(model, loaded.adapter, tok, ["ocean", "bread"], ["desk", "chair", "lamp", "cup"], [1],
                            "tell me about {word}")
    seqs = [[1, 12, 13, 14, 15, 16], [1, 17, 18, 19, 13]]
    want = []
    for s in seqs:
        with torch.no_grad():
            clean = torch.log_softmax(model(input_ids=torch.tensor([s])).logits[0, -1], -1)
            handle = _manual_add(model, 1, cv.at("ocean", 1), 2.0)
            edited = torch.log_softmax(model(input_ids=torch.tensor([s])).logits[0, -1], -1)
            handle.remove()
        want.append(torch.logsumexp(edited[[6, 20]], 0) - torch.logsumexp(clean[[6, 20]], 0))
    assert m.value == pytest.approx(float(torch.stack(want).mean()), abs=1e-4)
    assert m.details["concept_tokens"] == {"6": "ocean", "20": "Ocean"}
    # token echo: the embedding of the prompt's last token ("ocean", id 6) scaled to ||v||, added the same way
    v = cv.at("ocean", 1)
    row = model.get_input_embeddings().weight[6].detach()
    echo = []
    for s in seqs:
        with torch.no_grad():
            clean = torch.log_softmax(model(input_ids=torch.tensor([s])).logits[0, -1], -1)
            handle = _manual_add(model, 1, row / row.norm() * v.norm(), 2.0)
            edited = torch.log_softmax(model(input_ids=torch.tensor([s])).logits[0, -1], -1)
            handle.remove()
        echo.append(torch.logsumexp(edited[[6, 20]], 0) - torch.logsumexp(clean[[6, 20]], 0))
    assert m.details["token_echo"]["gain"] == pytest.approx(float(torch.stack(echo).mean()), abs=1e-3)
    assert m.details["token_echo"]["token"] == "ocean"
    assert m.details["control"]["n"] == 4
    strength = m.details["sweeps"][0]
    assert strength["x"] == "strength" and strength["points"][1] == [2.0, pytest.approx(m.value, abs=1e-4)]
    layers = m.details["sweeps"][2]
    assert layers["x"] == "layer" and [p[0] for p in layers["points"]] == [0, 1]


# ----------------------------------------------------------------------------- schema


@pytest.mark.parametrize("body, where, message", [
    ("    concepts: [ocean]\n    layer: 3\n    strength: 1.0\n    template: 'about {thing}'\n    expect: {gain: '>= 1'}\n",
     ":9:", "only placeholder allowed is a bare {word}, got {thing}"),
    ("    concepts: [ocean]\n    layer: 3\n    strength: 1.0\n    template: 'about {word:>99999999}'\n"
     "    expect: {gain: '>= 1'}\n", ":9:", "got {word:>99999999}"),
    ("    concepts: [ocean]\n    layer: 3\n    strength: 1.0\n    template: '{word} {word.__class__}'\n"
     "    expect: {gain: '>= 1'}\n", ":9:", "got {word.__class__}"),
    ("    concepts: [ocean]\n    layer: 3\n    strength: 1.0\n    template: 'about {word'\n    expect: {gain: '>= 1'}\n",
     ":9:", "no other braces"),
    ("    concepts: [ocean]\n    layer: 3\n    strength: 1.0\n    expect: {gain: '>= 1'}\n"
     "    detection: {expect: {yes_gain: '>= 0.1'}}\n", ":10:", "unknown key"),
    ("    concepts: [ocean]\n    layer: 3\n    strength: 1.0\n    template: 'Tell me about it'\n    expect: {gain: '>= 1'}\n",
     ":9:", "has no {word}"),
    ("    concepts: []\n    layer: 3\n    strength: 1.0\n    expect: {gain: '>= 1'}\n", ":6:", "at least 1"),
    ("    concepts: [ocean, desk]\n    reference_words: [desk, chair]\n    layer: 3\n    strength: 1.0\n"
     "    expect: {gain: '>= 1'}\n", ":7:", "also reference words"),
    ("    concepts: [ocean]\n    reference_words: [desk, chair]\n    reference_n: 3\n    layer: 3\n    strength: 1.0\n"
     "    expect: {gain: '>= 1'}\n", "", "reference_n 3 > 2 reference words"),

    ("    concepts: [ocean]\n    layer: 3\n    strength: 1.0\n    sweep: {strengths: []}\n    expect: {gain: '>= 1'}\n",
     ":9:", "at least 1"),
    ("    concepts: [ocean]\n    layer: 3\n    strength: 1.0\n    expect: {gain: '>= 1'}\n"
     "    control: {draws: 9, expect: {p: '<= 0.05'}}\n", ":10:", "can never pass"),
    ("    concepts: [ocean]\n    layer: 3\n    strength: 1.0\n    expect: {gain: '>= 1'}\n"
     "    control: {draws: 19, expect: {p: '<= 0'}}\n", ":10:", "can never pass"),
    ("    concepts: [ocean]\n    layer: 3\n    strength: 0\n    expect: {gain: '>= 1'}\n", ":8:", "greater than 0"),
    ("    concepts: [ocean]\n    layer: 1.5\n    strength: 1\n    expect: {gain: '>= 1'}\n", ":7:", "1"),
    ("    concepts: [ocean]\n    layer: 3\n    strength: 1\n    expect: {mention: '>= 0.5'}\n", "", "needs generate"),
    ("    concepts: [' ocean']\n    layer: 3\n    strength: 1\n    expect: {gain: '>= 1'}\n", ":6:", "pattern"),
])
def test_bad_specs_give_one_located_error(tmp_path, body, where, message):
    from icltest.errors import SpecFileError

    with pytest.raises(SpecFileError) as info:
        load_spec(_spec(tmp_path, body))
    text = str(info.value)
    assert message in text and "s.yaml" + where in text, text


@pytest.mark.parametrize("body, expected", [
    ("    baseline: [desk, chair]\n",
     "s.yaml:7:15: claims[0].baseline: `baseline:` is the release-baseline tolerance ({max_drop, direction}); the "
     "words whose mean is subtracted from the concept vector are now `reference_words: [...]` (and `baseline_n` is "
     "`reference_n`)"),
    ("    baseline_n: 40\n",
     "s.yaml:7:5: claims[0].baseline_n: `baseline_n` is now `reference_n` (a seeded sample of the reference words); "
     "`baseline:` is the release-baseline tolerance ({max_drop, direction})"),
])
def test_the_old_reference_word_keys_say_what_they_are_now(tmp_path, body, expected):
    """`baseline:` is every claim's release-baseline tolerance; the words once under that key moved."""
    from icltest.errors import SpecFileError

    with pytest.raises(SpecFileError) as info:
        load_spec(_spec(tmp_path, "    concepts: [ocean]\n" + body + "    layer: 3\n    strength: 1.0\n"
                                  "    expect: {gain: '>= 1'}\n"))
    lines = [l.strip() for l in str(info.value).splitlines() if "s.yaml:" in l]
    assert len(lines) == 1 and lines[0].endswith("/" + expected), str(info.value)


def test_the_release_baseline_key_loads_on_a_steering_claim(tmp_path):
    claim = _claim(tmp_path, "    concepts: [ocean]\n    reference_words: [desk, chair, lamp]\n    reference_n: 2\n"
                             "    layer: 3\n    strength: 1.0\n    expect: {gain: '>= 1'}\n    baseline: {max_drop: 0.5}\n")
    assert claim.baseline.max_drop == 0.5 and claim.reference_words == ["desk", "chair", "lamp"]
    assert claim.reference_n == 2


def test_model_dependent_errors_are_located(tok, tmp_path):
    from icltest.errors import ClaimSpecError

    model = build_tiny("llama")
    loaded = types.SimpleNamespace(model=model, adapter=Adapter.for_model(model), tokenizer=tok, source="tiny")
    ctx = types.SimpleNamespace(session=types.SimpleNamespace(forward_passes=0, memo=lambda k, f: f()), loaded=loaded,
                                probe_spec=None, location=lambda p: f"s.yaml:{'.'.join(map(str, p))}")
    claim = _claim(tmp_path, "    concepts: [ocean]\n    layer: 5\n    strength: 1\n    expect: {gain: '>= 1'}\n")
    with pytest.raises(ClaimSpecError, match="layer 5 does not exist: the model has layers 0..1"):
        claim_mod.measure(claim, Target("ocean"), ctx)
    claim = _claim(tmp_path, "    concepts: [desk]\n    layer: 1\n    strength: 1\n    expect: {gain: '>= 1'}\n")
    with pytest.raises(ClaimSpecError, match=r"s.yaml:concepts: concepts: concept words \['desk'\] are in the reference words"):
        claim_mod.measure(claim, Target("desk"), ctx)
    assert claim_mod.resolve_layer(0.5, 30) == 14 and claim_mod.resolve_layer(-1, 30) == 29
    assert claim_mod.resolve_layer(30, 30) is None and claim_mod.resolve_layer(-31, 30) is None
