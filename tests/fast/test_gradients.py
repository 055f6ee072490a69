"""C1: N^2 times the autograd gradient of the population risk is the drift."""

import pytest
import torch

from mfdeep.fast.model import TorchModel
from mfdeep.fast.network import NetworkState, draw_network, forward, population_drift
from mfdeep.model import builtin_names, load_instance, with_depth

# Relative to the largest drift entry: a few hundred float64 roundings.
RTOL = 1e-12


def autograd_drift(model, net):
    W = [w.clone().requires_grad_(True) for w in net.W]
    _, yhat, _ = forward(model, NetworkState(net.theta0, W, net.thetaL),
                         model.X.expand(net.R, -1, -1))
    risk = (model.P * model.loss(model.Y.expand(net.R, -1), yhat)).sum()
    N = net.N
    return [g * (-model.alpha(0.0)) * N**2 for g in torch.autograd.grad(risk, W)]


@pytest.mark.parametrize("name", builtin_names())
@pytest.mark.parametrize("L", [2, 3, 4, 5])
def test_scaled_autograd_gradient_equals_the_explicit_drift(name, L):
    instance = with_depth(load_instance(name), L)
    model = TorchModel(instance)
    net = draw_network(instance, 6, R=3, seed=L)
    explicit, _ = population_drift(model, net)
    auto = autograd_drift(model, net)
    scale = max(float(b.abs().max()) for b in explicit)
    assert scale > 1e-6
    for a, b in zip(auto, explicit):
        assert float((a - b).abs().max()) <= RTOL * scale


def test_the_check_catches_a_wrong_scaling():
    # Canary: the same comparison with N instead of N^2 fails by a factor N.
    instance = load_instance("default")
    model = TorchModel(instance)
    net = draw_network(instance, 6, R=2, seed=0)
    explicit, _ = population_drift(model, net)
    auto = [g / net.N for g in autograd_drift(model, net)]
    scale = max(float(b.abs().max()) for b in explicit)
    assert any(float((a - b).abs().max()) > RTOL * scale for a, b in zip(auto, explicit))
