"""Instances from TOML files (schema in the README) and the built-in instances.

Every string in a file is a name looked up in a registry or a number parsed
by ``fractions.Fraction``; nothing from a file is evaluated as code. Unknown
keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import pathlib
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from mfdeep.errors import InstanceError
from mfdeep.model.instance import Loss, Schedule, data_set, make_instance
from mfdeep.model.laws import atoms, gaussian, uniform
from mfdeep.model.maps import get_map
from mfdeep.model.numbers import to_fraction

BUILTIN_DIR = pathlib.Path(__file__).resolve().parent.parent / "instances"

_TOP = {"name", "description", "L", "T", "order", "maps", "data", "laws", "loss",
        "schedule"}
_LAW_KEYS = {"gaussian": {"mean", "std"}, "uniform": {"low", "high"},
             "atoms": {"points", "weights"}}


def builtin_names():
    """Names of the instances shipped with mfdeep."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def load_instance(spec):
    """Load a built-in instance by name, or an instance from a TOML file path."""
    spec = str(spec)
    if spec in builtin_names():
        return instance_from_file(BUILTIN_DIR / f"{spec}.toml")
    path = pathlib.Path(spec)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise InstanceError(f"instance file {spec!r} does not exist")
        return instance_from_file(path)
    raise InstanceError(
        f"instance {spec!r} is neither a built-in ({', '.join(builtin_names())}) "
        "nor a .toml file"
    )


def instance_from_file(path):
    """Parse and validate one TOML instance file."""
    path = pathlib.Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InstanceError(f"{path}: malformed TOML ({exc}); fix the syntax") from None
    try:
        return instance_from_dict(doc)
    except InstanceError as exc:
        raise InstanceError(f"{path}: {exc}") from None


def _require(table, key, where):
    if key not in table:
        raise InstanceError(f"missing key {where}{key}; see the README's schema")
    return table[key]


def _no_unknown(table, allowed, where):
    if not isinstance(table, dict):
        raise InstanceError(f"{where or 'top level'} must be a table, got {table!r}")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise InstanceError(
            f"unknown key(s) {unknown} in {where or 'top level'}; allowed: "
            f"{sorted(allowed)}"
        )


def _law(table, where):
    kind = _require(table, "kind", where + ".")
    if kind not in _LAW_KEYS:
        raise InstanceError(
            f"{where}.kind={kind!r} is unknown; use one of {sorted(_LAW_KEYS)}"
        )
    _no_unknown(table, _LAW_KEYS[kind] | {"kind"}, where)
    if kind == "gaussian":
        return gaussian(_require(table, "mean", where + "."),
                        _require(table, "std", where + "."), where)
    if kind == "uniform":
        return uniform(_require(table, "low", where + "."),
                       _require(table, "high", where + "."), where)
    return atoms(_require(table, "points", where + "."), table.get("weights"), where)


def _name(value, where):
    if not isinstance(value, str):
        raise InstanceError(f"{where}={value!r} must be a map name (a string)")
    return value


def instance_from_dict(doc):
    """Validate a parsed TOML document (a dict) into an :class:`Instance`."""
    _no_unknown(doc, _TOP, "")
    L = _require(doc, "L", "")
    if isinstance(L, bool) or not isinstance(L, int):
        raise InstanceError(f"L={L!r} must be an integer >= 2")
    if L < 2:
        raise InstanceError(f"L={L} hidden layers; the model needs L >= 2")

    # Data first: the input map's parameter dimension depends on d_x.
    data = _require(doc, "data", "")
    _no_unknown(data, {"x", "y", "weights"}, "data")
    x = _require(data, "x", "data.")
    if not isinstance(x, list):
        raise InstanceError(f"data.x={x!r} must be a list of points")
    d = data_set(x, _require(data, "y", "data."), data.get("weights"), "data")

    # Maps by registry name.
    maps = _require(doc, "maps", "")
    _no_unknown(maps, {"input", "inner", "output"}, "maps")
    sigma0 = get_map("input", _name(_require(maps, "input", "maps."), "maps.input"),
                     d.d_x)
    inner = _require(maps, "inner", "maps.")
    names = inner if isinstance(inner, list) else [inner] * (L - 1)
    if len(names) != L - 1:
        raise InstanceError(f"maps.inner lists {len(names)} maps; L={L} needs {L - 1}")
    sigma = [get_map("inner", _name(n, f"maps.inner[{k}]"), d.d_x)
             for k, n in enumerate(names)]
    sigmaL = get_map("output", _name(_require(maps, "output", "maps."), "maps.output"))

    # Laws; laws.m is one table (all layers) or an array of L-1 tables.
    laws = _require(doc, "laws", "")
    _no_unknown(laws, {"nu0", "m", "nuL"}, "laws")
    nu0 = _law(_require(laws, "nu0", "laws."), "laws.nu0")
    nuL = _law(_require(laws, "nuL", "laws."), "laws.nuL")
    m_spec = _require(laws, "m", "laws.")
    if isinstance(m_spec, list):
        if len(m_spec) != L - 1:
            raise InstanceError(f"laws.m lists {len(m_spec)} laws; L={L} needs {L - 1}")
        m = [_law(t, f"laws.m[{k}]") for k, t in enumerate(m_spec)]
    else:
        m = _law(m_spec, "laws.m")

    # Loss and schedule.
    loss_t = doc.get("loss", {})
    _no_unknown(loss_t, {"kind", "delta"}, "loss")
    loss = Loss(loss_t.get("kind", "squared"),
                to_fraction(loss_t.get("delta", 1), "loss.delta"))
    sched_t = doc.get("schedule", {})
    _no_unknown(sched_t, {"kind", "alpha0", "tau"}, "schedule")
    schedule = Schedule(sched_t.get("kind", "constant"),
                        to_fraction(sched_t.get("alpha0", 1), "schedule.alpha0"),
                        to_fraction(sched_t.get("tau", 1), "schedule.tau"))

    name = doc.get("name", "unnamed")
    if not isinstance(name, str):
        raise InstanceError(f"name={name!r} must be a string")
    return make_instance(
        name=name, L=L, sigma0=sigma0, sigma=sigma, sigmaL=sigmaL, data=d,
        nu0=nu0, m=m, nuL=nuL, loss=loss, schedule=schedule,
        T=doc.get("T", 1), order=doc.get("order", 3),
        description=str(doc.get("description", "")),
    )
