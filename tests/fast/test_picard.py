"""Picard iteration on a time grid: convergence, uniqueness, discretisation order."""

import torch

import mfdeep.fast.picard as picard_module
from mfdeep.fast.layered import atomic_limit, solve_limit
from mfdeep.fast.model import TorchModel
from mfdeep.fast.picard import constant_flow, distance, picard
from mfdeep.model import load_instance

EPS64 = torch.finfo(torch.float64).eps


def _model():
    return TorchModel(load_instance("default").atomic(3))


def test_picard_reaches_a_fixed_point_with_round_off_residual():
    model = _model()
    result = picard(model, 2.0, n_grid=32)
    assert result.converged
    # The residual d_0(Psi G, G) of the last iterate: a few hundred roundings.
    assert result.residual <= 1e3 * EPS64
    # Convergence is faster than geometric, as (KT)^n / n! predicts: the
    # successive distances fall by ever larger factors.
    d = result.successive
    assert d[0] > 1e-2
    assert d[6] / d[5] < d[2] / d[1]


def test_picard_from_different_starts_reaches_the_same_fixed_point():
    model = _model()
    lim = atomic_limit(model)
    a = picard(model, 2.0, n_grid=32)
    shifted = [f + 0.5 for f in constant_flow(lim.initial(), 33)]
    b = picard(model, 2.0, n_grid=32, start=shifted)
    assert b.converged
    assert distance(lim, a.flow, b.flow, a.times) <= 1e3 * EPS64


def test_the_uniqueness_check_catches_a_picard_map_that_forgets_w0(monkeypatch):
    # Canary: a Picard map integrating from the flow's own value at t = 0
    # has a fixed point for every initial value, so two starts disagree.
    model = _model()
    lim = atomic_limit(model)
    original = picard_module.picard_map

    def forgetful(model, lim, flow, times):
        out = original(model, lim, flow, times)
        w0 = lim.initial()
        return [o - w[None] + f[0][None] for o, w, f in zip(out, w0, flow)]

    monkeypatch.setattr(picard_module, "picard_map", forgetful)
    a = picard(model, 2.0, n_grid=16)
    shifted = [f + 0.5 for f in constant_flow(lim.initial(), 17)]
    b = picard(model, 2.0, n_grid=16, start=shifted)
    assert distance(lim, a.flow, b.flow, a.times) > 0.1


def test_the_fixed_point_converges_to_the_mv_solution_at_second_order():
    model = _model()
    exact = solve_limit(model, 2.0, dt=2.0 / 512, record_states=True).states[-1]
    errs = []
    for n_grid in (16, 32, 64):
        flow = picard(model, 2.0, n_grid=n_grid).flow
        errs.append(max(float((f[-1] - e).abs().max()) for f, e in zip(flow, exact)))
    # Trapezoidal rule: ratio 4 per halving; band [3, 5] at these grids.
    assert all(3.0 <= errs[k] / errs[k + 1] <= 5.0 for k in range(2)), errs


def test_measured_contraction_ratios_shrink_with_lambda():
    model = _model()
    small = picard(model, 2.0, n_grid=16, lam=0.0, max_iter=6)
    large = picard(model, 2.0, n_grid=16, lam=20.0, max_iter=6)
    assert max(large.ratios[:4]) < max(small.ratios[:4])
