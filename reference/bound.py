"""An instance bound to one reference number system.

Notation: ``sigma0(x, theta)``, ``sigma[l](h, w)``, ``sigmaL(h, theta)`` as in
MODEL.md section 1, with ``dh_sigma[l]``, ``dw_sigma[l][k]``, ``dh_sigmaL``;
``sigma_all[l](h, w)`` returns ``(sigma, dh sigma, dw_0 sigma, ...)`` at once
and ``sigmaL_all(h, theta)`` returns ``(sigmaL, dh sigmaL)``;
``dloss(y, yhat)`` = d l / d yhat; ``alpha(t)``. Vectors (x, theta, w) are
tuples and are splatted into the compiled programs.
"""

from __future__ import annotations

from mfdeep.errors import NotExactError


class Bound:
    """Compiled maps, loss, schedule and data of ``instance`` in ``ops`` numbers."""

    def __init__(self, instance, ops):
        if ops.exact and not instance.is_polynomial:
            raise NotExactError(
                f"instance {instance.name!r} has non-polynomial maps or loss; exact "
                "rationals cannot represent it. Use MPOps or ArbOps"
            )
        self.instance, self.ops, self.L = instance, ops, instance.L
        self.sigma0 = instance.sigma0.value.bind(ops)
        self.sigma = [s.value.bind(ops) for s in instance.sigma]
        self.dh_sigma = [s.d_h.bind(ops) for s in instance.sigma]
        self.dw_sigma = [[d.bind(ops) for d in s.d_w] for s in instance.sigma]
        # Joint programs: (sigma, dh sigma, dw sigma...) sharing subexpressions.
        self.sigma_all = [s.joint.bind(ops) for s in instance.sigma]
        self.sigmaL_all = instance.sigmaL.joint.bind(ops)
        self.sigmaL = instance.sigmaL.value.bind(ops)
        self.dh_sigmaL = instance.sigmaL.d_h.bind(ops)
        self.loss = instance.loss.value.bind(ops)
        self.dloss = instance.loss.d_yhat.bind(ops)
        self.alpha = instance.schedule.program.bind(ops)

        # Data law P: points, targets, weights.
        cv = ops.convert
        self.x = [tuple(cv(v) for v in p) for p in instance.data.x]
        self.y = [cv(v) for v in instance.data.y]
        self.P = [cv(v) for v in instance.data.weights]

    def vec(self, values):
        return tuple(self.ops.convert(v) for v in values)

    def law(self, atomic):
        """``(points, weights)`` of an AtomicLaw in this number system."""
        return [self.vec(p) for p in atomic.points], [self.ops.convert(w)
                                                      for w in atomic.weights]

    def dw(self, l, h, w):
        """Gradient of sigma_l in w at (h, w): a tuple of length p (l is 1-based)."""
        return tuple(d(h, *w) for d in self.dw_sigma[l - 1])
