"""The Intervention type's operations on a tiny Llama, checked against hand-edited clean activations."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from icltest.errors import InterventionError
from icltest.interventions import Intervention, WeightEdit, apply
from icltest.models.adapters import Adapter
from icltest.models.hookpoints import hooked, point

TOKENS = torch.randint(0, 50, (4, 7), generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def adapter():
    torch.manual_seed(0)
    config = tf.LlamaConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
                            intermediate_size=64, vocab_size=50)
    return Adapter.for_model(tf.AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval())


def seen_after(adapter, iv):
    """The activation at iv's point as the model sees it after the edit (a reader chained after it)."""
    got = {}
    with torch.no_grad(), hooked(adapter, {iv.point: [iv.handler(), lambda x: got.__setitem__("x", x.clone())]}):
        adapter.model(input_ids=TOKENS)
    return got["x"]


def clean(adapter, hp):
    got = {}
    with torch.no_grad(), hooked(adapter, {hp: [lambda x: got.__setitem__("x", x.clone())]}):
        adapter.model(input_ids=TOKENS)
    return got["x"]


def test_zero_heads_at_positions_in_rows(adapter):
    hp = point("z", 1)
    x = clean(adapter, hp)
    iv = Intervention(hp, "zero", heads=(1, 3), positions=(0, 5), rows=(1, 3))
    expected = x.clone()
    for b in (1, 2):
        for p in (0, 5):
            expected[b, p, [1, 3]] = 0
    assert torch.equal(seen_after(adapter, iv), expected)


def test_add_vector_with_scale_at_one_position(adapter):
    hp = point("resid_pre", 1)
    x = clean(adapter, hp)
    v = torch.arange(32, dtype=torch.float32)
    got = seen_after(adapter, Intervention(hp, "add", value=v, scale=0.5, positions=(-1,)))
    expected = x.clone()
    expected[:, -1] += 0.5 * v
    assert torch.equal(got, expected)


def test_mean_per_position_and_patch_per_row(adapter):
    hp = point("z", 0)
    x = clean(adapter, hp)
    per_pos = torch.randn(7, 4, 8)
    got = seen_after(adapter, Intervention(hp, "mean", heads=(2,), value=per_pos))
    expected = x.clone()
    expected[:, :, 2] = per_pos[:, 2]
    assert torch.equal(got, expected)
    source = torch.randn(2, 7, 4, 8)
    got = seen_after(adapter, Intervention(hp, "patch", heads=(0, 1), value=source, rows=(2, 4)))
    expected = x.clone()
    expected[2:4, :, :2] = source[:, :, :2]
    assert torch.equal(got, expected)


def test_replace_and_shape_errors(adapter):
    hp = point("mlp_out", 0)
    v = torch.ones(32)
    assert torch.equal(seen_after(adapter, Intervention(hp, "replace", value=v)), torch.ones(4, 7, 32))
    with pytest.raises(InterventionError, match="does not fit"):
        seen_after(adapter, Intervention(hp, "replace", value=torch.ones(31)))
    with pytest.raises(InterventionError, match="covers 9 positions"):
        seen_after(adapter, Intervention(hp, "replace", value=torch.ones(9, 32)))
    with pytest.raises(InterventionError, match="same batch size"):
        seen_after(adapter, Intervention(hp, "patch", value=torch.ones(3, 7, 32)))
    with pytest.raises(InterventionError, match="heads only apply"):
        Intervention(hp, "zero", heads=(1,))
    with pytest.raises(InterventionError, match="op must be one of"):
        Intervention(hp, "scramble")
    with pytest.raises(InterventionError, match="needs a value"):
        Intervention(hp, "add")


def test_list_of_interventions_in_one_forward_and_weight_edit_restored_exactly(adapter):
    model = adapter.model
    with torch.no_grad():
        before = model(input_ids=TOKENS).logits
    name = "model.layers.0.mlp.up_proj.weight"
    original = model.get_parameter(name).detach().clone()
    delta = 1e-3 * torch.randn_like(original)
    edits = [WeightEdit(name, delta=delta), Intervention(point("z", 1), "zero", heads=(0,)),
             Intervention(point("resid_post", 0), "add", value=torch.ones(32), scale=0.1)]
    with pytest.raises(RuntimeError, match="boom"):
        with apply(adapter, edits):
            assert torch.equal(model.get_parameter(name), original + delta)
            with torch.no_grad():
                assert not torch.equal(model(input_ids=TOKENS).logits, before)
            raise RuntimeError("boom")
    assert torch.equal(model.get_parameter(name), original)
    with torch.no_grad():
        assert torch.equal(model(input_ids=TOKENS).logits, before)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0
    with pytest.raises(InterventionError, match="no parameter"):
        with apply(adapter, [WeightEdit("model.nope.weight", delta=delta)]):
            pass
    with pytest.raises(InterventionError, match="cannot share"):
        with apply(adapter, [Intervention(point("z", 1), "zero", heads=(0,)),
                             Intervention(point("z", 1), "zero", heads=(1,), post_norm="live")]):
            pass


def test_head_and_position_validation(adapter):
    with pytest.raises(InterventionError, match="distinct and >= 0"):
        Intervention(point("z", 0), "zero", heads=(-1,))
    with pytest.raises(InterventionError, match="positions is empty"):
        Intervention(point("z", 0), "zero", heads=(0,), positions=())
    with pytest.raises(InterventionError, match="out of range"):
        seen_after(adapter, Intervention(point("z", 0), "zero", heads=(7,)))
    assert Intervention(point("z", 0), "zero").post_norm == "frozen"
    assert Intervention(point("z", 0), "patch", value=torch.zeros(4, 8)).post_norm == "live"
