"""Stateful property test: interleave SGD steps, gradient-flow steps, neuron
permutations and Picard steps, checking invariants after every step.

Invariants: outputs are unchanged by permuting the neurons of a hidden layer
(to float64 round-off); the drift of the permuted network is the permuted
drift; weights stay finite; a Picard iterate always starts at w0, and once
it has converged further Picard steps do not move it.
"""

import os

import torch
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mfdeep.properties import _profiles  # noqa: F401  (registers the profiles)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Sums of N terms reordered: a few hundred roundings of O(1) values.
PERM_TOL = 1e3 * torch.finfo(torch.float64).eps


def permute_hidden(state, layer, perm):
    """The same network with the neurons of hidden ``layer`` (1-based) permuted."""
    from mfdeep.fast.network import NetworkState

    theta0, W, thetaL = state.theta0, list(state.W), state.thetaL
    L = len(W) + 1
    if layer == 1:
        theta0 = theta0[:, perm]
    if layer >= 2:
        W[layer - 2] = W[layer - 2][:, :, perm]
    if layer <= L - 1:
        W[layer - 1] = W[layer - 1][:, perm]
    if layer == L:
        thetaL = thetaL[:, perm]
    return NetworkState(theta0.clone(), [w.clone() for w in W], thetaL.clone())


class NetworkMachine(RuleBasedStateMachine):
    """A small network and a Picard flow evolving under random operations."""

    @initialize(name=st.sampled_from(["default", "mlp", "l2"]), seed=st.integers(0, 99),
                N=st.integers(2, 6))
    def setup(self, name, seed, N):
        from mfdeep.fast.layered import atomic_limit
        from mfdeep.fast.model import TorchModel
        from mfdeep.fast.network import draw_network
        from mfdeep.fast.picard import constant_flow
        from mfdeep.model import load_instance

        instance = load_instance(name)
        self.model = TorchModel(instance)
        self.state = draw_network(instance, N, R=2, seed=seed)
        self.limit_model = TorchModel(instance.atomic(2))
        self.lim = atomic_limit(self.limit_model)
        self.times = torch.linspace(0, 0.5, 9, dtype=torch.float64)
        self.flow = constant_flow(self.lim.initial(), 9)
        self.picard_steps = 0
        self.t = 0.0

    @rule(n_steps=st.integers(1, 5), seed=st.integers(0, 99))
    def sgd_steps(self, n_steps, seed):
        from mfdeep.fast.train import sgd

        sgd(self.model, self.state, 0.05, n_steps, batch=2, seed=seed)

    @rule()
    def gradient_flow_step(self):
        from mfdeep.fast.train import gradient_flow

        self.state, _ = gradient_flow(self.model, self.state, 0.1, 0.05)

    @rule(data=st.data())
    def permute_neurons(self, data):
        from mfdeep.fast.network import outputs, population_drift

        L = self.model.L
        layer = data.draw(st.integers(1, L))
        perm = torch.tensor(data.draw(st.permutations(range(self.state.N))))
        before = outputs(self.model, self.state)
        b_before, _ = population_drift(self.model, self.state)
        self.state = permute_hidden(self.state, layer, perm)
        after = outputs(self.model, self.state)
        b_after, _ = population_drift(self.model, self.state)
        scale = max(1.0, float(before.abs().max()))
        assert float((after - before).abs().max()) <= PERM_TOL * scale
        # The drift is equivariant: permute the old drift like the weights.
        expected = permute_hidden(type(self.state)(self.state.theta0, b_before,
                                                   self.state.thetaL), layer, perm).W
        for x, y in zip(b_after, expected):
            assert float((x - y).abs().max()) <= PERM_TOL * max(1.0, float(y.abs().max()))

    @rule()
    def picard_step(self):
        from mfdeep.fast.picard import picard_map

        self.flow = picard_map(self.limit_model, self.lim, self.flow, self.times)
        self.picard_steps += 1

    @invariant()
    def weights_are_finite(self):
        if hasattr(self, "state"):
            assert all(bool(torch.isfinite(w).all()) for w in self.state.W)

    @invariant()
    def picard_iterates_start_at_w0(self):
        if getattr(self, "picard_steps", 0):
            for f, w in zip(self.flow, self.lim.initial()):
                assert torch.equal(f[0], w)


TestNetworkMachine = NetworkMachine.TestCase
TestNetworkMachine.settings = settings(max_examples=settings().max_examples // 5 or 1,
                                       stateful_step_count=12, deadline=None)
