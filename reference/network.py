"""The finite network of MODEL.md section 1, in reference numbers (small N).

Notation: ``theta0[i]`` (feature of neuron i of hidden 1), ``W[l-1][i][j]``
(weight of edge i -> j between hidden l and l+1, l = 1 .. L-1),
``thetaL[j]`` (feature of neuron j of hidden L); ``H[l-1][i]`` the state of
neuron i of hidden l, ``G[l]`` the backward signal of hidden l (N times
d yhat / d H_l); the drift ``b[l-1][i][j]`` is the population gradient flow
velocity of W_l(i, j):

    b^N_l(i, j) = -alpha(t) E_P[ dl(Y, yhat(X)) dw sigma_l(H_l(X, i), W_l(i, j))
                                 G_{l+1}(X, j) ].

The loops are plain Python so that the numbers may be exact rationals,
mpmath values, Arb balls or power series. Source: proofs_notes/01_network.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction


@dataclass
class FiniteNetwork:
    """Features and weights of one network; entries are tuples of numbers."""

    theta0: list
    W: list
    thetaL: list

    @property
    def N(self):
        return len(self.theta0)

    @property
    def L(self):
        return len(self.W) + 1

    def convert(self, ops):
        """The same network with every entry converted by ``ops.convert``."""
        cv = lambda v: tuple(ops.convert(a) for a in v)  # noqa: E731
        return FiniteNetwork([cv(v) for v in self.theta0],
                             [[[cv(v) for v in row] for row in Wl] for Wl in self.W],
                             [cv(v) for v in self.thetaL])


def sample_network(instance, N, seed):
    """Draw a width-``N`` network with exact (Fraction) entries.

    Atomic laws draw atoms; continuous laws draw floats from ``random.Random``
    that are then read exactly as dyadic rationals. Small N only: this is the
    reference, not the fast backend.
    """
    rng = random.Random(seed)

    def draw(law):
        if law.kind == "atoms":
            atomic = law.law
            k = rng.choices(range(atomic.n), weights=[float(w) for w in atomic.weights])[0]
            return tuple(atomic.points[k])
        if law.kind == "gaussian":
            return tuple(Fraction(rng.gauss(float(m), float(s)))
                         for m, s in zip(law.mean, law.std))
        return tuple(Fraction(rng.uniform(float(a), float(b)))
                     for a, b in zip(law.low, law.high))

    theta0 = [draw(instance.nu0) for _ in range(N)]
    W = [[[draw(law) for _ in range(N)] for _ in range(N)] for law in instance.m]
    thetaL = [draw(instance.nuL) for _ in range(N)]
    return FiniteNetwork(theta0, W, thetaL)


def forward(bound, net, x):
    """States ``H[l-1][i]`` (l = 1 .. L), yhat, and the edge-map tables at ``x``.

    ``J[l-1][i][j]`` is ``(sigma_l, dh sigma_l, dw sigma_l...)`` at
    ``(H_l(x, i), W_l(i, j))`` and ``JL[j]`` is ``(sigmaL, dh sigmaL)`` at
    ``(H_L(x, j), thetaL(j))``: the backward pass and the drift reuse them.
    """
    N, L = net.N, net.L
    inv_N = bound.ops.rational(1, N)
    H = [[bound.sigma0(*x, *net.theta0[i]) for i in range(N)]]
    J = []
    for l in range(1, L):
        s, Wl, Hl = bound.sigma_all[l - 1], net.W[l - 1], H[-1]
        table = [[s(Hl[i], *Wl[i][j]) for j in range(N)] for i in range(N)]
        J.append(table)
        H.append([sum(table[i][j][0] for i in range(N)) * inv_N for j in range(N)])
    JL = [bound.sigmaL_all(H[-1][j], *net.thetaL[j]) for j in range(N)]
    yhat = sum(v[0] for v in JL) * inv_N
    return H, yhat, J, JL


def backward(bound, net, J, JL):
    """Backward signals ``G[l]`` for l = 2 .. L (a dict keyed by the layer)."""
    N, L = net.N, net.L
    inv_N = bound.ops.rational(1, N)
    G = {L: [v[1] for v in JL]}
    for l in range(L - 1, 1, -1):
        table, Gn = J[l - 1], G[l + 1]
        G[l] = [sum(table[i][j][1] * Gn[j] for j in range(N)) * inv_N
                for i in range(N)]
    return G


def network_drift(bound, net, t=0):
    """Gradient-flow drift ``b[l-1][i][j]`` (tuples) and diagnostics.

    Returns
    -------
    b : list over l = 1 .. L-1 of N x N lists of p-tuples
    info : dict with ``yhat`` (per data point) and ``risk`` (E_P loss)
    """
    N, L = net.N, net.L
    zero = bound.ops.rational(0)
    acc = [[[None] * N for _ in range(N)] for _ in range(L - 1)]
    yhats, risk = [], zero
    for x, y, P in zip(bound.x, bound.y, bound.P):
        H, yhat, J, JL = forward(bound, net, x)
        G = backward(bound, net, J, JL)
        e = bound.dloss(y, yhat) * P
        yhats.append(yhat)
        risk = risk + bound.loss(y, yhat) * P
        for l in range(1, L):
            table, Gn = J[l - 1], G[l + 1]
            for i in range(N):
                for j in range(N):
                    f = Gn[j] * e
                    g = tuple(d * f for d in table[i][j][2:])
                    old = acc[l - 1][i][j]
                    acc[l - 1][i][j] = g if old is None else tuple(
                        a + c for a, c in zip(old, g))
    a = -bound.alpha(t)
    b = [[[tuple(v * a for v in acc[l][i][j]) for j in range(N)] for i in range(N)]
         for l in range(L - 1)]
    return b, {"yhat": yhats, "risk": risk}
