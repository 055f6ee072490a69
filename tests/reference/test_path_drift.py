"""C3: the general path drift reproduces finite networks and the layered drift.

Exact claims are checked with rational arithmetic and ``==``: no tolerance.
"""

import flint
import pytest

from mfdeep.reference.bound import Bound
from mfdeep.reference.contexts import ArbOps, ExactOps, MPOps
from mfdeep.reference.layered import (initial_layered_state, layered_drift,
                                      layered_to_path_law)
from mfdeep.reference.network import network_drift, sample_network
from mfdeep.reference.path import empirical_path_law, path_drift

from .helpers import exact_instance, perturb_layered, second_exact_instance

CASES = [(exact_instance, 2, 3), (exact_instance, 3, 3), (exact_instance, 4, 3),
         (exact_instance, 5, 2), (second_exact_instance, 2, 3),
         (second_exact_instance, 4, 2)]


def _network_vs_path(instance, N, seed, ops):
    B = Bound(instance, ops)
    net = sample_network(instance, N, seed).convert(ops)
    b, _ = network_drift(B, net)
    law = empirical_path_law(net, ops)
    bp, _ = path_drift(B, law)
    pairs = []
    for a, lab in enumerate(law.labels):
        for l in range(1, instance.L):
            i, j = lab[l]
            pairs.append((bp[a][l - 1], b[l - 1][i][j]))
    return pairs


@pytest.mark.parametrize("make,L,N", CASES)
def test_path_drift_of_empirical_law_equals_network_drift(make, L, N):
    instance = make(L)
    for seed in (0, 1):
        pairs = _network_vs_path(instance, N, seed, ExactOps())
        assert pairs and all(u == v for u, v in pairs)


@pytest.mark.parametrize("make,L", [(exact_instance, L) for L in (2, 3, 4, 5)]
                         + [(second_exact_instance, L) for L in (2, 3, 4)])
def test_path_drift_on_layered_law_equals_layered_drift(make, L):
    instance = make(L)
    ops = ExactOps()
    B = Bound(instance, ops)
    state = initial_layered_state(B, *instance.atomic_laws())
    for seed in (0, 1):
        moved = perturb_layered(state, ops, seed)
        bl, info_l = layered_drift(B, moved)
        law = layered_to_path_law(moved, ops)
        bp, info_p = path_drift(B, law)
        assert info_l["yhat"] == info_p["yhat"]
        for a, lab in enumerate(law.labels):
            for l in range(1, L):
                assert bp[a][l - 1] == bl[l - 1][lab[l][1]]


def test_the_drift_is_not_trivially_zero():
    # Guards the identities above against a vacuous pass.
    instance = exact_instance(3)
    ops = ExactOps()
    pairs = _network_vs_path(instance, 2, 0, ops)
    assert any(any(v != 0 for v in u) for u, _ in pairs)


def test_dropping_the_conditioning_breaks_the_network_identity():
    # Canary: averaging over the whole law instead of conditioning on the
    # downstream labels gives a different drift, so the test above can fail.
    from mfdeep.reference import path as path_module

    instance = exact_instance(3)
    ops = ExactOps()
    original = path_module._conditional

    def unconditional(keys, contributions, probs):
        mean = sum(c * p for c, p in zip(contributions, probs)) / sum(probs)
        return [mean for _ in keys]

    path_module._conditional = unconditional
    try:
        pairs = _network_vs_path(instance, 3, 0, ops)
    finally:
        path_module._conditional = original
    assert any(u != v for u, v in pairs)


@pytest.mark.parametrize("name", ["default", "l2", "mlp"])
def test_path_drift_equals_network_drift_in_high_precision(name):
    from mfdeep.model import load_instance

    dps = 40
    ops = MPOps(dps)
    # Sums of at most N^L = 27 terms of size O(1): a few digits of cancellation.
    tol = 10.0 ** (6 - dps)
    pairs = _network_vs_path(load_instance(name), 3 if name != "l2" else 4, 0, ops)
    for u, v in pairs:
        for a, b in zip(u, v):
            assert abs(a - b) <= tol * max(1, abs(b))


def test_arb_balls_enclose_the_exact_network_drift():
    instance = exact_instance(3)
    exact = _network_vs_path(instance, 2, 3, ExactOps())
    arb = ArbOps(prec=80)
    with arb.working():
        balls = _network_vs_path(instance, 2, 3, arb)
    # The exact rational, converted at 256 bits, is a ball far thinner than
    # the 80-bit results; containment is then a real check.
    with ArbOps(prec=256).working():
        for (u, _), (ball, _) in zip(exact, balls):
            for q, b in zip(u, ball):
                assert b.rad() < 1e-15
                assert b.contains(flint.arb(q))
