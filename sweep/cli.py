"""The command line: a thin wrapper over the Python API. Errors are one line, exit code 2."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from . import api, interrupts, lecture, spec as spec_module, store


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        raise spec_module.SpecError(f"{self.prog}: {message} (see {self.prog} --help)")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed") from None
    if not 0 <= value <= spec_module.MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text!r} must be in [0, {spec_module.MAX_SEED}]")
    return value


def _shard(text):
    if text == "auto":
        import jax

        # The cluster comes from the environment (SLURM, Open MPI, TPU pods), or explicitly
        # from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID.
        explicit = {}
        if "JAX_NUM_PROCESSES" in os.environ or "JAX_PROCESS_ID" in os.environ:
            try:
                explicit = {
                    "num_processes": int(os.environ["JAX_NUM_PROCESSES"]),
                    "process_id": int(os.environ["JAX_PROCESS_ID"]),
                }
            except (KeyError, ValueError):
                raise argparse.ArgumentTypeError(
                    "auto: JAX_NUM_PROCESSES and JAX_PROCESS_ID must both be integers"
                ) from None
        try:
            jax.distributed.initialize(**explicit)
        except Exception as err:  # noqa: BLE001  any failure is one line for the user
            raise argparse.ArgumentTypeError(
                f"auto needs a jax.distributed cluster: {err}".splitlines()[0]
            ) from None
        return jax.process_index(), jax.process_count()
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N (such as 0/4) or auto") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"{text!r} needs 0 <= I < N")
    return index, count


def _bytes(text):
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    try:
        value = (
            int(float(text[:-1]) * units[text[-1].lower()])
            if text[-1].lower() in units
            else int(text)
        )
    except (ValueError, IndexError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 2G or 512M") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive size such as 2G")
    return value


def _version() -> str:
    from importlib import metadata

    def version(package):
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return f"sweep {version('sweep')} (jax {version('jax')}, jaxlib {version('jaxlib')})"


def build_parser() -> argparse.ArgumentParser:
    """The `sweep` command line: run, info, theory, bench, plot and export."""
    parser = _Parser(prog="sweep", description="Map where deep networks explode or vanish.")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run a sweep (default: the built-in lecture preset)")
    run.add_argument("spec", nargs="?", help="TOML spec file; omitted: the lecture preset")
    run.add_argument("--out", help="results directory (default: results/<name>)")
    run.add_argument(
        "--chunk-size",
        type=_positive_int,
        help="configs per compiled batch (default: from the memory budget)",
    )
    run.add_argument(
        "--memory-budget",
        type=_bytes,
        help="bytes per chunk, e.g. 2G (default: a quarter of free memory)",
    )
    run.add_argument("--seed", type=_seed, default=0, help="root seed (default 0)")
    run.add_argument("--overwrite", action="store_true", help="replace a different sweep in --out")
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (configs, chunks, programs, memory) and an estimated run time, "
        "timed on two small chunks; compute and write nothing",
    )
    run.add_argument(
        "--shard",
        type=_shard,
        default=(0, 1),
        metavar="I/N",
        help="run the I-th of N disjoint slices (one per host); "
        "'auto' takes them from jax.distributed",
    )

    info = commands.add_parser("info", help="describe a results directory")
    info.add_argument("dir")
    info.add_argument("--full", action="store_true", help="print the whole spec as JSON")

    export = commands.add_parser("export", help="write a results directory as CSV")
    export.add_argument("dir", help="results directory")
    export.add_argument("--csv", required=True, metavar="FILE", help="the CSV file to write")
    export.add_argument(
        "--layers", action="store_true", help="the per-layer table: one row per config and layer"
    )

    bench = commands.add_parser("bench", help="benchmark the engine against a per-config loop")
    bench.add_argument("--quick", action="store_true", help="a small sweep that runs in seconds")
    bench.add_argument(
        "--subsample", type=_positive_int, help="configs timed in the per-config loop (default 200)"
    )
    bench.add_argument(
        "--json", help="where to write the figures (default results/bench/<date>.json; quick: none)"
    )

    theory_cmd = commands.add_parser(
        "theory", help="mean-field predictions: critical point, q*, chi1, depth scales"
    )
    theory_cmd.add_argument("--activation", default="tanh", help="activation name (default tanh)")
    bias = theory_cmd.add_mutually_exclusive_group()
    bias.add_argument(
        "--sigma-b",
        type=_non_negative_float,
        default=0.0,
        help="bias scale sigma_b, not squared (default 0)",
    )
    bias.add_argument(
        "--sigma-b2", type=_non_negative_float, help="bias variance sigma_b^2 (or --sigma-b)"
    )
    theory_cmd.add_argument(
        "--critical-line",
        action="store_true",
        help="print critical sigma_w^2 against sigma_b^2 instead",
    )
    plot = commands.add_parser(
        "plot", help="draw a phase diagram (or per-layer norms) from a results directory"
    )
    plot.add_argument("dir", help="results directory")
    plot.add_argument(
        "--kind",
        choices=("phase", "layers"),
        default="phase",
        help="phase: heatmap of a metric over two axes (default); layers: norms against layer",
    )
    plot.add_argument("--x", help="phase: horizontal axis (default sigma_w)")
    plot.add_argument("--y", help="phase: vertical axis (default depth)")
    plot.add_argument("--metric", help="phase: column to colour by (default log10_backward_gain)")
    plot.add_argument(
        "--facet",
        help="comma-separated axes, one panel per value "
        "(phase default: init,activation; layers default: none); '' for none",
    )
    from .plot import AGGREGATIONS, COLOR_SCALES  # numpy and pandas only, no matplotlib

    plot.add_argument(
        "--agg",
        choices=AGGREGATIONS,
        default="median",
        help="aggregate seeds by (default median); std, iqr: their spread (phase only)",
    )
    plot.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE[,VALUE]",
        help="keep rows with KEY in the values; repeatable, e.g. --where width=64; a number "
        "matches to the digits typed (sigma_w=1.32288)",
    )
    plot.add_argument(
        "--vlim",
        metavar="LO,HI",
        help="phase: colour limits, e.g. --vlim=-20,20 (or --vlim 20 for -20,20)",
    )
    plot.add_argument(
        "--color-scale",
        choices=COLOR_SCALES,
        help="phase: one colour bar for all panels (shared, default) or one per panel",
    )
    plot.add_argument(
        "--overlay",
        metavar="AXIS",
        help="phase: draw each value's measured boundary in one panel, e.g. --overlay init",
    )
    plot.add_argument(
        "--out",
        help="image file, .png, .svg or .pdf (default: DIR/phase-<metric>[-<agg>]"
        "[-by-<overlay>][-<key>=<values>...].png from --where, or DIR/layers[...].png)",
    )
    return parser


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} must be finite and >= 0")
    return value


def _bench(args) -> int:
    import datetime

    from . import bench

    default = None if args.quick else f"results/bench/{datetime.date.today().isoformat()}.json"
    figures = bench.run(
        args.quick,
        args.subsample,
        args.json or default,
        say=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(bench.format_report(figures))
    return 0


def _theory(args) -> int:
    from . import activations, cli_theory

    activations.get(args.activation)
    if args.critical_line:
        print(cli_theory.format_critical_line(args.activation))
    else:
        sigma_b = args.sigma_b if args.sigma_b2 is None else math.sqrt(args.sigma_b2)
        print(cli_theory.format_theory_report(args.activation, sigma_b))
    return 0


def _run(args) -> int:
    sweep = spec_module.load(args.spec) if args.spec else spec_module.preset("lecture")
    if args.dry_run:
        from . import cost

        out = args.out or os.path.join("results", sweep.name)
        preview = api.dry_run(
            sweep,
            out,
            root_seed=args.seed,
            chunk_size=args.chunk_size,
            memory_budget=args.memory_budget,
            overwrite=args.overwrite,
            shard=args.shard,
        )
        print(cost.format_preview(preview, out))
        return 0
    out = api.execute(
        sweep,
        args.out,
        root_seed=args.seed,
        chunk_size=args.chunk_size,
        memory_budget=args.memory_budget,
        overwrite=args.overwrite,
        progress=not args.quiet,
        shard=args.shard,
    )
    if args.spec is None:
        print(lecture.lecture_table(store.load(out, where=lecture.TABLE_ROWS)))
    return 0


def _plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from . import plot

    where = plot.parse_where(args.where)
    facet = None if args.facet is None else [f.strip() for f in args.facet.split(",") if f.strip()]
    phase_only = (
        ("--x", args.x),
        ("--y", args.y),
        ("--metric", args.metric),
        ("--vlim", args.vlim),
        ("--color-scale", args.color_scale),
        ("--overlay", args.overlay),
    )
    if args.kind == "layers":
        given = [flag for flag, value in phase_only if value is not None]
        if given:
            raise spec_module.SpecError(
                f"sweep plot: {given[0]} applies to --kind phase, not --kind layers"
            )
        name = plot.default_filename("layers", where=where, agg=args.agg)
    else:
        metric = args.metric or "log10_backward_gain"
        name = plot.default_filename(
            "phase", metric, where=where, agg=args.agg, overlay=args.overlay
        )
    out = args.out or os.path.join(args.dir, name)
    plot.output_format(out)
    vlim = plot.parse_vlim(args.vlim) if args.vlim is not None else None
    frame = api.load(args.dir)
    if frame.empty:
        raise store.StoreError(f"{args.dir} holds no rows yet; run the sweep first")
    if args.kind == "layers":
        fig = plot.layer_plot(frame, where=where, facet=facet or (), agg=args.agg)
    else:
        fig = plot.phase_diagram(
            frame,
            x=args.x or "sigma_w",
            y=args.y or "depth",
            metric=metric,
            facet=plot.DEFAULT_FACET if facet is None else facet,
            agg=args.agg,
            where=where,
            vlim=vlim,
            color_scale=args.color_scale or "shared",
            overlay=args.overlay,
        )
    plot.save(fig, out)
    print(f"sweep: wrote {out}")
    return 0


def _axis_summary(values: list) -> str:
    """An axis in one line: its values when few, else count, range and spacing."""
    if len(values) <= 6:
        return ", ".join(str(v) for v in values)
    numbers = [v for v in values if isinstance(v, (int, float))]
    if len(numbers) < len(values):
        return f"{len(values)} values: {values[0]}, {values[1]}, ..., {values[-1]}"
    steps = {round(b - a, 10) for a, b in zip(numbers, numbers[1:])}
    spacing = f", step {steps.pop():g}" if len(steps) == 1 else ""
    return f"{len(values)} values from {numbers[0]} to {numbers[-1]}{spacing}"


def _info(args) -> int:
    record = store.read_manifest(args.dir)
    status = store.read_column(args.dir, "status").to_pandas()
    sweep = spec_module.from_dict(record["spec"])
    print(f"{args.dir}: sweep {sweep.name!r}, root seed {record['root_seed']}")
    if args.full:
        print(json.dumps(record["spec"], indent=2))
    else:
        axes = record["spec"]["axes"]
        for axis in (a for a in spec_module.AXES if a in axes):
            print(f"  {axis:<15} {_axis_summary(axes[axis])}")
        for table in ("settings", "train"):
            if table in record["spec"]:
                pairs = ", ".join(f"{k} = {v}" for k, v in record["spec"][table].items())
                print(f"  [{table}] {pairs}")
    print(f"rows: {len(status)} of {sweep.n_configs} configs ({len(store.parts(args.dir))} parts)")
    print(f"run with jax {record.get('jax')} on {record.get('device')} ({record.get('platform')})")
    if len(status):
        print("status:")
        for name, count in status.value_counts().items():
            print(f"  {name:<10} {count}")
    return 0


def _export(args) -> int:
    from . import export

    store.read_manifest(args.dir)
    rows = export.write_csv(args.dir, args.csv, layers=args.layers)
    print(f"sweep: wrote {rows} rows to {args.csv}")
    return 0


def _use_compilation_cache() -> None:
    """Keep compiled programs on disk, so a rerun or a resume of the same sweep skips
    compiling (which dominates small sweeps); a broken entry is repaired quietly
    (sweep.compile_cache). SWEEP_CACHE_DIR="" turns it off."""
    from . import compile_cache

    path = os.environ.get(
        "SWEEP_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "sweep", "jax")
    )
    if path:
        compile_cache.use(path)


def main(argv=None) -> int:
    """Runs one command; returns the exit code (2 with one line for any bad input)."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "bench" or (args.command == "run" and not args.dry_run):
            _use_compilation_cache()
        commands = {"run": _run, "info": _info, "theory": _theory, "bench": _bench}
        commands |= {"plot": _plot, "export": _export}
        return commands[args.command](args)
    except (spec_module.SpecError, store.StoreError, ValueError) as err:
        print(f"sweep: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `sweep info DIR | head`: console() ends quietly
        raise
    except OSError as err:  # an --out under a file, a full disk, no permission
        print(f"sweep: error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        return interrupts.report(err)


def console() -> None:
    """The `sweep` console script: signals handled before anything heavy is imported, and
    a closed pipe (`sweep info DIR | head`) ends quietly."""
    try:
        code = main()
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    if code > 128:
        # Interrupted, maybe inside a compiled program: leave at once rather than tear the
        # interpreter down under XLA's running threads. Finished parts are already on disk.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    interrupts.install()
    console()
