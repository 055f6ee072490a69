"""C7: the general path MV system from a product law stays layered (exact)."""

from fractions import Fraction

import pytest

from mfdeep.reference.contexts import ExactOps
from mfdeep.reference.factorisation import (compare_with_layered,
                                            dependence_report, product_report)
from mfdeep.reference.mv import LayeredSystem, PathSystem, taylor_picard

from .helpers import exact_instance, second_exact_instance


def exact_distance(u, v):
    return 0 if u.c == v.c else 1


def fingerprint(s):
    return tuple(s.c) if hasattr(s, "c") else s


@pytest.mark.parametrize("make,L,degree", [(exact_instance, 2, 6),
                                           (exact_instance, 3, 6),
                                           (exact_instance, 4, 5),
                                           (exact_instance, 5, 3),
                                           (second_exact_instance, 3, 4)])
def test_general_mv_from_product_law_stays_layered(make, L, degree):
    instance = make(L)
    ops = ExactOps()
    P, Y = taylor_picard(PathSystem, instance, degree, ops)
    S, YL = taylor_picard(LayeredSystem, instance, degree, ops)

    # Each weight's Taylor polynomial depends only on its layered key ...
    dep = dependence_report(P, Y, exact_distance)
    assert dep["max_within_key_distance"] == 0
    # ... and equals the layered solution's, coefficient by coefficient ...
    assert compare_with_layered(P, Y, S, YL, exact_distance)[
        "max_path_vs_layered_distance"] == 0
    # ... and the path law is exactly the product of its layer-block laws.
    prod = product_report(P, Y, fingerprint)
    assert prod["max_joint_minus_product"] == 0
    assert prod["joint_support"] == prod["product_support"]
    # The weights do move: the check is not about constant trajectories.
    assert any(any(c != 0 for c in y.c[1:]) for y in Y)


def test_a_path_dependent_start_is_detected():
    # Canary: start the path system from a law in which w_2 depends on the
    # input-feature atom too; the factorisation checks must fail.
    instance = exact_instance(3)
    ops = ExactOps()

    class Tangled(PathSystem):
        def initial(self):
            flat = super().initial()
            for k, (a, l, c) in enumerate(self.layout):
                if l == 2:
                    flat[k] = flat[k] + ops.convert(Fraction(
                        self.law0.labels[a][0], 5))
            return flat

    P, Y = taylor_picard(Tangled, instance, 4, ops)
    assert dependence_report(P, Y, exact_distance)["max_within_key_distance"] > 0
    assert product_report(P, Y, fingerprint)["max_joint_minus_product"] > 0
