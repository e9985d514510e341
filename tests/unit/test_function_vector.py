"""Function vectors on tiny models, checked against plain torch hooks (never icltest's hook engine).

- the FV is the sum of the chosen heads' mean outputs at the last token (pre-norm: z_h W_O,h;
  Gemma 3: times the post-norm's gain over the rms of the o_proj output);
- injection adds exactly the FV at each row's last prompt token and nowhere else;
- exact CIE of one head equals a hand-made patch; attribution CIE equals a finite difference;
- the random-vector control and the verdict; spec mistakes name the field.
"""
from __future__ import annotations

import types

import pytest
import torch

from icltest.claims import function_vector as fvc
from icltest.claims.base import ClaimSpecError, Measurement, Target
from icltest.interventions import function_vectors as fv
from icltest.models.adapters import Adapter
from icltest.testing.tiny_configs import build_tiny

ARCHS = ["llama", "gemma3_text", "gpt2"]


def loaded(name):
    model = build_tiny(name)
    return types.SimpleNamespace(model=model, adapter=Adapter.for_model(model))


def prompt_set(seed=3, n=5, seq=7):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (n, seq), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding
    mask[2, :1] = 0
    return fv.PromptSet(ids, mask, torch.randint(0, 50, (n,), generator=gen))


def kwargs(mask):
    return {"attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}


def o_proj_and_post(model, layer):
    """(o_proj, post-norm or None, n_heads, head_dim) read off the HF modules directly."""
    if hasattr(model, "transformer"):  # gpt2: c_proj is a Conv1D (weight [in, out])
        attn = model.transformer.h[layer].attn
        return attn.c_proj, None, attn.num_heads, attn.head_dim
    block = model.model.layers[layer]
    cfg = model.config
    D = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return block.self_attn.o_proj, getattr(block, "post_attention_layernorm", None) if "gemma3" in cfg.model_type else None, cfg.num_attention_heads, D


def w_o(o_proj, H, D):
    """[H, d, D]: head h's slice of the output projection as a matrix d x D."""
    w = o_proj.weight.detach()
    w = w.T if w.shape[0] == H * D and not isinstance(o_proj, torch.nn.Linear) else w  # Conv1D stores [in, out]
    return w.reshape(w.shape[0], H, D).permute(1, 0, 2)


def manual_head_outputs(model, prompts, layer):
    """[n, H, d] each head's share of attn_out at the last token, by plain hooks and the formula."""
    o_proj, post, H, D = o_proj_and_post(model, layer)
    got = {}
    handle = o_proj.register_forward_pre_hook(lambda m, args: got.__setitem__("x", args[0][:, -1].detach()))
    with torch.no_grad():
        model(input_ids=prompts.ids, **kwargs(prompts.mask))
    handle.remove()
    z = got["x"].reshape(-1, H, D)
    shares = torch.einsum("nhD,hdD->nhd", z, w_o(o_proj, H, D))
    if post is not None:  # Gemma 3 RMSNorm: x / sqrt(mean x^2 + eps) * (1 + w), its scale frozen
        out = shares.sum(1)
        shares = shares * ((1 + post.weight.detach()) / torch.sqrt(out.pow(2).mean(-1, keepdim=True) + post.eps))[:, None]
    return shares


@pytest.mark.parametrize("arch", ARCHS)
def test_fv_is_the_sum_of_the_chosen_heads_mean_outputs(arch):
    lm = loaded(arch)
    prompts = prompt_set()
    means = fv.mean_heads(lm, prompts)
    heads = [(0, 1), (1, 0), (1, 3)]
    expected = sum(manual_head_outputs(lm.model, prompts, l)[:, h].mean(0) for l, h in heads)
    got = fv.function_vector(means, heads)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)
    assert not got.requires_grad


def test_gemma3_head_shares_sum_to_attn_out():
    lm = loaded("gemma3_text")
    prompts = prompt_set()
    post = lm.model.model.layers[1].post_attention_layernorm
    got = {}
    handle = post.register_forward_hook(lambda m, a, out: got.__setitem__("y", out[:, -1].detach()))
    with torch.no_grad():
        lm.model(input_ids=prompts.ids, **kwargs(prompts.mask))
    handle.remove()
    z = fv.last_token_z(lm, prompts)[:, 1]
    from icltest.attribution.dla import head_shares

    shares, _ = head_shares(lm.adapter, 1, z)
    assert torch.allclose(shares.sum(1), got["y"], atol=1e-5)


