"""The ``mfdeep`` command line.

Exit codes: 0 when every requested claim holds, 1 when one fails, 2 on bad
input (unknown instance or claim, malformed file).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys

from mfdeep.atomic import atomic_write, folder_problem


def _environment(device="cpu"):
    import flint
    import mpmath
    import numpy
    import sympy
    import torch

    import mfdeep

    env = {"mfdeep": mfdeep.__version__, "python": platform.python_version(),
           "platform": platform.platform(), "numpy": numpy.__version__,
           "sympy": sympy.__version__, "mpmath": mpmath.__version__,
           "python-flint": flint.__version__, "torch": torch.__version__,
           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "device": device}
    if device.startswith("cuda"):
        env["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return env


def _resolve_device(name):
    """The device name for the report: ``cpu``, ``cuda`` or ``cuda:K``;
    ``auto`` takes CUDA when there is one. Checked like ``mfdeep simulate``
    checks it (InstanceError, a ValueError, for a bad or missing device)."""
    from mfdeep.simulate import _resolve_device as resolve

    device, requested = resolve(name)
    return device.type if requested == "auto" else requested


def _fmt(x):
    return "0" if x == 0 else f"{x:.3g}"


def _table(report):
    from mfdeep.claims import bound_text

    rows = [("claim", "statement", "figure", "bound or band", "holds", "time")]
    for c in report["claims"]:
        rows.append((c["id"], c["statement"][:58], _fmt(c["figure"]), bound_text(c),
                     "yes" if c["holds"] else "NO", f"{c['seconds']:.1f}s"))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown(report, plots=()):
    from mfdeep.claims import bound_text

    ok = all(c["holds"] for c in report["claims"])
    out = [f"# mfdeep verify: instance `{report['instance']}`", "",
           f"{report.get('instance_description', '')}", "",
           f"Level `{report['level']}`, device `{report['device']}`, base seed "
           f"{report['seed']}; {'every claim holds' if ok else 'SOME CLAIMS FAIL'} "
           f"({report.get('seconds', 0):.0f} s).", "",
           "| claim | statement | figure | bound or band | holds | time |",
           "|---|---|---|---|---|---|"]
    for c in report["claims"]:
        out.append(f"| {c['id']} | {c['statement']} | {_fmt(c['figure'])} | "
                   f"{bound_text(c)} | {'yes' if c['holds'] else 'NO'} | "
                   f"{c['seconds']:.1f} s |")
    if report["pending"]:
        out += ["", "Claims without a check yet:", ""]
        out += [f"* {k}: {v}" for k, v in report["pending"].items()]
    if plots:
        out += ["", "## Figures", ""]
        out += [f"![{p.stem}]({p.name})" for p in plots]
    out += ["", "## Sizes", ""]
    out += [f"* {k}: `{json.dumps(v)}`" for k, v in report.get("sizes", {}).items()]
    out += ["", "## Environment", ""]
    out += [f"* {k}: {v}" for k, v in report.get("environment", {}).items()]
    out += ["", "Every figure above was computed in this run; the details of each "
            "check are in `report.json`."]
    return "\n".join(out) + "\n"


def cmd_verify(args):
    import time

    from tqdm import tqdm

    from mfdeep.claims import CHECKS, RunConfig, parse_claims, verify
    from mfdeep.errors import InstanceError
    from mfdeep.model import load_instance

    try:
        instance = load_instance(args.instance)
        ids = parse_claims(args.claims) if args.claims else sorted(
            CHECKS, key=lambda s: int(s[1:]))
        device = _resolve_device(args.device)
        problem = folder_problem(args.out)
        if problem:
            raise ValueError(f"--out {problem}; give a folder path (it is created "
                             "if missing)")
    except (InstanceError, ValueError) as exc:
        print(f"mfdeep verify: {exc}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    level = "quick" if args.quick else "full" if args.full else "default"

    def wrap(ids):
        return tqdm(ids, desc="claims", unit="claim", file=sys.stderr,
                    disable=args.no_progress)

    def bar(iterable, desc=None):
        return tqdm(iterable, desc=f"  {desc}", leave=False, file=sys.stderr,
                    disable=args.no_progress)

    print(f"instance: {instance.name} ({instance.description}); level {level}, "
          f"device {device}")
    start = time.perf_counter()
    cfg = RunConfig(level=level, device=device, seed=args.seed, bar=bar)
    report = verify(instance, ids, cfg, wrap=wrap)
    report["seconds"] = time.perf_counter() - start
    report["environment"] = _environment(device)
    report["instance_description"] = instance.description

    print(_table(report))
    atomic_write(out / "report.json", json.dumps(report, indent=2) + "\n")
    plots = []
    if not args.no_plots:
        from mfdeep.plots import write_plots

        plots = write_plots(report, out)
    atomic_write(out / "report.md", _markdown(report, plots))
    print(f"wrote {out / 'report.json'}, {out / 'report.md'} and {len(plots)} "
          f"figure(s) in {report['seconds']:.0f} s")
    ok = all(c["holds"] for c in report["claims"])
    print("all claims hold" if ok else "SOME CLAIMS FAIL")
    return 0 if ok else 1


def cmd_plot(args):
    from mfdeep.plots import write_plots

    path = pathlib.Path(args.report)
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"mfdeep plot: cannot read {path}: {exc}; give the report.json "
              "written by mfdeep verify", file=sys.stderr)
        return 2
    claims_ok = (isinstance(report, dict) and isinstance(report.get("claims"), list)
                 and isinstance(report.get("instance"), str)
                 and all(isinstance(c, dict) and isinstance(c.get("id"), str)
                         and isinstance(c.get("details", {}), dict)
                         for c in report["claims"]))
    if not claims_ok:
        print(f"mfdeep plot: {path} is not a verify report (it needs 'instance' and "
              "a 'claims' list of entries with 'id' and 'details'); give the "
              "report.json written by mfdeep verify", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out) if args.out else path.parent
    out.mkdir(parents=True, exist_ok=True)
    written = write_plots(report, out)
    for p in written:
        print(f"wrote {p}")
    if not written:
        print("the report holds no data for a figure (C4, C8, C9, C10, C12)")
    return 0


def cmd_bench(args):
    from mfdeep.fast.bench import run_all

    results = run_all()
    cpu = results["cpu"]
    print(f"SGD, mlp maps, L={cpu['L']}, N={cpu['N']}, {cpu['dtype']}, batch 1, "
          f"{cpu['device']}")
    print(f"  autograd nn.Module + optim.SGD : {cpu['autograd_steps_per_s']:9.1f} steps/s")
    print(f"  mfdeep eager                   : {cpu['eager_steps_per_s']:9.1f} steps/s "
          f"({cpu['eager_speedup_vs_autograd']:.2f}x)")
    print(f"  mfdeep lazy rank {cpu['lazy_rank']:<3d}          : "
          f"{cpu['lazy_steps_per_s']:9.1f} steps/s "
          f"({cpu['lazy_steps_per_s'] / cpu['autograd_steps_per_s']:.2f}x)")
    print(f"  bandwidth: {cpu['bytes_per_step'] / 2**20:.1f} MiB/step, copy "
          f"{cpu['copy_bandwidth_bytes_per_s'] / 1e9:.2f} GB/s, fraction reached "
          f"{cpu['bandwidth_fraction']:.0%}")
    print(f"  agreement with autograd after 50 steps: max |dW| = "
          f"{cpu['max_weight_diff_vs_autograd_after_50_steps']:.2e} (weights moved "
          f"{cpu['max_weight_move_after_50_steps']:.2e})")
    if "gpu" in results:
        gpu = results["gpu"]
        print(f"GPU N={gpu['N']}: speedup {gpu['sgd_speedup_vs_autograd']:.2f}x, "
              f"bandwidth fraction {gpu['bandwidth_fraction']:.0%}")
    acc = results["accuracy_vs_cost"]
    print(f"Accuracy vs cost on default (error of ybar(T) against "
          f"{acc['reference_order']} atoms/coord):")
    for row in acc["rows"]:
        print(f"  {row['solver']:<30s} error {row['error']:.2e}  "
              f"time {row['seconds']:.3f} s")
    if args.json:
        atomic_write(args.json, json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def cmd_properties(args):
    import subprocess
    import time

    import importlib.util

    if importlib.util.find_spec("pytest") is None:
        print("mfdeep properties: the property suite runs under pytest, which is not "
              "installed; install it with pip install 'mfdeep[test]' (or pip install "
              "pytest)", file=sys.stderr)
        return 2
    env = dict(os.environ, HYPOTHESIS_PROFILE=args.profile)
    cmd = [sys.executable, "-m", "pytest", "--pyargs", "mfdeep.properties", "-q",
           "-p", "no:cacheprovider", *args.pytest_args]
    print(f"running the property suite with profile {args.profile!r}: {' '.join(cmd)}")
    start = time.perf_counter()
    code = subprocess.call(cmd, env=env)
    print(f"property suite finished in {time.perf_counter() - start:.1f} s "
          f"(exit code {code})")
    return 0 if code == 0 else 1


def cmd_certify(args):
    from mfdeep.claims import certified_containment
    from mfdeep.errors import InstanceError
    from mfdeep.model import load_instance
    from mfdeep.reference.certify import CertificationError, certify

    for flag, value, low, example in [("order", args.order, 1, 2),
                                      ("degree", args.degree, 1, 8),
                                      ("prec", args.prec, 16, 128)]:
        if value < low:
            print(f"mfdeep certify: --{flag} {value} is below {low}; give e.g. "
                  f"--{flag} {example}", file=sys.stderr)
            return 2
    problem = folder_problem(args.out)
    if problem:
        print(f"mfdeep certify: --out {problem}; give a folder path", file=sys.stderr)
        return 2
    try:
        instance = load_instance(args.instance)
    except InstanceError as exc:
        print(f"mfdeep certify: {exc}", file=sys.stderr)
        return 2
    atomic = instance.atomic() if instance.is_polynomial else instance.atomic(args.order)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"certifying the atomic MV solution of {instance.name!r} on [0, "
          f"{float(atomic.T)}] (Arb, {args.prec} bits, degree {args.degree})")
    try:
        cert = certify(atomic, degree=args.degree, prec=args.prec,
                       progress=lambda t: print(f"  validated up to t = {t:.4f}",
                                                file=sys.stderr))
    except CertificationError as exc:
        print(f"NOT CERTIFIED: {exc}")
        return 1
    strict, tolerant, excess = certified_containment(atomic, cert)
    data = cert.as_dict()
    data.update({"fast_strictly_inside": strict, "fast_inside_within_1e-10": tolerant,
                 "fast_excess": excess, "atoms_per_coordinate":
                 None if instance.is_polynomial else args.order})
    atomic_write(out / "certificate.json", json.dumps(data, indent=2) + "\n")
    summary = (
        f"# Certificate: {instance.name}\n\n"
        f"The atomic MV solution exists and is unique on [0, {cert.T}]; "
        f"{len(cert.layout)} weight coordinates enclosed in {cert.stats['steps']} "
        f"validated steps ({cert.stats['seconds']:.1f} s).\n\n"
        f"* largest enclosure radius at T: {cert.max_radius():.3e}\n"
        f"* fast float64 solution strictly inside: {strict}; within 1e-10: {tolerant}\n")
    atomic_write(out / "summary.md", summary)
    print(summary)
    print(f"wrote {out / 'certificate.json'} and {out / 'summary.md'}")
    return 0 if tolerant else 1


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mfdeep", description="Mean-field limit of deep neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check the claims C1-C12 on an instance")
    v.add_argument("--instance", default="default",
                   help="built-in name (default, exact, mlp, l2) or a TOML file")
    v.add_argument("--claims", default=None, help="comma-separated ids, e.g. C3,C7")
    size = v.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="smaller sizes: about a minute on 2 CPU cores")
    size.add_argument("--full", action="store_true",
                      help="large coupling and SGD sizes, meant for a GPU")
    v.add_argument("--device", default="cpu",
                   help="torch device of the fast-backend runs: cpu, cuda, auto")
    v.add_argument("--seed", type=int, default=0, help="base seed of every draw")
    v.add_argument("--out", default="mfdeep-out", help="folder for report files")
    v.add_argument("--no-progress", action="store_true", help="hide progress bars")
    v.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    v.set_defaults(func=cmd_verify)
    pl = sub.add_parser("plot", help="redraw the figures of a verify report.json")
    pl.add_argument("report", help="path of report.json")
    pl.add_argument("--out", default=None, help="folder (default: the report's)")
    pl.set_defaults(func=cmd_plot)
    b = sub.add_parser("bench", help="speed of ours against an autograd baseline")
    b.add_argument("--json", default=None, help="write the figures to this file")
    b.set_defaults(func=cmd_bench)
    p = sub.add_parser("properties", help="run the Hypothesis property suite")
    p.add_argument("--profile", default="dev", choices=["ci", "dev", "thorough"],
                   help="ci: derandomized, small; thorough: 10x the ci examples")
    p.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    p.set_defaults(func=cmd_properties)
    c = sub.add_parser("certify", help="validated Arb enclosure of the MV solution")
    c.add_argument("--instance", default="default", help="built-in name or TOML file")
    c.add_argument("--order", type=int, default=2,
                   help="quadrature nodes per coordinate for non-atomic laws")
    c.add_argument("--degree", type=int, default=8, help="Taylor degree of a step")
    c.add_argument("--prec", type=int, default=128, help="Arb precision in bits")
    c.add_argument("--out", default="mfdeep-certificate", help="output folder")
    c.set_defaults(func=cmd_certify)
    from mfdeep.cli.sweep import add_parser as _add_sweep
    _add_sweep(sub)
    from mfdeep.cli.simulate import add_parser as _add_simulate
    _add_simulate(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
