"""Validated Arb enclosures of atomic MV solutions (C5, C6 certificates)."""

import pytest

from mfdeep.claims import certified_containment
from mfdeep.model import load_instance
from mfdeep.reference import mv as mv_module
from mfdeep.reference.certify import CertificationError, certify
from mfdeep.reference.contexts import MPOps
from mfdeep.reference.mv import LayeredSystem, taylor_integrate


def test_the_enclosure_contains_an_independent_high_precision_solution():
    instance = load_instance("exact")
    cert = certify(instance)
    ref = taylor_integrate(LayeredSystem, instance, instance.T, MPOps(40), degree=12,
                           tol=1e-30)
    assert cert.max_radius() < 1e-8
    for ball, v in zip(cert.final(), ref.states[-1]):
        # The 40-digit solution is far more accurate than the ball is wide.
        assert abs(float(v - ball.mid().mid())) <= float(ball.rad())


def test_the_fast_solution_lies_in_the_default_certificate():
    instance = load_instance("default").atomic(2)
    cert = certify(instance)
    strict, tolerant, excess = certified_containment(instance, cert)
    assert strict and tolerant and excess == 0.0
    assert cert.max_radius() < 1e-3


def test_a_perturbed_drift_gives_an_enclosure_that_misses_the_solution(monkeypatch):
    # Canary: certify a system whose drift is shifted by 1e-4; the true
    # solution must fall outside its (narrow) enclosure.
    instance = load_instance("exact")
    truth = certify(instance)
    original = LayeredSystem.drift

    def shifted(self, flat, t):
        return [f + 1e-4 for f in original(self, flat, t)]

    monkeypatch.setattr(mv_module.LayeredSystem, "drift", shifted)
    wrong = certify(instance)
    assert any(not w.overlaps(b) for w, b in zip(wrong.final(), truth.final()))


def test_an_impossible_step_schedule_raises_a_named_error():
    with pytest.raises(CertificationError, match="no a-priori box"):
        certify(load_instance("default").atomic(2), h=2.0, degree=2, max_halvings=0)
