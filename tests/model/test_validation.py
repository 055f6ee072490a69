"""Bad input is refused with an error that names the field and the fix."""

import math
import pathlib

import pytest
import sympy

from mfdeep.errors import InstanceError
from mfdeep.model import (atomic_law, compile_expr, data_set, gaussian,
                          get_map, instance_from_dict, load_instance, make_instance,
                          make_map, uniform)
from mfdeep.model.toml_io import BUILTIN_DIR, instance_from_file

try:
    import tomllib
except ImportError:  # pragma: no cover
    import tomli as tomllib


def base_doc():
    return tomllib.loads((BUILTIN_DIR / "exact.toml").read_text())


def test_builtin_documents_are_valid():
    # The base of every mutation below must itself be accepted.
    inst = instance_from_dict(base_doc())
    assert (inst.name, inst.L, inst.is_polynomial) == ("exact", 3, True)


@pytest.mark.parametrize("L", [1, 0, -3])
def test_fewer_than_two_hidden_layers_is_refused(L):
    doc = base_doc()
    doc["L"] = L
    with pytest.raises(InstanceError, match=r"L=.* L >= 2"):
        instance_from_dict(doc)


def test_non_integer_L_is_refused():
    doc = base_doc()
    doc["L"] = 2.5
    with pytest.raises(InstanceError, match="L=2.5"):
        instance_from_dict(doc)


@pytest.mark.parametrize("weights", [["0", "1"], ["-1/2", "3/2"]])
def test_atom_weights_must_be_positive(weights):
    with pytest.raises(InstanceError, match=r"weights\[0\].*not positive"):
        atomic_law([[1], [2]], weights, "laws.nuL")


def test_exact_atom_weights_must_sum_to_one():
    with pytest.raises(InstanceError, match="sum to 3/4 .*normalise"):
        atomic_law([[1], [2]], ["1/2", "1/4"], "laws.nuL")


def test_float_atom_weights_are_renormalised_within_tolerance_only():
    law = atomic_law([[1], [2], [3]], [0.1, 0.2, 0.7])
    assert sum(law.weights) == 1
    with pytest.raises(InstanceError, match="sum to 0.9"):
        atomic_law([[1], [2]], [0.4, 0.5])


def test_atoms_of_different_dimensions_are_refused():
    with pytest.raises(InstanceError, match=r"points\[1\] has dimension 2"):
        atomic_law([[1], [2, 3]])


def test_one_weight_per_atom():
    with pytest.raises(InstanceError, match="2 entries for 3 atoms"):
        atomic_law([[1], [2], [3]], [0.5, 0.5])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_data_are_refused(bad):
    with pytest.raises(InstanceError, match=r"data.points\[1\]\[0\].*not finite"):
        data_set([[0.0], [bad]], [1.0, 2.0])


def test_non_finite_law_parameters_are_refused():
    with pytest.raises(InstanceError, match=r"mean\[0\].*not finite"):
        gaussian([math.nan], [1.0], "laws.m")


def test_unparseable_numbers_are_refused_not_evaluated():
    with pytest.raises(InstanceError, match=r"not a number"):
        data_set([["__import__('os')"]], [1])


def test_data_x_and_y_lengths_must_match():
    with pytest.raises(InstanceError, match="3 points but y has 2"):
        data_set([[0], [1], [2]], [0, 1])


def test_law_dimension_must_match_the_map():
    doc = base_doc()
    doc["laws"]["nuL"] = {"kind": "gaussian", "mean": [0, 0], "std": [1, 1]}
    with pytest.raises(InstanceError, match="nuL has dimension 2 .* dimension 1"):
        instance_from_dict(doc)


def test_input_map_dimension_must_match_the_data():
    inst = load_instance("exact")
    with pytest.raises(InstanceError, match="d_x=1"):
        make_instance("bad", 3, get_map("input", "affine", 2), inst.sigma,
                      inst.sigmaL, inst.data, gaussian([0, 0, 0], [1, 1, 1]),
                      inst.m, inst.nuL)


def test_gaussian_std_and_uniform_bounds_are_checked():
    with pytest.raises(InstanceError, match=r"std\[0\]=0.0 must be positive"):
        gaussian([0], [0])
    with pytest.raises(InstanceError, match="low\\[0\\]=1.0 is not below"):
        uniform([1], [1])
    with pytest.raises(InstanceError, match="differ"):
        gaussian([0, 1], [1])


