"""Layered ("special") atomic laws and the layered drift (MODEL.md section 3).

A layered state stores one weight per *key* of each trained layer:

=========  ==================  ==========================================
L          layer l             key
=========  ==================  ==========================================
L >= 3     1                   (i0, i1): input-feature atom, initial atom
L >= 3     2 .. L-2            (il,): initial atom
L >= 3     L-1                 (i, iL): initial atom, output-feature atom
L = 2      1                   (i0, i1, iL)
=========  ==================  ==========================================

with probability of a key the product of the atoms' weights. The layered
drift (L >= 3; hbar are mean states, gbar mean backward signals):

    hbar_2(x)      = E[ sigma_1(sigma0(x, Theta0), W_1) ]
    hbar_{l+1}(x)  = E[ sigma_l(hbar_l(x), W_l) ]                     2 <= l <= L-2
    hbar_L(x; tL)  = E[ sigma_{L-1}(hbar_{L-1}(x), W_{L-1}) | ThetaL = tL ]
    ybar(x)        = E[ sigmaL(hbar_L(x; ThetaL), ThetaL) ]
    gbar_L(x; tL)  = dh sigmaL(hbar_L(x; tL), tL)
    gbar_{L-1}(x)  = E[ dh sigma_{L-1}(hbar_{L-1}(x), W_{L-1}) gbar_L(x; ThetaL) ]
    gbar_l(x)      = E[ dh sigma_l(hbar_l(x), W_l) ] gbar_{l+1}(x)     2 <= l <= L-2
    bbar_l         = -alpha E_P[ dl(Y, ybar(X)) dw sigma_l(state_l, w) gbar_{l+1} ]

For L = 2, hbar_2(x; tL) = E[sigma_1(sigma0(x, Theta0), W_1) | ThetaL = tL].
Source: proofs_notes/03_layered.md.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from mfdeep.reference.path import PathLaw


@dataclass
class LayeredState:
    """Atoms of the features and the per-key weights of each trained layer."""

    theta0: list
    p0: list
    thetaL: list
    pL: list
    pm: list  # pm[l-1][i]: weight of atom i of m_l
    W: list  # W[l-1]: dict key -> p-tuple

    @property
    def L(self):
        return len(self.W) + 1

    def keys(self, l):
        """Keys of layer ``l`` (1-based) in a fixed order."""
        L = self.L
        n0, nL, nm = len(self.p0), len(self.pL), len(self.pm[l - 1])
        if L == 2:
            return list(itertools.product(range(n0), range(nm), range(nL)))
        if l == 1:
            return list(itertools.product(range(n0), range(nm)))
        if l == L - 1:
            return list(itertools.product(range(nm), range(nL)))
        return [(i,) for i in range(nm)]

    def key_prob(self, l, key):
        L, pm = self.L, self.pm[l - 1]
        if L == 2:
            return self.p0[key[0]] * pm[key[1]] * self.pL[key[2]]
        if l == 1:
            return self.p0[key[0]] * pm[key[1]]
        if l == L - 1:
            return pm[key[0]] * self.pL[key[1]]
        return pm[key[0]]

    def replace_weights(self, W):
        return LayeredState(self.theta0, self.p0, self.thetaL, self.pL, self.pm, W)


def initial_layered_state(bound, nu0, m, nuL):
    """The product law nu0 x m_1 x ... x nuL as a layered state (time 0)."""
    theta0, p0 = bound.law(nu0)
    thetaL, pL = bound.law(nuL)
    laws = [bound.law(ml) for ml in m]
    L = len(m) + 1
    state = LayeredState(theta0, p0, thetaL, pL, [w for _, w in laws],
                         [{} for _ in range(L - 1)])
    for l in range(1, L):
        pts = laws[l - 1][0]
        pos = 1 if (L == 2 or l == 1) else 0
        state.W[l - 1] = {k: pts[k[pos]] for k in state.keys(l)}
    return state


def layered_drift(bound, state, t=0):
    """Layered drift: a list over layers of dicts key -> p-tuple, and diagnostics.

    Returns
    -------
    b : list over l = 1 .. L-1 of dict key -> p-tuple
    info : dict with ``yhat`` (ybar per data point)
    """
    L = state.L
    if L == 2:
        return _layered_drift_two(bound, state, t)
    keys = [state.keys(l) for l in range(1, L)]
    probs = [[state.key_prob(l, k) for k in keys[l - 1]] for l in range(1, L)]
    W = state.W
    nL = len(state.pL)
    acc = [dict() for _ in range(L - 1)]
    yhats = []
    for x, y, P in zip(bound.x, bound.y, bound.P):
        # Forward mean fields; J[l][k] = (sigma_l, dh, dw...) at layer l's key k.
        h1 = [bound.sigma0(*x, *th) for th in state.theta0]
        J = {1: {k: bound.sigma_all[0](h1[k[0]], *W[0][k]) for k in keys[0]}}
        hbar = {2: sum(J[1][k][0] * p for k, p in zip(keys[0], probs[0]))}
        for l in range(2, L - 1):
            s = bound.sigma_all[l - 1]
            J[l] = {k: s(hbar[l], *W[l - 1][k]) for k in keys[l - 1]}
            hbar[l + 1] = sum(J[l][k][0] * p for k, p in zip(keys[l - 1], probs[l - 1]))
        s_last, pm_last = bound.sigma_all[L - 2], state.pm[L - 2]
        J[L - 1] = {k: s_last(hbar[L - 1], *W[L - 2][k]) for k in keys[L - 2]}
        hL = [sum(J[L - 1][(i, j)][0] * pm_last[i] for i in range(len(pm_last)))
              for j in range(nL)]
        JL = [bound.sigmaL_all(hL[j], *state.thetaL[j]) for j in range(nL)]
        yhat = sum(JL[j][0] * state.pL[j] for j in range(nL))
        yhats.append(yhat)

        # Backward mean fields.
        gL = [JL[j][1] for j in range(nL)]
        gbar = {L - 1: sum(J[L - 1][k][1] * gL[k[1]] * p
                           for k, p in zip(keys[L - 2], probs[L - 2]))}
        for l in range(L - 2, 1, -1):
            mean_d = sum(J[l][k][1] * p for k, p in zip(keys[l - 1], probs[l - 1]))
            gbar[l] = mean_d * gbar[l + 1]

        # Drift contributions of this data point.
        e = bound.dloss(y, yhat) * P
        for l in range(1, L):
            for k in keys[l - 1]:
                if l == 1:
                    g = gbar[2]
                elif l == L - 1:
                    g = gL[k[1]]
                else:
                    g = gbar[l + 1]
                _accumulate(acc[l - 1], k, J[l][k][2:], g * e)
    return _finish(bound, acc, t), {"yhat": yhats}


def _layered_drift_two(bound, state, t):
    keys = state.keys(1)
    W, pm = state.W[0], state.pm[0]
    nL = len(state.pL)
    acc, yhats = [dict()], []
    n0, nm = len(state.p0), len(pm)
    for x, y, P in zip(bound.x, bound.y, bound.P):
        h1 = [bound.sigma0(*x, *th) for th in state.theta0]
        J = {k: bound.sigma_all[0](h1[k[0]], *W[k]) for k in keys}
        h2 = [sum(J[(i0, i1, j)][0] * state.p0[i0] * pm[i1]
                  for i0 in range(n0) for i1 in range(nm)) for j in range(nL)]
        JL = [bound.sigmaL_all(h2[j], *state.thetaL[j]) for j in range(nL)]
        yhat = sum(JL[j][0] * state.pL[j] for j in range(nL))
        yhats.append(yhat)
        e = bound.dloss(y, yhat) * P
        for k in keys:
            _accumulate(acc[0], k, J[k][2:], JL[k[2]][1] * e)
    return _finish(bound, acc, t), {"yhat": yhats}


def _accumulate(table, key, grad, factor):
    term = tuple(g * factor for g in grad)
    old = table.get(key)
    table[key] = term if old is None else tuple(a + b for a, b in zip(old, term))


def _finish(bound, acc, t):
    minus_alpha = -bound.alpha(t)
    return [{k: tuple(v * minus_alpha for v in vec) for k, vec in layer.items()}
            for layer in acc]


def layered_to_path_law(state, ops):
    """Embed a layered state as a path law, labelled by the layered keys.

    Path atoms are (i0, i1, ..., i_{L-1}, iL); coordinate l carries the label
    of its layer's key, so conditioning on labels is conditioning on the
    layered identities.
    """
    L = state.L
    ranges = ([range(len(state.p0))] + [range(len(p)) for p in state.pm]
              + [range(len(state.pL))])
    labels, values, probs = [], [], []
    for idx in itertools.product(*ranges):
        i0, iL = idx[0], idx[-1]
        keys = []
        for l in range(1, L):
            if L == 2:
                keys.append((i0, idx[1], iL))
            elif l == 1:
                keys.append((i0, idx[1]))
            elif l == L - 1:
                keys.append((idx[l], iL))
            else:
                keys.append((idx[l],))
        labels.append((i0, *[(l, k) for l, k in enumerate(keys, 1)], iL))
        values.append((state.theta0[i0], *[state.W[l - 1][k] for l, k in
                                           enumerate(keys, 1)], state.thetaL[iL]))
        prob = state.p0[i0] * state.pL[iL]
        for l in range(1, L):
            prob = prob * state.pm[l - 1][idx[l]]
        probs.append(prob)
    return PathLaw(labels, values, probs)
