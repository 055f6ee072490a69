"""Exact Taylor-Picard polynomials and the high-precision Taylor integrator."""

import math

import numpy as np
import pytest

from mfdeep.model import load_instance
from mfdeep.reference.contexts import ArbOps, ExactOps, MPOps
from mfdeep.reference.mv import (LayeredSystem, PathSystem, taylor_integrate,
                                 taylor_picard)

from .helpers import exact_instance


@pytest.mark.parametrize("n", [2, 4])
def test_exact_taylor_picard_matches_high_precision_to_order_n_plus_one(n):
    instance = exact_instance(3)
    _, P = taylor_picard(LayeredSystem, instance, n, ExactOps())
    exact, mp = ExactOps(), MPOps(40)
    times, errors = [], []
    for j in range(3, 7):
        t = instance.T / 2**j
        sol = taylor_integrate(LayeredSystem, instance, t, mp, degree=12, tol=1e-30)
        y = sol.states[-1]
        values = [p(exact.convert(t)) for p in P]
        err = max(abs(float(mp.ctx.mpf(int(q.p)) / int(q.q) - v))
                  for q, v in zip(values, y))
        times.append(float(t))
        errors.append(err)
    # The remainder of a degree-n Taylor polynomial is c t^(n+1) + O(t^(n+2)):
    # the log-log slope tends to n + 1 as t -> 0. Band: +-0.3 at these t,
    # where the next term changes the slope by about t c_{n+2}/c_{n+1}.
    slope = np.polyfit(np.log(times), np.log(errors), 1)[0]
    assert abs(slope - (n + 1)) < 0.3, (slope, errors)


def test_high_precision_solution_meets_its_error_estimate():
    # The mpmath solve is checked against an independent, far tighter solve
    # in Arb numbers (another number system, another degree and step ladder).
    instance = load_instance("l2").sampled(2, seed=3)
    loose = taylor_integrate(LayeredSystem, instance, instance.T, MPOps(30),
                             degree=8, tol=1e-9)
    tight = taylor_integrate(LayeredSystem, instance, instance.T, ArbOps(128),
                             degree=16, tol=1e-20)
    diff = max(abs(float(a - b)) for a, b in zip(loose.states[-1], tight.states[-1]))
    assert tight.error_estimate < 1e-18
    assert diff <= loose.error_estimate + tight.error_estimate
    # The weights moved, so the comparison is not between constants.
    moved = max(abs(float(a - b)) for a, b in zip(tight.states[-1], tight.states[0]))
    assert moved > 1e-2


def test_picard_iterate_k_is_exact_through_degree_k():
    instance = exact_instance(4)
    _, low = taylor_picard(LayeredSystem, instance, 3, ExactOps())
    _, high = taylor_picard(LayeredSystem, instance, 6, ExactOps())
    assert all(a.c == b.c[:4] for a, b in zip(low, high))
    assert any(b.c[5] != 0 for b in high)


def test_mpmath_series_agree_with_exact_series():
    instance = exact_instance(3)
    _, exact = taylor_picard(PathSystem, instance, 5, ExactOps())
    mp = MPOps(40)
    _, approx = taylor_picard(PathSystem, instance, 5, mp)
    for e, a in zip(exact, approx):
        for q, x in zip(e.c, a.c):
            exact_value = mp.ctx.mpf(int(q.p)) / int(q.q)
            assert abs(float(x - exact_value)) <= 1e-34 * max(1, abs(float(q)))


def test_integrator_refuses_to_loop_forever():
    instance = exact_instance(3)
    with pytest.raises(RuntimeError, match="more than 2 steps"):
        taylor_integrate(LayeredSystem, instance, instance.T, MPOps(30), degree=4,
                         tol=1e-30, max_steps=2)


def test_finite_values_everywhere():
    sol = taylor_integrate(LayeredSystem, exact_instance(2), 1, MPOps(30), degree=8,
                           tol=1e-12)
    assert all(math.isfinite(float(v)) for s in sol.states for v in s)