def teacher_forced_inputs(prompts):
    """Run-style inputs: row 1 is scored on two answer tokens (its input ends with the first)."""
    answers = [[int(a)] for a in prompts.answers]
    answers[1] = [int(prompts.ids[1, -1]), 9]
    full = [False] * len(prompts)
    full[1] = True
    return types.SimpleNamespace(tokens=prompts.ids, mask=prompts.mask, kept=2, answer_tokens=answers, full=full)


def layer_module(model, layer):
    return model.transformer.h[layer] if hasattr(model, "transformer") else model.model.layers[layer]


@pytest.mark.parametrize("arch", ["llama", "gemma3_text"])
def test_injection_adds_the_vector_at_the_last_prompt_token_only(arch):
    lm = loaded(arch)
    prompts = prompt_set()
    inputs = teacher_forced_inputs(prompts)
    where = fv.prompt_ends(inputs)
    assert where.sum() == len(prompts) and where[1, -2] and not where[1, -1] and where[0, -1]
    vector = torch.randn(lm.adapter.d_model if hasattr(lm.adapter, "d_model") else lm.model.config.hidden_size,
                         generator=torch.Generator().manual_seed(1))
    layer = 0
    from icltest.interventions import apply

    def resid_post(edits=(), plain=False):
        got = {}
        module = layer_module(lm.model, layer)

        def read(_m, args, kw):  # the next layer's input: after every hook on this layer's output
            got["h"] = (args[0] if args else kw["hidden_states"]).detach().clone()

        def add(_m, _a, out):  # the reference: a plain forward hook adding the vector at the chosen cells
            h = out[0] if isinstance(out, tuple) else out
            h = h + where[..., None].float() * vector
            return (h,) + tuple(out[1:]) if isinstance(out, tuple) else h

        handles = [module.register_forward_hook(add)] if plain else []
        handles.append(layer_module(lm.model, layer + 1).register_forward_pre_hook(read, with_kwargs=True))
        with torch.no_grad(), apply(lm.adapter, list(edits)):
            logits = lm.model(input_ids=prompts.ids, **kwargs(prompts.mask)).logits
        for h in handles:
            h.remove()
        return got["h"], logits

    clean, clean_logits = resid_post()
    edited, edited_logits = resid_post([fv.injection(layer, vector, where)])
    manual, manual_logits = resid_post(plain=True)
    diff = edited - clean
    assert torch.allclose(diff[where], vector.expand(len(prompts), -1), atol=1e-5)
    assert diff[~where].abs().max() == 0
    assert torch.allclose(edited_logits, manual_logits, atol=1e-5)
    assert not torch.allclose(edited_logits[:, -1], clean_logits[:, -1], atol=1e-3)

    # accuracy_with scores the same logits: answers set to the manual FV run's greedy tokens
    tokens = prompts.ids.clone()
    tokens[1, -1] = int(manual_logits[1, -2].argmax())  # the teacher-forced row's input ends with answer[0]
    prompts.ids = tokens
    _, manual_logits = resid_post(plain=True)
    _, clean_logits = resid_post()
    answers = [[int(manual_logits[r, -1].argmax())] for r in range(len(prompts))]
    answers[1] = [int(tokens[1, -1]), int(manual_logits[1, -1].argmax())]
    scored = types.SimpleNamespace(tokens=tokens, mask=prompts.mask, kept=2, answer_tokens=answers, full=inputs.full)
    acc_fv, acc_clean = fv.accuracy_with(lm, scored, [(layer, vector), None])
    assert acc_fv == 1.0
    right = [all(int(clean_logits[r, -len(a) + i].argmax()) == t for i, t in enumerate(a)) for r, a in enumerate(answers)]
    assert acc_clean == pytest.approx(sum(right) / len(right))


def manual_probs(model, prompts, layer=None, head=None, value=None, step=1.0):
    """Answer probability per row, with head (layer, head)'s z at the last token moved ``step`` of
    the way to ``value`` by plain hooks (Gemma 3: this layer's post-norm scale frozen at its clean value)."""
    kw = kwargs(prompts.mask)
    hooks = []
    if layer is not None:
        o_proj, post, H, D = o_proj_and_post(model, layer)
        if post is not None:
            clean = {}
            h = post.register_forward_hook(lambda m, a, out: clean.__setitem__("r", torch.sqrt(a[0].pow(2).mean(-1, keepdim=True) + m.eps)))
            with torch.no_grad():
                model(input_ids=prompts.ids, **kw)
            h.remove()
            hooks.append(post.register_forward_hook(lambda m, a, out: a[0] / clean["r"] * (1 + m.weight)))

        def move(_m, args):
            z = args[0].reshape(*args[0].shape[:-1], H, D).clone()
            z[:, -1, head] += step * (value - z[:, -1, head])
            return (z.reshape(args[0].shape),)

        hooks.append(o_proj.register_forward_pre_hook(move))
    with torch.no_grad():
        logits = model(input_ids=prompts.ids, **kw).logits[:, -1]
    for h in hooks:
        h.remove()
    return torch.softmax(logits, -1)[torch.arange(len(prompts)), prompts.answers]


