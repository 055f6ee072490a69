"""The ``mfdeep simulate`` command: argument parsing, progress and printed
summaries over :mod:`mfdeep.simulate`, which computes and writes the results."""

from __future__ import annotations

import pathlib
import sys

from mfdeep.simulate import DESCRIPTION_FILE, DTYPES, LIMIT_FILE, finite_file, simulate

def _fmt(x):
    return f"{x:.4g}"


def _report(result, out):
    d = result["description"]
    s, inst = d["settings"], d["instance"]
    t = s["t"]
    training = ("gradient flow (RK4, dt={:.4g})".format(s["dt"]) if s["eps"] is None
                else f"SGD (eps={s['eps']:g}, batch {s['batch']})")
    head = (f"instance {inst['name']} ({inst['description']}), L={inst['L']}, "
            f"t in [0, {t:g}], {len(s['times'])} records, {d['dtype']} on "
            f"{d['device']['used']}")
    lines = [head]
    rows = [("run", "risk(t=0)", f"risk(t={t:g})", "|R_N - Rbar|", "seconds")]
    lim = result.get("limit")
    if lim is not None:
        rows.append(("limit", _fmt(lim["risk"][0]), _fmt(lim["risk"][-1]), "-",
                     f"{d['wall_seconds']['limit']:.1f}"))
    for N, a in result["finite"].items():
        summ = d["summary"][f"N={N}"]
        gap = summ.get("risk_gap_to_limit_final_mean")
        rows.append((f"N={N}, R={s['replicas']}", _fmt(a["risk"][0].mean()),
                     _fmt(a["risk"][-1].mean()), "-" if gap is None else _fmt(gap),
                     f"{d['wall_seconds'][finite_file(N).removesuffix('.npz')]:.1f}"))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(2, "  ".join("-" * w for w in widths))
    if result["finite"]:
        lines.append(f"networks: {training}; risks are means over replicas"
                     + ("; the gap is their mean |R_N - Rbar| at the final time"
                        if lim is not None else ""))
    if out is not None:
        names = [LIMIT_FILE] * (lim is not None) + [finite_file(N)
                                                    for N in result["finite"]]
        lines.append("wrote " + ", ".join(str(out / n) for n in names + [
            DESCRIPTION_FILE]))
    return "\n".join(lines)


def cmd_simulate(args):
    """Run :func:`simulate` from parsed arguments; return the exit code."""
    import torch
    from tqdm import tqdm

    from mfdeep.errors import DivergenceError, InstanceError

    def wrap(tasks):
        return tqdm(tasks, desc="simulate", unit="run", file=sys.stderr,
                    disable=args.no_progress)

    try:
        result = simulate(
            args.instance, finite=args.finite or (), limit=args.limit,
            replicas=args.replicas, eps=args.eps, batch=args.batch, t=args.t,
            dt=args.dt, n_records=args.n_records, order=args.order, seed=args.seed,
            device=args.device, dtype=args.dtype, max_weight=args.max_weight,
            save_weights=args.save_weights, out=args.out, progress=wrap)
    except InstanceError as exc:
        print(f"mfdeep simulate: {exc}", file=sys.stderr)
        return 2
    except DivergenceError as exc:
        print(f"mfdeep simulate: the run diverged: {exc}", file=sys.stderr)
        where = pathlib.Path(args.out) / DESCRIPTION_FILE
        print(f"status and message recorded in {where}", file=sys.stderr)
        return 1
    except (MemoryError, torch.OutOfMemoryError) as exc:
        print(f"mfdeep simulate: the run failed, out of memory ({exc}); lower the "
              "widths or --replicas, or drop --save-weights", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        where = pathlib.Path(args.out) / DESCRIPTION_FILE
        print(f"mfdeep simulate: interrupted; the runs finished so far are saved and "
              f"{where} says 'interrupted'", file=sys.stderr)
        return 130
    print(_report(result, pathlib.Path(args.out)))
    return 0


def add_parser(sub):
    """Register ``mfdeep simulate`` with the subparsers ``sub`` of the command line."""
    s = sub.add_parser(
        "simulate", help="solve the MV limit and/or train finite networks; save .npz",
        description="Solve the layered MV limit and/or train finite networks, and "
                    "save trajectories and mean fields as .npz with a JSON "
                    "description. Exit codes: 0 done, 1 a run diverged or failed, "
                    "2 bad input, 130 interrupted.")
    s.add_argument("--instance", default="default",
                   help="built-in name (default, exact, mlp, l2) or a TOML file")
    s.add_argument("--finite", type=int, nargs="+", metavar="N", default=None,
                   help="widths of finite networks to train")
    s.add_argument("--limit", action="store_true", help="solve the layered MV limit")
    s.add_argument("--replicas", type=int, default=1, help="networks per width (R)")
    s.add_argument("--eps", type=float, default=None,
                   help="SGD step (t must be a multiple); absent or 0: gradient flow")
    s.add_argument("--batch", type=int, default=1, help="samples per SGD step")
    s.add_argument("--t", type=float, default=None,
                   help="horizon in (0, T]; default the instance's T")
    s.add_argument("--dt", type=float, default=0.025,
                   help="RK4 step of the limit and the gradient flow")
    s.add_argument("--n-records", type=int, default=11,
                   help="number of recorded times in [0, t]")
    s.add_argument("--order", type=int, default=None,
                   help="quadrature nodes per coordinate for the limit (default: "
                        "the instance's order)")
    s.add_argument("--seed", type=int, default=0, help="seed of the network draws")
    s.add_argument("--device", default="cpu", help="cpu, cuda, cuda:K or auto")
    s.add_argument("--dtype", default="float64", choices=DTYPES, help="number type")
    s.add_argument("--max-weight", type=float, default=1e3,
                   help="divergence bound on |w| (inf disables it)")
    s.add_argument("--save-weights", action="store_true",
                   help="save every recorded network weight, not only the final ones")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--no-progress", action="store_true", help="hide progress bars")
    s.set_defaults(func=cmd_simulate)
    return s


__all__ = ["DESCRIPTION_FILE", "LIMIT_FILE", "add_parser", "finite_file", "simulate"]
