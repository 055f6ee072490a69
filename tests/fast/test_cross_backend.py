"""C2: the fast backend (float64) against the reference backend."""

from fractions import Fraction

import pytest
import torch

from mfdeep.claims import _layered_to_tensors
from mfdeep.fast.layered import atomic_limit, layered_drift, solve_limit
from mfdeep.fast.model import TorchModel
from mfdeep.fast.network import draw_network, population_drift
from mfdeep.model import builtin_names, load_instance, with_depth
from mfdeep.reference.bound import Bound
from mfdeep.reference.contexts import ArbOps, MPOps
from mfdeep.reference.layered import initial_layered_state
from mfdeep.reference.layered import layered_drift as ref_layered_drift
from mfdeep.reference.mv import LayeredSystem, taylor_integrate
from mfdeep.reference.network import FiniteNetwork, network_drift

# float64 against 30-digit values; sums of O(100) terms of size O(1).
RTOL = 1e-10


def _rel(fast, ref, scale):
    return abs(float(fast) - float(ref)) / scale


@pytest.mark.parametrize("name", builtin_names())
@pytest.mark.parametrize("L", [2, 3, 4, 5])
def test_fast_layered_drift_equals_the_reference(name, L):
    instance = with_depth(load_instance(name), L)
    atomic = instance.atomic() if instance.is_polynomial else instance.atomic(2)
    model = TorchModel(atomic)
    ops = MPOps(30)
    B = Bound(atomic, ops)
    state = initial_layered_state(B, *atomic.atomic_laws())
    state = state.replace_weights([
        {k: tuple(v + ops.convert(Fraction((hash(k) + c) % 7 - 3, 8))
                  for c, v in enumerate(w)) for k, w in layer.items()}
        for layer in state.W])
    ref, _ = ref_layered_drift(B, state)
    fast = layered_drift(model, _layered_to_tensors(state, L, model), 0.0,
                         atomic_limit(model))
    for l, layer in enumerate(ref):
        scale = max(abs(float(c)) for vec in layer.values() for c in vec)
        for key, vec in layer.items():
            for c, v in enumerate(vec):
                assert _rel(fast[l][key + (c,)], v, scale) <= RTOL


@pytest.mark.parametrize("name", builtin_names())
def test_fast_network_drift_equals_the_reference(name):
    instance = load_instance(name)
    model = TorchModel(instance)
    net = draw_network(instance, 3, R=2, seed=5)
    fast, _ = population_drift(model, net)
    r = 1
    as_frac = lambda t: tuple(Fraction(float(v)) for v in t)  # noqa: E731
    ref_net = FiniteNetwork([as_frac(v) for v in net.theta0[r]],
                            [[[as_frac(w) for w in row] for row in W[r]] for W in net.W],
                            [as_frac(v) for v in net.thetaL[r]])
    ops = MPOps(30)
    ref, _ = network_drift(Bound(instance, ops), ref_net.convert(ops))
    scale = max(float(b.abs().max()) for b in fast)
    for l in range(instance.L - 1):
        for i in range(3):
            for j in range(3):
                for c, v in enumerate(ref[l][i][j]):
                    assert _rel(fast[l][r, i, j, c], v, scale) <= RTOL


@pytest.mark.parametrize("name,L", [("exact", 3), ("l2", 2), ("default", 3),
                                    ("mlp", 4)])
def test_fast_mv_solution_equals_the_reference_taylor_solution(name, L):
    instance = with_depth(load_instance(name), L)
    atomic = instance.atomic() if instance.is_polynomial else instance.sampled(2, 1)
    model = TorchModel(atomic)
    T = float(atomic.T)
    fast = solve_limit(model, T, dt=T / 8, rtol=1e-13, record_states=True)
    # Reference to ~1e-13 (its own estimate); the bound RTOL is 1e-10.
    ref = taylor_integrate(LayeredSystem, atomic, atomic.T, ArbOps(128), degree=12,
                           tol=1e-14)
    assert ref.error_estimate < 1e-12
    system = LayeredSystem(atomic, ArbOps(128))
    scale = max(abs(float(v)) for v in ref.states[-1])
    moved = max(abs(float(a - b)) for a, b in zip(ref.states[-1], ref.states[0]))
    assert moved > 1e-3
    for (l, key, c), v in zip(system.layout, ref.states[-1]):
        assert _rel(fast.states[-1][l - 1][key + (c,)], v, scale) <= RTOL


def test_fixed_step_rk4_converges_at_fourth_order():
    atomic = load_instance("l2").sampled(2, 1)
    model = TorchModel(atomic)
    T = float(atomic.T)
    ref = solve_limit(model, T, dt=T / 8, rtol=1e-13).ybar[-1]
    errs = [float((solve_limit(model, T, dt=T / n).ybar[-1] - ref).abs().max())
            for n in (4, 8, 16)]
    orders = [torch.log2(torch.tensor(errs[k] / errs[k + 1])).item() for k in range(2)]
    # Band: the asymptotic order 4 +- 0.6 at these coarse steps.
    assert all(3.4 <= o <= 4.6 for o in orders), orders