@pytest.mark.parametrize("arch", ARCHS)
def test_exact_cie_equals_a_hand_made_patch(arch):
    lm = loaded(arch)
    clean, corrupt = prompt_set(seed=3), prompt_set(seed=4)
    means = fv.mean_heads(lm, clean)
    cie = fv.cie_exact(lm, corrupt, means, layers=[1])
    assert torch.isnan(cie[0]).all() and torch.isfinite(cie[1]).all()
    base = manual_probs(lm.model, corrupt)
    for head in (0, 2):
        expected = (manual_probs(lm.model, corrupt, 1, head, means.z[1, head]) - base).mean()
        assert float(cie[1, head]) == pytest.approx(float(expected), abs=1e-6)
    assert cie[1].abs().max() > 1e-5  # the patches do something on random weights


@pytest.mark.parametrize("arch", ARCHS)
def test_attribution_cie_matches_finite_differences(arch):
    lm = loaded(arch)
    clean, corrupt = prompt_set(seed=3), prompt_set(seed=4)
    means = fv.mean_heads(lm, clean)
    attr = fv.cie_attribution(lm, corrupt, means)
    eps = 1e-3
    for layer, head in [(0, 1), (1, 2), (1, 0)]:
        value = means.z[layer, head]
        up = manual_probs(lm.model, corrupt, layer, head, value, eps).mean()
        down = manual_probs(lm.model, corrupt, layer, head, value, -eps).mean()
        fd = float(up - down) / (2 * eps)
        assert float(attr[layer, head]) == pytest.approx(fd, rel=2e-2, abs=1e-6)


def test_rank_heads_skips_nan_and_orders_by_cie():
    cie = torch.tensor([[0.1, float("nan")], [0.3, -0.2]])
    assert fv.rank_heads(cie, 3) == [(1, 0), (0, 0), (1, 1)]
    assert fv.rank_heads(cie, 1) == [(1, 0)]


def test_random_vectors_have_the_fv_norm_and_replay_by_seed():
    like = torch.tensor([3.0, 4.0, 0.0, 0.0])
    a, b, c = fv.random_vectors(like, 5, 0), fv.random_vectors(like, 5, 0), fv.random_vectors(like, 5, 1)
    for v in a:
        assert float(v.norm()) == pytest.approx(5.0, rel=1e-6)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[0], a[1])


def test_spearman_ignores_nan_and_reads_ranks():
    a = torch.tensor([[1.0, 2.0], [3.0, float("nan")]])
    assert fv.spearman(a, torch.tensor([[10.0, 20.0], [30.0, 0.0]])) == pytest.approx(1.0)
    assert fv.spearman(a, torch.tensor([[3.0, 2.0], [1.0, 0.0]])) == pytest.approx(-1.0)


# ----------------------------------------------------------------------------- the claim


def claim(**fields):
    base = {"id": "fv", "kind": "function_vector", "task": "antonym", "heads": {"top": 3}, "expect": {"gain": ">= 0.1"}}
    return fvc.Schema.model_validate({**base, **fields})


def measurement(acc=0.4, zero=0.1, kshot=0.8, p=0.05, z=4.0):
    d = {"gain": acc - zero, "recall": acc / kshot, "zero_shot": zero, "k_shot": kshot, "n_heads": 3, "layer": 4,
         "fv_norm": 10.0, "control": {"p": p, "z": z, "mean": 0.01, "sd": 0.02}}
    return Measurement(acc, "accuracy", d)


