"""C1 in reference numbers: forward-mode gradient of R_N against backprop."""

import pytest

from mfdeep.model import load_instance, with_depth
from mfdeep.properties.checks import check_exact_gradient_scaling
from mfdeep.reference.bound import Bound
from mfdeep.reference.contexts import ExactOps
from mfdeep.reference.gradient import risk_gradient
from mfdeep.reference.network import network_drift, sample_network

from .helpers import exact_instance, second_exact_instance


@pytest.mark.parametrize("L", [2, 3, 4, 5])
@pytest.mark.parametrize("make", [exact_instance, second_exact_instance])
def test_scaled_gradient_equals_the_drift_exactly(make, L):
    out = check_exact_gradient_scaling(make(L), N=2 if L > 3 else 3, seed=L)
    assert out["number_system"] == "exact" and out["max_error"] == 0.0


@pytest.mark.parametrize("name", ["default", "mlp", "l2"])
def test_scaled_gradient_equals_the_drift_to_40_digits(name):
    out = check_exact_gradient_scaling(load_instance(name), N=2, seed=1, dps=40)
    assert out["max_error"] <= 1e-30


def test_the_gradient_is_not_the_drift_without_the_n_squared_factor():
    # The identity is sharp: N instead of N^2 (width 3) breaks every
    # non-zero coordinate.
    inst = with_depth(load_instance("exact"), 3)
    ops = ExactOps()
    net = sample_network(inst, 3, 0).convert(ops)
    b, _ = network_drift(Bound(inst, ops), net)
    grad = risk_gradient(inst, net, ops)
    alpha = Bound(inst, ops).alpha(0)
    pairs = [(u, v) for bl, gl in zip(b, grad) for br, gr in zip(bl, gl)
             for bc, gc in zip(br, gr) for u, v in zip(bc, gc)]
    nonzero = [(u, v) for u, v in pairs if u != 0]
    assert nonzero
    assert all(u == -alpha * 9 * v for u, v in pairs)
    assert all(u != -alpha * 3 * v for u, v in nonzero)
