"""The gradient of the finite network's population risk, by differentiation.

Claim C1 says that N^2 times the gradient of the population risk

    R_N(W) = E_P[ l(Y, yhat(X)) ]

in an inner weight is the backprop drift of MODEL.md section 1 divided by
-alpha(t). :func:`reference.network.network_drift` computes the drift from
the backward recursion; this module computes the gradient without it, by
forward-mode differentiation through the forward pass alone: each weight
coordinate in turn is replaced by the degree-1 power series ``w + s`` and the
coefficient of ``s`` in the risk is the partial derivative. In exact
rationals (polynomial instances) this is the derivative exactly; in mpmath
or Arb it is the derivative to the working precision. Source:
proofs_notes/01_network.md, Lemma 1.2.

Cost: one forward pass per data point and weight coordinate, i.e.
O(p (L-1) N^2 * |P| * (L-1) N^2): small N only.
"""

from __future__ import annotations

from mfdeep.reference.bound import Bound
from mfdeep.reference.network import forward
from mfdeep.reference.series import SeriesOps, make_series


def _risk(bound, net):
    risk = bound.ops.rational(0)
    for x, y, P in zip(bound.x, bound.y, bound.P):
        _, yhat, _, _ = forward(bound, net, x)
        risk = risk + bound.loss(y, yhat) * P
    return risk


def risk_gradient(instance, net, ops):
    """Partial derivatives of R_N in every inner weight coordinate.

    Parameters
    ----------
    instance : Instance
        The model (maps, loss, data law).
    net : FiniteNetwork
        Entries already in ``ops`` numbers (``net.convert(ops)``).
    ops : ExactOps, MPOps or ArbOps
        The number system of the result.

    Returns
    -------
    list over l = 1 .. L-1 of N x N lists of p-tuples: ``grad[l-1][i][j][k]``
    is dR_N / dW_l(i, j)_k.
    """
    sops = SeriesOps(ops, 1)
    bound = Bound(instance, sops)
    one = ops.rational(1)
    grad = []
    for l, Wl in enumerate(net.W):
        rows = []
        for i, row in enumerate(Wl):
            cells = []
            for j, w in enumerate(row):
                parts = []
                for k, wk in enumerate(w):
                    # W_l(i, j)_k -> wk + s; every other entry stays a number.
                    moved = list(w)
                    moved[k] = make_series([wk, one], 1)
                    W = [[list(r) for r in layer] for layer in net.W]
                    W[l][i][j] = tuple(moved)
                    risk = _risk(bound, type(net)(net.theta0, W, net.thetaL))
                    parts.append(risk.c[1])
                cells.append(tuple(parts))
            rows.append(cells)
        grad.append(rows)
    return grad
