"""Atomic path laws and the general path-centric drift (MODEL.md section 2).

A path is pi = (theta0, w_1, ..., w_{L-1}, thetaL): coordinate 0 is the input
feature, coordinate l (1 <= l <= L-1) the weight of edge layer l, coordinate L
the output feature. An atomic path law is a list of atoms, each with a label
per coordinate, the coordinate values and a probability. Conditional
expectations condition on labels:

* the downstream part D_l(pi) = coordinates l .. L identifies the neuron of
  hidden l when its incoming edges are averaged (forward pass);
* the upstream part U_l(pi) = coordinates 0 .. l-1 identifies it when its
  outgoing edges are averaged (backward pass).

General drift (all conditional expectations over the path law mu):

    h_1(x; pi)     = sigma0(x, theta0)
    h_{l+1}(x; pi) = E[ sigma_l(h_l(x; Pi), W_l(Pi)) | D_{l+1}(Pi) = D_{l+1}(pi) ]
    yhat(x)        = E[ sigmaL(h_L(x; Pi), thetaL(Pi)) ]
    g_L(x; pi)     = dh sigmaL(h_L(x; pi), thetaL)
    g_l(x; pi)     = E[ dh sigma_l(h_l(x; Pi), W_l(Pi)) g_{l+1}(x; Pi) | U_l(Pi) = U_l(pi) ]
    b_l[mu](pi)    = -alpha(t) E_P[ dl(Y, yhat(X)) dw sigma_l(h_l(X; pi), w_l) g_{l+1}(X; pi) ]

Source: proofs_notes/02_path_drift.md. This module shares no code with the
finite network (:mod:`.network`) or the layered drift (:mod:`.layered`): the
identities between them (claim C3) are checked, not built in.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass


@dataclass
class PathLaw:
    """Atoms ``labels[a]`` (L+1 hashables), ``values[a]`` (L+1 tuples), ``probs[a]``."""

    labels: list
    values: list
    probs: list

    @property
    def L(self):
        return len(self.values[0]) - 1

    def __len__(self):
        return len(self.values)


def _conditional(keys, contributions, probs):
    """E[contribution | key] for every atom: sum over the key's atoms / its mass."""
    num, den = {}, {}
    for k, c, p in zip(keys, contributions, probs):
        num[k] = num[k] + c * p if k in num else c * p
        den[k] = den[k] + p if k in den else p
    inv = {k: 1 / v for k, v in den.items()}
    return [num[k] * inv[k] for k in keys]


def path_drift(bound, law, t=0):
    """General path drift ``b[a][l-1]`` (a p-tuple) at every atom, and diagnostics.

    ``bound`` is a :class:`~mfdeep.reference.bound.Bound`; ``law`` a
    :class:`PathLaw` whose values are in ``bound.ops`` numbers (or series).

    Returns
    -------
    b : list over atoms of lists over l = 1 .. L-1 of p-tuples
    info : dict with ``yhat`` per data point, ``h`` and ``g`` of the last point
    """
    L, n = law.L, len(law)
    vals, probs, labels = law.values, law.probs, law.labels
    down = {l: [lab[l:] for lab in labels] for l in range(2, L + 1)}
    up = {l: [lab[:l] for lab in labels] for l in range(2, L)}
    acc = [[None] * (L - 1) for _ in range(n)]
    yhats = []
    for x, y, P in zip(bound.x, bound.y, bound.P):
        # Forward: h[l][a] for l = 1 .. L; J[l][a] = (sigma_l, dh, dw...) there.
        h = {1: [bound.sigma0(*x, *v[0]) for v in vals]}
        J = {}
        for l in range(1, L):
            s = bound.sigma_all[l - 1]
            J[l] = [s(h[l][a], *vals[a][l]) for a in range(n)]
            h[l + 1] = _conditional(down[l + 1], [j[0] for j in J[l]], probs)
        JL = [bound.sigmaL_all(h[L][a], *vals[a][L]) for a in range(n)]
        yhat = sum(JL[a][0] * probs[a] for a in range(n))
        yhats.append(yhat)

        # Backward: g[l][a] for l = L .. 2.
        g = {L: [j[1] for j in JL]}
        for l in range(L - 1, 1, -1):
            contrib = [J[l][a][1] * g[l + 1][a] for a in range(n)]
            g[l] = _conditional(up[l], contrib, probs)

        # Drift contributions of this data point.
        e = bound.dloss(y, yhat) * P
        for a in range(n):
            for l in range(1, L):
                f = g[l + 1][a] * e
                term = tuple(dw * f for dw in J[l][a][2:])
                old = acc[a][l - 1]
                acc[a][l - 1] = term if old is None else tuple(
                    u + v for u, v in zip(old, term))
    minus_alpha = -bound.alpha(t)
    b = [[tuple(v * minus_alpha for v in acc[a][l]) for l in range(L - 1)]
         for a in range(n)]
    return b, {"yhat": yhats, "h": h, "g": g}


def empirical_path_law(net, ops):
    """The path law of a finite network, labelled by neurons and edges.

    Paths (i_1, ..., i_L) are uniform on [N]^L; theta0 carries the label i_1,
    w_l the label (i_l, i_{l+1}), thetaL the label i_L.
    """
    N, L = net.N, net.L
    p = ops.rational(1, N**L)
    labels, values = [], []
    for idx in itertools.product(range(N), repeat=L):
        labels.append((idx[0],) + tuple((idx[l], idx[l + 1]) for l in range(L - 1))
                      + (idx[-1],))
        values.append((net.theta0[idx[0]],)
                      + tuple(net.W[l][idx[l]][idx[l + 1]] for l in range(L - 1))
                      + (net.thetaL[idx[-1]],))
    return PathLaw(labels, values, [p] * len(values))


def product_path_law(bound, nu0, m, nuL):
    """The product law nu0 x m_1 x ... x m_{L-1} x nuL with one label per coordinate.

    Atom labels are the atom indices (a_0, a_1, ..., a_L) of each factor;
    values and probabilities are converted into ``bound.ops`` numbers.
    """
    factors = [bound.law(f) for f in (nu0, *m, nuL)]
    labels, values, probs = [], [], []
    for idx in itertools.product(*(range(len(pts)) for pts, _ in factors)):
        labels.append(tuple(idx))
        values.append(tuple(factors[c][0][k] for c, k in enumerate(idx)))
        prob = factors[0][1][idx[0]]
        for c in range(1, len(idx)):
            prob = prob * factors[c][1][idx[c]]
        probs.append(prob)
    return PathLaw(labels, values, probs)
