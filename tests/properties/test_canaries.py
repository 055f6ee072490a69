"""Canaries: each property of mfdeep.properties fails on a planted bug.

A property that cannot fail proves nothing; each test below plants one bug
(a wrong scaling, a dropped conditioning, a perturbed drift, a Picard map
that forgets its initial value) and checks that the property catches it.
"""

import pytest

import mfdeep.fast.layered as fast_layered
import mfdeep.fast.network as fast_network
import mfdeep.fast.picard as fast_picard
import mfdeep.properties.checks as checks
import mfdeep.reference.mv as ref_mv
import mfdeep.reference.path as ref_path
from mfdeep.model import load_instance, with_depth


def _unconditional(keys, contributions, probs):
    mean = sum(c * p for c, p in zip(contributions, probs)) / sum(probs)
    return [mean for _ in keys]


def test_dropped_conditioning_is_caught_by_the_network_identity(monkeypatch):
    monkeypatch.setattr(ref_path, "_conditional", _unconditional)
    with pytest.raises(AssertionError, match="disagree with the network drift"):
        checks.check_network_path_identity(load_instance("exact"), N=2, seed=0)


def test_dropped_conditioning_is_caught_by_the_layered_identity(monkeypatch):
    monkeypatch.setattr(ref_path, "_conditional", _unconditional)
    with pytest.raises(AssertionError, match="disagree with the layered drift"):
        checks.check_layered_path_identity(load_instance("exact"), seed=0)


def test_a_path_dependent_drift_is_caught_by_the_factorisation_check(monkeypatch):
    original = ref_mv.path_drift

    def tangled(bound, law, t=0):
        b, info = original(bound, law, t)
        # Layer 2's drift now also depends on the input-feature atom.
        return [[bl if l != 1 or lab[0] == 0 else tuple(2 * v for v in bl)
                 for l, bl in enumerate(row)] for row, lab in zip(b, law.labels)], info

    monkeypatch.setattr(ref_mv, "path_drift", tangled)
    with pytest.raises(AssertionError):
        checks.check_factorisation(with_depth(load_instance("exact"), 3), degree=3)


def test_a_wrong_scaling_is_caught_by_the_autograd_check(monkeypatch):
    original = fast_network.population_drift

    def rescaled(model, state, t=0.0):
        b, risk = original(model, state, t)
        return [x * (1 + 1 / state.N) for x in b], risk

    monkeypatch.setattr(fast_network, "population_drift", rescaled)
    with pytest.raises(AssertionError, match="relative error"):
        checks.check_autograd_scaling(load_instance("default"), N=4, R=2, seed=0)


def test_a_perturbed_fast_drift_is_caught_by_the_cross_check(monkeypatch):
    original = fast_layered.layered_drift

    def perturbed(model, W, t=0.0, lim=None):
        return [b * (1 + 1e-8) for b in original(model, W, t, lim)]

    monkeypatch.setattr(fast_layered, "layered_drift", perturbed)
    with pytest.raises(AssertionError, match="relative error"):
        checks.check_fast_layered_drift(load_instance("default").sampled(2), seed=0)


def test_a_picard_map_that_forgets_w0_is_caught_by_the_uniqueness_check(monkeypatch):
    original = fast_picard.picard_map

    def forgetful(model, lim, flow, times):
        out = original(model, lim, flow, times)
        return [o - w[None] + f[0][None] for o, w, f in zip(out, lim.initial(), flow)]

    monkeypatch.setattr(fast_picard, "picard_map", forgetful)
    with pytest.raises(AssertionError, match="apart"):
        checks.check_picard_fixed_point(load_instance("l2").sampled(2), shift=0.5,
                                        n_grid=8, T=1.0)


def test_label_conditioning_hides_the_discontinuity_from_the_c11_check(monkeypatch):
    # With labels that always separate the atoms, mu_n -> mu has converging
    # drifts: the check must then report that it saw no discontinuity.
    original = checks.PathLaw

    def by_index(labels, values, probs):
        return original([tuple((a, c) for c in range(len(lab)))
                         for a, lab in enumerate(labels)], values, probs)

    monkeypatch.setattr(checks, "PathLaw", by_index)
    with pytest.raises(AssertionError, match="no discontinuity"):
        checks.check_discontinuity_off_layered()


def test_a_broken_permutation_is_caught_by_the_symmetry_invariant():
    # Permuting hidden 1 without its input features changes the outputs; the
    # stateful machine's invariant compares outputs before and after.
    import torch

    from mfdeep.fast.model import TorchModel
    from mfdeep.fast.network import NetworkState, draw_network, outputs
    from mfdeep.properties.test_stateful import PERM_TOL, permute_hidden

    instance = load_instance("default")
    model = TorchModel(instance)
    state = draw_network(instance, 5, R=2, seed=0)
    perm = torch.tensor([1, 0, 2, 3, 4])
    good = permute_hidden(state, 1, perm)
    broken = NetworkState(state.theta0, good.W, state.thetaL)
    base = outputs(model, state)
    assert float((outputs(model, good) - base).abs().max()) <= PERM_TOL
    assert float((outputs(model, broken) - base).abs().max()) > 1e3 * PERM_TOL


