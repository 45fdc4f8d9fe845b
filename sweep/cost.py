"""What a sweep costs before it runs: a cost model of the engine's chunks, calibrated by
timing small chunks of the sweep's own heaviest program (sweep run --dry-run), and the
weights of the progress bar.

The model counts, per unit (family, or config with independent draws) of a program, the
work of its layers (the forward and backward products, B x N^2 each; with the Jacobian,
its N x N products and inverse, and each measured depth's extremes), and per chunk the
steps of its scans (a fixed cost per layer whatever the chunk holds). Two calibration
chunks of different sizes give seconds per unit of work and per step; host time is per
row. Compiling is timed on the calibration too, once per chunk shape.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import NamedTuple

import numpy as np

from . import blocks, columns, devices, engine, network, plan, store

# Relative costs of one unit's pieces (in B x N^2 products): a Jacobian layer (J and its
# inverse, N^3 each) and one measured depth's extremes (a symmetric eigensolve, ~20 N^3 on
# LAPACK for the small matrices here).
JACOBIAN_LAYER, JACOBIAN_EXTREMES = 2.0, 20.0
# A scan step's fixed cost in the same units: dispatch and loop overhead of one layer,
# about a 64 x 64 layer's products.
STEP_WORK = 8 * 64 * 64
# What a unit's layer costs besides its products: a fixed part (its log-space scalars and
# small ops) and a part per probe element (elementwise work, B x N). Fitted to one family
# chunk of tanh at widths 2, 8, 16 and 64, depths 1..150 (compute alone, warm; each width
# within 5%): 3,570 and 157. Without them, width 2 was 0.05% of the lecture's work; it
# takes 4.3% of its compute.
UNIT_LAYER_WORK, ELEMENT_WORK = 3600.0, 160.0


def unit_work(program: network.Program) -> float:
    """One unit's work in a chunk of `program`, in B x N^2 products (a layer's products,
    its elementwise work and its fixed part, forward and in each backward stream)."""
    n, layers, batch = program.width, program.n_layers, program.batch
    streams = sum((stop - first) * top for first, stop, top in program.stream_groups)
    work = (batch * n * n + ELEMENT_WORK * batch * n + UNIT_LAYER_WORK) * (layers + streams)
    if program.jacobian:
        inverse = 2.0 if blocks.BLOCKS[program.block].per_family_inverse else 1.0
        work += n**3 * (JACOBIAN_LAYER * inverse * layers + JACOBIAN_EXTREMES * program.n_streams)
    return float(work)


def train_work(train, width: int, depths) -> float:
    """One unit's training work (sweep.train; 0 without [train]), in the same products:
    each of its rows (depth, learning rate) takes `steps` updates of a forward and
    backward pass (about 3 products a layer) over `batch_size` examples."""
    if train is None:
        return 0.0
    per_depth = train.steps * 3 * train.batch_size * width * width
    return float(len(train.learning_rate) * per_depth * np.sum(depths))


def chunk_work(chunk: plan.Chunk) -> tuple[float, float]:
    """(work of its unit slots, steps of its scans) of a chunk: a scan per seed group
    where the groups run in turn (the CPU), one for them all where they are batched."""
    scans = chunk.n_groups if _groups_in_turn() else 1
    return len(chunk.sigma_w) * unit_work(chunk.program), float(scans * chunk.program.n_layers)


def chunk_weight(chunk: plan.Chunk) -> float:
    """A chunk's share of a run (uncalibrated seconds), for the progress bar: its real
    units' work (the padding copies are not the sweep's) and its scan steps."""
    work, steps = chunk_work(chunk)
    return work * chunk.n_valid / len(chunk.sigma_w) + steps * STEP_WORK


class Calibration(NamedTuple):
    """Seconds per unit of work, per scan step, per row (host), and to compile a program."""

    per_work: float
    per_step: float
    per_row: float
    compile_s: float
    theory_s: float  # compiling the theory's programs, once per architecture and activation
    program: network.Program


class Preview(NamedTuple):
    """What sweep run --dry-run prints: the plan and its estimated cost."""

    configs: int
    to_compute: int
    done: int
    units: int
    chunks: int
    programs: int
    shapes: int
    chunk_bytes: int
    budget: int
    compile_s: float
    compute_s: float
    host_s: float
    calibration: Calibration | None
    trains: bool = False

    @property
    def total_s(self) -> float:
        return self.compile_s + self.compute_s + self.host_s


def chunk_shape(chunk: plan.Chunk) -> tuple:
    """What tells a chunk's compiled program apart: its program and argument shapes."""
    return (chunk.program, len(chunk.sigma_w), chunk.n_groups, np.shape(chunk.depths))


