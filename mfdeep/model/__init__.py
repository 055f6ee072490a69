"""Model definitions shared by both backends (no torch, no mpmath).

Public surface: edge maps and their registry, laws, instances, TOML loading.
"""

from mfdeep.model.instance import (
    DataSet,
    Instance,
    Loss,
    Schedule,
    data_set,
    make_instance,
    with_depth,
)
from mfdeep.model.laws import (
    AtomicLaw,
    Atoms,
    Gaussian,
    Uniform,
    atomic_law,
    atoms,
    gaussian,
    uniform,
)
from mfdeep.model.maps import EdgeMap, get_map, make_map, map_names, register_map
from mfdeep.model.program import Program, compile_expr
from mfdeep.model.toml_io import builtin_names, instance_from_dict, load_instance

__all__ = [
    "AtomicLaw", "Atoms", "DataSet", "EdgeMap", "Gaussian", "Instance", "Loss",
    "Program", "Schedule", "Uniform", "atomic_law", "atoms", "builtin_names",
    "compile_expr", "data_set", "gaussian", "get_map", "instance_from_dict",
    "load_instance", "make_instance", "make_map", "map_names", "register_map",
    "uniform", "with_depth",
]
