"""Checks of layered factorisation (claim C7) on solutions of the path system.

Given the general path system solved from the product law (one trajectory per
path atom and coordinate), three checks, each returning data:

* :func:`dependence_report` -- the trajectory of w_l on a path atom depends
  only on the layered key of that atom (its own initial atom, and the
  endpoint feature atom for the first and last trained layers): within each
  key, all trajectories agree;
* :func:`compare_with_layered` -- those trajectories equal the layered
  solution's, key by key;
* :func:`product_report` -- the path law is the product of its layer-block
  laws: P(values) = prod over blocks of P(block values).

Trajectories are compared by a caller-given ``distance`` (exact equality of
series coefficients for rationals, a maximum absolute coefficient difference
for floats).
"""

from __future__ import annotations

from collections import defaultdict


def layered_key(L, labels, l):
    """Layered key (see :mod:`.layered`) of path atom ``labels`` for layer ``l``."""
    if L == 2:
        return (labels[0], labels[1], labels[2])
    if l == 1:
        return (labels[0], labels[1])
    if l == L - 1:
        return (labels[L - 1], labels[L])
    return (labels[l],)


def _trajectories(path_system, Y):
    """Map (atom, layer) -> tuple of the coordinates' values (series or numbers)."""
    out = defaultdict(list)
    for (a, l, c), y in zip(path_system.layout, Y):
        out[(a, l)].append(y)
    return {k: tuple(v) for k, v in out.items()}


def dependence_report(path_system, Y, distance):
    """Largest distance between trajectories of path atoms sharing a layered key."""
    L = path_system.instance.L
    labels = path_system.law0.labels
    traj = _trajectories(path_system, Y)
    first, worst, groups = {}, 0.0, 0
    for (a, l), w in traj.items():
        key = (l, layered_key(L, labels[a], l))
        if key not in first:
            first[key] = w
            groups += 1
            continue
        worst = max(worst, max(distance(u, v) for u, v in zip(w, first[key])))
    return {"max_within_key_distance": worst, "keys": groups, "atoms": len(labels)}


def compare_with_layered(path_system, Y, layered_system, YL, distance):
    """Largest distance between path trajectories and the layered solution."""
    L = path_system.instance.L
    labels = path_system.law0.labels
    layered = {}
    for (l, k, c), y in zip(layered_system.layout, YL):
        layered.setdefault((l, k), []).append(y)
    worst = 0.0
    for (a, l), w in _trajectories(path_system, Y).items():
        ref = layered[(l, layered_key(L, labels[a], l))]
        worst = max(worst, max(distance(u, v) for u, v in zip(w, ref)))
    return {"max_path_vs_layered_distance": worst}


def _blocks(L):
    """Coordinate blocks of a layered law: (theta0, w1), w_l, (w_{L-1}, thetaL).

    For L = 2 the law of (theta0, w1, thetaL) is one block; what layering
    asks of it is that theta0 and thetaL be independent, so the blocks
    compared are (theta0,) and (thetaL,).
    """
    if L == 2:
        return [(0,), (2,)]
    return [(0, 1)] + [(l,) for l in range(2, L - 1)] + [(L - 1, L)]


def product_report(path_system, Y, fingerprint):
    """Compare the joint law of the path values with the product of block laws.

    ``fingerprint`` maps a value (number or series) to something hashable;
    exact rationals give exact fingerprints. Returns the largest
    |P(joint) - prod P(blocks)| over the joint support and over all block
    combinations (a combination missing from the joint has P(joint) = 0),
    so 0 means the path law is exactly the product. For L = 2 the single
    block is (theta0, w1, thetaL) and the check is that theta0 and thetaL
    are independent.
    """
    L = path_system.instance.L
    law = path_system.law0
    traj = _trajectories(path_system, Y)
    blocks = _blocks(L)
    joint, marg = defaultdict(lambda: 0), [defaultdict(lambda: 0) for _ in blocks]
    for a, p in enumerate(law.probs):
        coords = [tuple(fingerprint(v) for v in law.values[a][0])]
        coords += [tuple(fingerprint(v) for v in traj[(a, l)]) for l in range(1, L)]
        coords += [tuple(fingerprint(v) for v in law.values[a][L])]
        key = tuple(tuple(coords[c] for c in b) for b in blocks)
        joint[key] += p
        for m, part in zip(marg, key):
            m[part] += p
    worst = 0
    combos = [[]]
    for m in marg:
        combos = [c + [v] for c in combos for v in m]
    for combo in combos:
        prod = 1
        for m, part in zip(marg, combo):
            prod = prod * m[part]
        worst = max(worst, abs(joint.get(tuple(combo), 0) - prod))
    return {"max_joint_minus_product": worst, "joint_support": len(joint),
            "product_support": len(combos)}