def test_verdict_reads_accuracy_gain_recall_and_the_control():
    c = claim(expect={"accuracy": ">= 0.3", "gain": ">= 0.2", "recall": ">= 0.4"},
              control={"draws": 19, "expect": {"p": "<= 0.05", "z": ">= 2"}})
    t = Target("x")
    assert fvc.judge(c, t, measurement()).passed
    assert not fvc.judge(c, t, measurement(acc=0.25)).passed  # accuracy and gain fail
    v = fvc.judge(c, t, measurement(zero=0.25))  # gain 0.15 < 0.2
    assert not v.passed and "gain 0.15" in v.summary
    assert not fvc.judge(c, t, measurement(p=0.1)).passed
    assert not fvc.judge(c, t, measurement(z=1.0)).passed
    assert not fvc.judge(c, t, measurement(p=float("nan"))).passed  # NaN never passes
    assert not fvc.judge(c, t, measurement(kshot=2.0)).passed  # recall 0.2


@pytest.mark.parametrize("fields, fragment", [
    ({"task": "antonyms"}, "unknown task"),
    ({"heads": {"top": 3}, "shots": 1}, "shots >= 2"),
    ({"heads": {"top": 0}}, "greater than or equal to 1"),
    ({"expect": {}}, "give accuracy, gain and/or recall"),
    ({"control": {"draws": 5, "expect": {"p": "<= 0.05"}}}, "can never pass"),
    ({"control": {"draws": 19, "expect": {"p": "<= 0"}}}, "can never pass"),
    ({"control": {"draws": 1, "expect": {"z": ">= 2"}}}, "z needs draws >= 2"),
    ({"heads": {"top": 3, "method": "lrp"}}, "attribution"),
    ({"heads": [], "expect": {"gain": ">= 0"}}, "at least 1"),
    ({"scale": float("inf")}, "finite"),
    ({"colour": 1}, "Extra inputs"),
])
def test_schema_mistakes(fields, fragment):
    with pytest.raises(Exception) as info:
        claim(**fields)
    assert fragment in str(info.value)


def test_schema_accepts_lists_and_layer_ranges():
    c = claim(heads=[9.1, "L11H3", [2, 0]], shots=1, layer=-3, sweep={"layers": "0-4,8"})
    assert [fvc.head_pair(h) for h in c.heads] == [(9, 1), (11, 3), (2, 0)]
    assert c.sweep.layers == [0, 1, 2, 3, 4, 8]
    assert fvc.targets(c)[0].heads == ((9, 1), (11, 3), (2, 0))
    assert claim(control={"draws": 19, "expect": {"p": "<= 0.05"}}).control.draws == 19


def fake_ctx(n_layers=4, n_heads=3):
    adapter = types.SimpleNamespace(n_layers=n_layers, n_heads=n_heads)
    return types.SimpleNamespace(loaded=types.SimpleNamespace(adapter=adapter), location=lambda key: f"s.yaml:{key}")


@pytest.mark.parametrize("fields, key, fragment", [
    ({"heads": [1.0, 4.1]}, "heads[1]", "L4H1 is out of range"),
    ({"heads": [1.0, 2.3]}, "heads[1]", "L2H3 is out of range"),
    ({"layer": 4}, "layer", "layer 4 is out of range"),
    ({"layer": -5}, "layer", "layer -5 is out of range"),
    ({"heads": {"top": 13}}, "heads.top", "top 13 exceeds the 12"),
    ({"heads": {"top": 4, "layers": [1]}}, "heads.top", "top 4 exceeds the 3"),
    ({"heads": {"top": 2, "layers": [7]}}, "heads.layers", "layer 7 is out of range"),
    ({"sweep": {"layers": [0, 9]}}, "sweep.layers", "[9]"),
])
def test_model_shape_mistakes_are_located_errors(fields, key, fragment):
    with pytest.raises(ClaimSpecError) as info:
        fvc.measure(claim(**fields), Target("x"), fake_ctx())
    assert info.value.key == key if hasattr(info.value, "key") else key in str(info.value)
    assert fragment in str(info.value)


def test_layers_count_from_the_end():
    assert fvc._check(claim(layer=-1), fake_ctx())[0] == 3
    assert fvc._check(claim(), fake_ctx(n_layers=30))[0] == 10


def test_spec_mistakes_name_the_line(tmp_path):
    from icltest.schema import SpecError, load_spec

    path = tmp_path / "s.yaml"
    path.write_text("schema_version: 1\nmodel: smollm2-135m\nclaims:\n"
                    "  - id: fv\n    kind: function_vector\n    task: antonym\n    heads: {top: 10}\n"
                    "    control: {draws: 9, expect: {p: '<= 0.05'}}\n    expect: {gain: '>= 0.1'}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "s.yaml:8" in str(info.value) and "draws >= 19" in str(info.value)