def test_an_underestimated_constant_is_caught_by_the_contraction_check(monkeypatch):
    # Canary: with K a hundred times too small the measured ratios exceed
    # the "bound"; the property must say so. (The bound is loose: measured
    # ratios sit near 1.5 % of it on `default`, so a K up to ~60x too small
    # would go unnoticed; the report gives that margin as the C4 figure.)
    import mfdeep.reference.constants as constants

    original = constants.contraction_constant

    def too_small(*args, **kwargs):
        out = original(*args, **kwargs)
        return constants.ContractionConstant(out.K / 100, out.K_layers, out.constants)

    monkeypatch.setattr(constants, "contraction_constant", too_small)
    with pytest.raises(AssertionError, match="exceeds the bound"):
        checks.check_contraction(load_instance("default").atomic(2), n_pairs=1,
                                 n_grid=6, splits=8)


def test_a_perturbed_layered_drift_is_caught_by_the_lipschitz_check(monkeypatch):
    # Canary: a drift with a jump (+0.5 wherever a weight exceeds the base
    # state's mean) is not K-Lipschitz; the check must notice.
    original = fast_layered.mean_fields

    def jumpy(model, lim, W, t=0.0):
        fields, b = original(model, lim, W, t)
        return fields, [x + 0.5 * (w > w.mean()).to(x.dtype) for x, w in zip(b, W)]

    monkeypatch.setattr(fast_layered, "mean_fields", jumpy)
    with pytest.raises(AssertionError, match="drift changed"):
        checks.check_layered_lipschitz(load_instance("default").atomic(2), n_pairs=2,
                                       amplitude=0.01, splits=8)


def test_a_drift_scaled_twice_makes_verify_report_c11_as_failing(monkeypatch):
    # verify's C11 runs both halves: the discontinuity off layered laws still
    # holds here, so only the Lipschitz half can turn the claim red. Planted
    # bug: the layered drift multiplied by N^2 once too often (N = 32).
    from mfdeep.claims import RunConfig, run_claim

    original = fast_layered.mean_fields

    def rescaled(model, lim, W, t=0.0):
        fields, b = original(model, lim, W, t)
        return fields, [32**2 * x for x in b]

    monkeypatch.setattr(fast_layered, "mean_fields", rescaled)
    result = run_claim("C11", load_instance("exact"), RunConfig(level="quick"))
    assert not result.holds
    assert "drift changed" in result.details["layered_lipschitz"]["error"]
    assert min(result.details["jumps"]) >= 0.5


def test_a_backward_pass_that_forgets_1_over_n_is_caught_by_the_exact_gradient(
        monkeypatch):
    # The forward-mode gradient does not use the backward recursion, so a bug
    # there (G_l summed, not averaged, over the next layer) shows as exact
    # rational mismatches.
    import mfdeep.reference.network as ref_network

    def unaveraged(bound, net, J, JL):
        N, L = net.N, net.L
        G = {L: [v[1] for v in JL]}
        for l in range(L - 1, 1, -1):
            G[l] = [sum(J[l - 1][i][j][1] * G[l + 1][j] for j in range(N))
                    for i in range(N)]
        return G

    monkeypatch.setattr(ref_network, "backward", unaveraged)
    with pytest.raises(AssertionError, match="backprop drift differs"):
        checks.check_exact_gradient_scaling(with_depth(load_instance("exact"), 3), N=2)


def test_an_underestimated_constant_is_caught_by_the_nondegeneracy_bound(monkeypatch):
    # Canary: with K = 0 (and a constant schedule, so c = 0) the proposition
    # would promise movement beta * s, more than a limit whose drift slows
    # down as the risk falls delivers.
    import mfdeep.reference.constants as constants

    original = constants.contraction_constant

    def zero_K(*args, **kwargs):
        cc = original(*args, **kwargs)
        return constants.ContractionConstant(0.0, [0.0] * len(cc.K_layers), cc.constants)

    monkeypatch.setattr(constants, "contraction_constant", zero_K)
    with pytest.raises(AssertionError, match="less than Proposition 6.5 guarantees"):
        checks.check_nondegeneracy_bound(load_instance("default").atomic(3), 1.0)


def test_an_overestimated_initial_speed_is_caught_by_the_nondegeneracy_bound(
        monkeypatch):
    # Canary: beta 20 % too large promises more movement near s = 0 than the
    # limit makes; the check samples the window (0, 2 beta / c) where the
    # bound is positive, so it must notice.
    original = checks._initial_speed
    monkeypatch.setattr(checks, "_initial_speed",
                        lambda *args: [1.2 * b for b in original(*args)])
    with pytest.raises(AssertionError, match="less than Proposition 6.5 guarantees"):
        checks.check_nondegeneracy_bound(load_instance("default").atomic(3), 1.0)