def _sample(chunk: plan.Chunk, units: int) -> plan.Chunk:
    """A chunk of `units` slots from chunk's first seed group (padded with its copies),
    one group, every slot valid: the same program at another size."""
    group = len(chunk.sigma_w) // chunk.n_groups
    slots = plan.pad(np.arange(min(units, group)), units)
    rows = len(slots) * (chunk.n_rows // max(chunk.n_valid, 1))
    own = chunk.program.draws == "independent"
    return dataclasses.replace(
        chunk,
        n_groups=1,
        unit_seeds=chunk.unit_seeds[slots],
        sigma_w=chunk.sigma_w[slots],
        sigma_b=chunk.sigma_b[slots],
        residual_scale=chunk.residual_scale[slots],
        depths=chunk.depths[slots] if own else chunk.depths,
        unit_words=chunk.unit_words[slots],
        valid_units=np.arange(len(slots)),
        row_ids=np.full(rows, "0" * 16, dtype=object),
    )


def _timed(chunk: plan.Chunk, root_seed: int) -> tuple[float, float, float, float]:
    """(compile, run, host rows, theory compile) seconds of one chunk: compiling its
    program ahead of time, running it, turning its metrics into an Arrow table (warm),
    and what the first such call took more (the theory's programs compiling)."""
    program, args = engine.program_and_arguments(chunk, root_seed)
    started = time.perf_counter()
    executable = program.lower(*args).compile()
    compiled_at = time.perf_counter()
    result = engine.fetch(executable(*args))
    ran_at = time.perf_counter()
    host = []
    for _ in range(2):  # the second time warm: the first compiles the theory's programs
        begun = time.perf_counter()
        rows = columns.chunk_rows(chunk)
        store.to_table(
            {**columns.measurements(chunk, rows, result), **columns.theory_columns(chunk, rows)},
            len(rows.depth),
        )
        host.append(time.perf_counter() - begun)
        columns._predicted.cache_clear()
    return compiled_at - started, ran_at - compiled_at, host[1], host[0] - host[1]


def calibrate(chunk: plan.Chunk, root_seed: int = 0) -> Calibration:
    """Times two samples of `chunk`'s program, one seed group each: the smallest and one
    of the chunk's own group size (what a chunk repeats per group on the CPU, lax.map),
    and fits seconds per unit of work and per scan step; compiling from the larger."""
    floor = plan.MIN_UNITS_PER_DEVICE * devices.count()
    group = len(chunk.sigma_w) // (chunk.n_groups if _groups_in_turn() else 1)
    samples = [_sample(chunk, size) for size in sorted({floor, max(floor, group)})]
    timed = [_timed(sample, root_seed) for sample in samples]
    works = [chunk_work(sample) for sample in samples]
    (w0, steps), run0 = works[0], timed[0][1]
    if len(samples) > 1 and works[1][0] > w0 and timed[1][1] > run0:
        per_work = (timed[1][1] - run0) / (works[1][0] - w0)
        per_step = max(0.0, run0 - per_work * w0) / steps
    else:  # one size only, or noise: all of it is work
        per_work, per_step = timed[-1][1] / works[-1][0], 0.0
    host_s, n_rows = timed[-1][2], samples[-1].n_rows
    theory_s = max(t[3] for t in timed)  # the first sample compiled them
    per_row = host_s / max(n_rows, 1)
    return Calibration(per_work, per_step, per_row, timed[-1][0], theory_s, chunk.program)


def _groups_in_turn() -> bool:
    """Whether a chunk's seed groups run one after another (engine.SEED_GROUPS)."""
    return engine.SEED_GROUPS[devices.platform()] is engine.one_group_at_a_time


def preview(sweep, planner, done: store.IdSet, shard, root_seed: int, timed: bool = True):
    """The plan of a run (every chunk it would compute, block by block) and, when timed,
    its estimated seconds from a calibration on the heaviest chunk's program."""
    counted = {"units": 0, "rows": 0, "chunks": 0, "work": 0.0, "steps": 0.0}
    shapes, heaviest, chunk_bytes, theories = set(), None, 0, set()
    unit_bytes = {}
    for chunk in planner.chunks(done, shard):
        work, steps = chunk_work(chunk)
        counted["units"] += chunk.n_valid
        counted["rows"] += chunk.n_rows
        counted["chunks"] += 1
        counted["work"] += work
        counted["steps"] += steps
        shapes.add(chunk_shape(chunk))
        theories.add((chunk.bucket.architecture, chunk.bucket.activation))
        if heaviest is None or chunk_weight(chunk) > chunk_weight(heaviest):
            heaviest = chunk
        if chunk.program not in unit_bytes:
            unit_bytes[chunk.program] = planner.per_unit_bytes(chunk.program)
        chunk_bytes = max(chunk_bytes, len(chunk.sigma_w) * unit_bytes[chunk.program])
    calibration = calibrate(heaviest, root_seed) if timed and heaviest is not None else None
    if calibration is None:
        compile_s = compute_s = host_s = float("nan")
    else:
        compile_s = calibration.compile_s * len(shapes)
        compute_s = calibration.per_work * counted["work"]
        compute_s += calibration.per_step * counted["steps"]
        host_s = calibration.per_row * counted["rows"] + calibration.theory_s * len(theories)
    return Preview(
        configs=sweep.n_configs,
        to_compute=counted["rows"],
        done=done.count(),
        units=counted["units"],
        chunks=counted["chunks"],
        programs=len({shape[0] for shape in shapes}),
        shapes=len(shapes),
        chunk_bytes=chunk_bytes,
        budget=planner.budget,
        compile_s=compile_s,
        compute_s=compute_s,
        host_s=host_s,
        calibration=calibration,
        trains=sweep.train is not None,
    )


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "not timed"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_preview(p: Preview, out: str) -> str:
    """The dry run's report, a few lines."""
    lines = [
        f"sweep: dry run into {out}: nothing was computed or written",
        f"  configs   {p.configs:,} ({p.to_compute:,} to compute, {p.done:,} already done)",
        f"  units     {p.units:,} (families: every depth of one network, computed together)",
        f"  chunks    {p.chunks:,} in {p.shapes} compiled shapes of {p.programs} programs",
        f"  memory    up to {p.chunk_bytes / 2**20:,.0f} MiB a chunk "
        f"(budget {p.budget / 2**20:,.0f} MiB)",
    ]
    if p.calibration is not None:
        c = p.calibration.program
        lines.append(
            f"  estimate  about {_duration(p.total_s)}: compiling {_duration(p.compile_s)}, "
            f"computing {_duration(p.compute_s)}, writing rows {_duration(p.host_s)} "
            f"(timed on this machine: width {c.width}, depth {c.n_layers}, {c.block})"
        )
        if p.trains:
            lines.append("            (training is not in the estimate; it often dominates)")
    return "\n".join(lines)


def grid_work(sweep, units_per_chunk) -> float:
    """The weight of every chunk of the sweep (chunk_weight, with training), estimated
    from the spec without planning: the progress bar's whole. units_per_chunk: program ->
    how many units a chunk of it holds (the planner's). Each bucket's units fill chunks,
    and each chunk scans once per seed group where the groups run in turn."""
    units = sweep.n_configs // sweep.rows_per_unit
    widths, variants, dtypes = sweep.axes["width"], sweep.variants, sweep.dtypes
    per_bucket = units / (len(widths) * len(variants) * len(dtypes))
    # Units of one seed in a bucket: a seed group's size, when it is less than a chunk's.
    per_seed = per_bucket / len(sweep.axes["seed"])
    depths = sweep.axes["depth"]
    init, activation = sweep.axes["init"][0], sweep.axes["activation"][0]
    total = 0.0
    for width, (architecture, _), dtype in itertools.product(widths, variants, dtypes):
        for group in plan.bucket_depths(sweep):
            share = len(group) / len(depths) if sweep.draws == "independent" else 1.0
            bucket = plan.Bucket(width, init, activation, group, architecture, dtype=dtype)
            program = plan.program_of(sweep, bucket)
            work = unit_work(program) + train_work(sweep.train, width, group)
            size = units_per_chunk(program)
            scan = min(size, per_seed) if _groups_in_turn() and program.draws == "shared" else size
            scans = np.ceil(per_bucket * share / max(scan, 1))
            total += per_bucket * share * work + scans * program.n_layers * STEP_WORK
    return total
