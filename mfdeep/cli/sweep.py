"""The ``mfdeep sweep`` command: argument parsing, progress and printed
summaries over :mod:`mfdeep.sweep`, which computes and writes the results."""

from __future__ import annotations

import pathlib
import sys
import time

from mfdeep.sweep import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK,
                          EngineError, GridError, SweepDirError, WorkerDied, import_ray,
                          load_grid, read_task_file, run_sweep, summary_table)

_EPILOG = """\
exit codes: 0 every task ok; 1 some task failed, or a worker died (rerun with
--resume); 2 bad input (grid, arguments, an --out holding another plan or
finished results without --resume); 130 interrupted (--resume continues).
The grid schema is in the docstring of mfdeep.sweep and in
mfdeep/instances/grids/example.toml."""


def add_parser(sub):
    """Register ``mfdeep sweep`` on an argparse subparsers object."""
    import argparse

    s = sub.add_parser(
        "sweep", help="run a grid over instance, L, N, eps and seed",
        description="Run every point of a grid of coupling and SGD runs, write one "
        "file per task, a summary and the rate fits in N and eps.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--grid", required=True, help="grid TOML file")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: a process pool here (default); ray: Ray tasks")
    s.add_argument("--workers", type=int, default=None,
                   help="worker processes (local) or CPUs of the local Ray cluster "
                   "(default: the CPU count)")
    s.add_argument("--ray-address", default=None,
                   help="address of a running Ray cluster (default: start a local one)")
    s.add_argument("--resume", action="store_true",
                   help="continue a sweep in --out, skipping finished tasks")
    s.add_argument("--retry-failed", action="store_true",
                   help="with --resume, run the failed tasks again (implies --resume)")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.set_defaults(func=cmd_sweep)
    return s


def cmd_sweep(args):
    """Run ``mfdeep sweep``; returns the exit code."""
    import signal

    from tqdm import tqdm

    def fail(message, code=EXIT_BAD_INPUT):
        print(f"mfdeep sweep: {message}", file=sys.stderr)
        return code

    if args.workers is not None and args.workers < 1:
        return fail(f"--workers={args.workers}; give a positive integer")
    if args.ray_address is not None and args.engine != "ray":
        return fail("--ray-address needs --engine ray")
    try:
        plan = load_grid(args.grid, check_cuda=not (args.engine == "ray"
                                                    and args.ray_address))
        if args.engine == "ray":
            import_ray()
    except (GridError, EngineError) as exc:
        return fail(exc)
    n = len(plan["tasks"])
    out = pathlib.Path(args.out)
    print(f"sweep: {n} tasks ({', '.join(plan['instances'])}; N {plan['grid']['N']}; "
          f"eps {plan['grid']['eps']}; {len(plan['grid']['seed'])} seed(s)) -> {out}, "
          f"engine {args.engine}")
    bar = None

    def on_start(kept, todo):
        nonlocal bar
        if kept:
            n_failed = sum(r["status"] == "failed" for r in kept.values())
            print(f"resume: skipping {len(kept)} finished task(s) ({n_failed} failed); "
                  f"running {len(todo)}")
        bar = tqdm(total=len(todo), desc="tasks", unit="task", file=sys.stderr,
                   disable=args.no_progress or not todo)

    def on_record(record):
        if record["status"] == "failed":
            bar.write(f"task {record['id']} failed: {record['error'][:200]}",
                      file=sys.stderr)
        bar.update(1)

    # SIGTERM (a shutdown, a scheduler) stops the sweep like Ctrl-C.
    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    start = time.perf_counter()
    try:
        outcome = run_sweep(plan, out, engine=args.engine, workers=args.workers,
                            resume=args.resume, retry_failed=args.retry_failed,
                            ray_address=args.ray_address, on_record=on_record,
                            on_start=on_start)
    except (GridError, SweepDirError) as exc:
        if bar is not None:
            bar.close()
        return fail(exc)
    except (KeyboardInterrupt, WorkerDied) as exc:
        if bar is not None:
            bar.close()
        done = sum(read_task_file(out / "tasks" / f"{t['id']}.json", t) is not None
                   for t in plan["tasks"])
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        print(f"mfdeep sweep: {why}; {done} of {n} tasks finished and written; run "
              "the same command with --resume to continue", file=sys.stderr)
        return EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
    bar.close()
    seconds = time.perf_counter() - start
    summary = outcome["summary"]
    print(summary_table(summary))
    counts = summary["counts"]
    print(f"\n{counts['ok']} of {counts['tasks']} tasks ok, {counts['failed']} failed; "
          f"ran {len(outcome['ran'])} in {seconds:.1f} s")
    print(f"wrote {out / 'tasks'}/, {out / 'summary.json'} and {out / 'summary.csv'}")
    return EXIT_OK if counts["failed"] == 0 else EXIT_FAILED