@pytest.mark.parametrize("kind,name", [("inner", "relu"), ("input", "tanhh"),
                                       ("output", "softmax")])
def test_unknown_map_names_list_the_known_ones(kind, name):
    with pytest.raises(InstanceError, match=f"{name!r} is not registered; known"):
        get_map(kind, name)


def test_unknown_map_name_in_a_file_is_refused():
    doc = base_doc()
    doc["maps"]["inner"] = "os.system"
    with pytest.raises(InstanceError, match="'os.system' is not registered"):
        instance_from_dict(doc)


def test_wrong_number_of_inner_maps_and_laws():
    doc = base_doc()
    doc["maps"]["inner"] = ["cubic"]
    with pytest.raises(InstanceError, match="maps.inner lists 1 maps; L=3 needs 2"):
        instance_from_dict(doc)
    doc = base_doc()
    doc["laws"]["m"] = doc["laws"]["m"][:1]
    with pytest.raises(InstanceError, match="laws.m lists 1 laws; L=3 needs 2"):
        instance_from_dict(doc)


@pytest.mark.parametrize("where,key", [((), "nmae"), (("maps",), "innr"),
                                       (("laws",), "mu"), (("data",), "z")])
def test_unknown_keys_are_refused(where, key):
    doc = base_doc()
    table = doc
    for w in where:
        table = table[w]
    table[key] = 1
    with pytest.raises(InstanceError, match=f"unknown key.*{key}"):
        instance_from_dict(doc)


def test_missing_keys_are_named():
    doc = base_doc()
    del doc["laws"]["nu0"]
    with pytest.raises(InstanceError, match="missing key laws.nu0"):
        instance_from_dict(doc)


def test_unknown_law_kind_loss_and_schedule():
    doc = base_doc()
    doc["laws"]["nuL"]["kind"] = "cauchy"
    with pytest.raises(InstanceError, match="'cauchy' is unknown"):
        instance_from_dict(doc)
    doc = base_doc()
    doc["loss"] = {"kind": "hinge"}
    with pytest.raises(InstanceError, match="loss.kind='hinge'"):
        instance_from_dict(doc)
    doc = base_doc()
    doc["schedule"] = {"kind": "cosine"}
    with pytest.raises(InstanceError, match="schedule.kind='cosine'"):
        instance_from_dict(doc)


def test_malformed_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("L = 3\n[maps\ninput = 'affine'\n")
    with pytest.raises(InstanceError, match="broken.toml: malformed TOML"):
        instance_from_file(path)


def test_missing_instance_file_and_unknown_name():
    with pytest.raises(InstanceError, match="does not exist"):
        load_instance("no/such/file.toml")
    with pytest.raises(InstanceError, match="neither a built-in"):
        load_instance("no-such-instance")


def test_non_positive_horizon_is_refused():
    doc = base_doc()
    doc["T"] = "-1"
    with pytest.raises(InstanceError, match="T=-1 must be positive"):
        instance_from_dict(doc)


def test_map_expressions_are_checked():
    h, w, z = sympy.symbols("h w z")
    with pytest.raises(InstanceError, match="free symbols \\['z'\\]"):
        make_map("inner", "bad", w * h + z, [h], [w])
    with pytest.raises(InstanceError, match="floating constant"):
        make_map("inner", "bad", sympy.Float(0.5) * w * h, [h], [w])
    with pytest.raises(InstanceError, match="unsupported node"):
        compile_expr(sympy.Abs(h), [h])
    with pytest.raises(InstanceError, match="exponent"):
        compile_expr(h ** sympy.Rational(1, 3), [h])


def test_user_maps_register_and_load_by_name(tmp_path):
    from mfdeep.model import register_map

    h, a = sympy.symbols("h a")
    register_map("inner", "test_sine", make_map("inner", "test_sine",
                                                a * sympy.sin(h), [h], [a]))
    doc = base_doc()
    doc["maps"]["inner"] = "test_sine"
    inst = instance_from_dict(doc)
    assert inst.sigma[0].name == "test_sine"
    assert not inst.is_polynomial


def test_instance_files_round_trip_from_disk(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text((BUILTIN_DIR / "default.toml").read_text())
    inst = load_instance(str(path))
    assert inst.name == "default" and inst.L == 3
    assert pathlib.Path(path).exists()
