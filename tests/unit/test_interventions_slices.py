"""The head-ablation pre-hook rewrites exactly the right slice, checked against hand-built tensors.

An identity "o_proj" makes the module's output equal to its (rewritten) input, so the test reads
the hook's effect directly, on a fake adapter with no transformer involved.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from icltest.errors import IcltestError
from icltest.interventions import HeadReference, ablate_heads, rewrite_head_input

B, S, H, D = 2, 3, 3, 2


@dataclass
class FakeAdapter:
    n_layers: int = 2
    n_heads: int = H
    head_dim: int = D
    projs: list = field(default_factory=list)

    def __post_init__(self) -> None:
        for _ in range(self.n_layers):
            lin = torch.nn.Linear(H * D, H * D)
            with torch.no_grad():
                lin.weight.copy_(torch.eye(H * D))
                lin.bias.zero_()
            self.projs.append(lin)

    def o_proj(self, layer: int) -> torch.nn.Linear:
        return self.projs[layer]


def known_input() -> torch.Tensor:
    """x[b, s, h*D + d] = 1000*b + 100*s + 10*h + d + 1: every entry says where it came from."""
    x = torch.empty(B, S, H * D)
    for b in range(B):
        for s in range(S):
            for h in range(H):
                for d in range(D):
                    x[b, s, h * D + d] = 1000 * b + 100 * s + 10 * h + d + 1
    return x


def reference_z(batch: int = B) -> torch.Tensor:
    """Reference z[b, s, h, d] = -(b + 1) * (s + 1) * (h + 1) * (d + 1): distinct, negative."""
    z = torch.empty(batch, S, H, D)
    for b in range(batch):
        for s in range(S):
            for h in range(H):
                for d in range(D):
                    z[b, s, h, d] = -(b + 1) * (s + 1) * (h + 1) * (d + 1)
    return z


def run(adapter: FakeAdapter, layer: int, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return adapter.o_proj(layer)(x)


def test_zero_rewrites_only_named_head_and_layer():
    adapter, x = FakeAdapter(), known_input()
    original = x.clone()
    expected = x.clone()
    expected[:, :, 1 * D : 2 * D] = 0.0  # head 1 only
    with ablate_heads(adapter, [(0, 1)], "zero"):
        out0, out1 = run(adapter, 0, x), run(adapter, 1, x)
    assert torch.equal(out0, expected)
    assert torch.equal(out1, x)  # layer 1 untouched
    assert torch.equal(x, original)  # input not edited in place
    assert torch.equal(run(adapter, 0, x), x)  # hook gone


def test_mean_writes_valid_masked_mean():
    adapter, x = FakeAdapter(), known_input()
    z = reference_z()
    valid = torch.tensor([[False, True, True], [False, True, False]])
    # Hand mean for head h, dim d over valid (b, s) = (0,1), (0,2), (1,1):
    #   -(h+1)(d+1) * [(1*2) + (1*3) + (2*2)] / 3 = -(h+1)(d+1) * 3
    expected = x.clone()
    for h in (0, 2):
        for d in range(D):
            expected[:, :, h * D + d] = -(h + 1) * (d + 1) * 3.0
    with ablate_heads(adapter, [(0, 0), (0, 2)], "mean", HeadReference({0: z}, valid)):
        out = run(adapter, 0, x)
    torch.testing.assert_close(out, expected)


def test_mean_per_position():
    adapter, x = FakeAdapter(), known_input()
    z = reference_z()
    valid = torch.tensor([[False, True, True], [False, True, False]])
    # Position 0: no valid row -> plain batch mean, rows b=0,1: -(h+1)(d+1) * (1 + 2) / 2.
    # Position 1: both valid -> -(h+1)(d+1) * (2 + 4) / 2.  Position 2: only b=0 -> -(h+1)(d+1) * 3.
    factor = [1.5, 3.0, 3.0]
    expected = x.clone()
    for s in range(S):
        for d in range(D):
            expected[:, s, 2 * D + d] = -(2 + 1) * (d + 1) * factor[s]
    with ablate_heads(adapter, [(0, 2)], "mean", HeadReference({0: z}, valid), per_position=True):
        out = run(adapter, 0, x)
    torch.testing.assert_close(out, expected)


def test_resample_takes_other_sequence_same_position():
    adapter = FakeAdapter()
    batch = 4
    x = torch.arange(batch * S * H * D, dtype=torch.float32).reshape(batch, S, H * D)
    z = reference_z(batch)
    shifts = set()
    for seed in range(12):
        with ablate_heads(adapter, [(1, 1)], "resample", HeadReference({1: z}, torch.ones(batch, S, dtype=torch.bool)), seed=seed) as info:
            out = run(adapter, 1, x)
        shifts.add(info.shift)
        expected = x.clone()
        for i in range(batch):
            src = (i + info.shift) % batch
            assert src != i
            for s in range(S):
                expected[i, s, 1 * D : 2 * D] = z[src, s, 1]
        assert torch.equal(out, expected)
    assert shifts == {1, 2, 3}  # every nonzero shift is reachable, zero never is


def test_resample_same_seed_same_shift_and_shape_errors():
    adapter = FakeAdapter()
    ref = HeadReference({0: reference_z(4)}, torch.ones(4, S, dtype=torch.bool))
    shifts = []
    for _ in range(2):
        with ablate_heads(adapter, [(0, 0)], "resample", ref, seed=7) as info:
            shifts.append(info.shift)
    assert shifts[0] == shifts[1]
    with ablate_heads(adapter, [(0, 0)], "resample", ref):
        with pytest.raises(IcltestError, match="same batch size"):
            run(adapter, 0, known_input())  # batch 2 vs reference batch 4
    single = HeadReference({0: reference_z(1)}, torch.ones(1, S, dtype=torch.bool))
    with pytest.raises(IcltestError, match="at least 2"):
        with ablate_heads(adapter, [(0, 0)], "resample", single):
            pass


def test_rewrite_head_input_checks_width():
    with pytest.raises(IcltestError, match="n_heads \\* head_dim"):
        rewrite_head_input(torch.zeros(1, 2, 5), [0], n_heads=3, head_dim=2)


def test_reference_mean_rejects_empty_mask():
    ref = HeadReference({0: reference_z()}, torch.zeros(B, S, dtype=torch.bool))
    with pytest.raises(IcltestError, match="no positions"):
        ref.mean(0)
