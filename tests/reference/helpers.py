"""Instances and small builders shared by the reference tests."""

import random
from fractions import Fraction

from mfdeep.model import get_map, load_instance, make_instance, with_depth
from mfdeep.model.laws import atoms


def exact_instance(L):
    """The built-in polynomial instance with ``L`` hidden layers."""
    return with_depth(load_instance("exact"), L)


def second_exact_instance(L):
    """Another polynomial instance: 2-d inputs, the mlp-free cubic map, p = 1.

    Atoms and data differ from ``exact`` so the identities are not tested on
    one configuration only.
    """
    base = load_instance("exact")
    from mfdeep.model import data_set

    data = data_set([["1/3", "-1"], ["-2/3", "1/2"], ["1", "1/4"], ["0", "-1/2"]],
                    ["1", "-1/2", "1/3", "0"], ["1/8", "3/8", "1/4", "1/4"])
    nu0 = atoms([["1/2", "-1/3", "1/4"], ["-1/2", "2/3", "0"], ["1", "1", "-1/4"]],
                ["1/3", "1/3", "1/3"])
    m = [atoms([[Fraction(k, 3)] for k in (-2, 1, 3)], ["1/6", "1/2", "1/3"])
         for _ in range(L - 1)]
    nuL = atoms([["-1"], ["3/2"]], ["1/4", "3/4"])
    return make_instance("exact-b", L, get_map("input", "affine", 2),
                         [get_map("inner", "cubic")] * (L - 1),
                         get_map("output", "linear"), data, nu0, m, nuL,
                         T=base.T)


def perturb_layered(state, ops, seed):
    """A layered state whose weights are moved off the product law at random."""
    rng = random.Random(seed)
    return state.replace_weights([
        {k: tuple(v + ops.convert(Fraction(rng.randint(-6, 6), 12)) for v in w)
         for k, w in layer.items()} for layer in state.W])
