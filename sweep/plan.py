"""How a sweep is batched: buckets, chunks of families, padding and chunk sizes.

A *unit* of work is a family (every measured depth of one (width, init, activation,
seed, sigma_w, sigma_b)) when draws are shared, and one config when they are independent.
A bucket is what a chunk's units share (width, init, activation, architecture, dtype,
measured depths; and the spec's probe batch and loss). A chunk packs several seeds as
seed groups (seed_groups): a seed-heavy sweep runs as few programs as a sigma-heavy one.
Buckets that differ only in init and activation share one compiled program
(network.Program names the choices; a chunk picks its own by index), so a sweep compiles
about once per width (and architecture and dtype). Seed groups and chunks are padded with
copies of real units, and the copies are dropped. The rows of a chunk, and their config
ids, come from the spec's config table: nothing here computes an id.

With independent draws, units are sorted by depth into a few depth groups
(depth_groups), each a bucket whose program runs to its deepest depth; each config is
measured at its own depth, a run-time input.

Axes: F units (families), S measured depths, R rows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from . import network, spec as spec_module

# Axes that tell a chunk's units apart from other chunks' (a bucket, with the spec's settings).
BUCKET_AXES = ["width", "init", "activation", "architecture", "dtype"]
INDEPENDENT_DEPTH_GROUPS = 4
MIN_UNITS_PER_DEVICE = 2


@dataclasses.dataclass(frozen=True)
class Bucket:
    """What a chunk's units share, besides their seeds and sigmas (and depth, when
    independent).

    depths: the measured depths of the bucket's configs, ascending; dtype: the networks'
    arithmetic (the spec's setting, or a value of its dtype axis).
    """

    width: int
    init: str
    activation: str
    depths: tuple[int, ...]
    architecture: str = "mlp"
    dtype: str = dataclasses.field(kw_only=True)


@dataclasses.dataclass(frozen=True, eq=False)
class Chunk:
    """F = G x F_g units of one bucket in G seed groups of F_g, and the rows they produce.

    With shared draws each group is one seed's families (their Ŵ_l are drawn once per
    layer per group, and the G groups' products are one batched matmul); with
    independent draws G = 1 and the units may have any seeds (each draws its own).

    program: the compiled program that runs it; choice: (init index, activation index)
    into program.inits and program.activations.
    sigma_w, sigma_b, residual_scale: (F,) float64 (the residual scale is 1 where the
    architecture has none; the rows say null); unit_seeds: (F,) int64, group-major; depths: the
    measured depths, (S,) shared by every unit or (F, S) each unit's own (independent
    draws: S = 1); unit_words: (F, 2) uint32, the 64 bits of each unit's first row's
    config id (its keys, with independent draws). Groups are padded to F_g, and the chunk
    to G groups, with copies of a real unit; valid_units: (V,) the positions of the real
    ones, ascending. row_ids: (R,) the config ids of the valid units' rows, unit-major,
    then depth, then learning rate; learning_rates: each (unit, depth) gives one row per
    rate, (None,) without [train].
    """

    bucket: Bucket
    program: network.Program
    choice: tuple[int, int]
    n_groups: int
    unit_seeds: np.ndarray
    sigma_w: np.ndarray
    sigma_b: np.ndarray
    residual_scale: np.ndarray
    depths: np.ndarray
    unit_words: np.ndarray
    valid_units: np.ndarray
    row_ids: np.ndarray
    learning_rates: tuple = (None,)

    @property
    def n_rows(self) -> int:
        """Rows the chunk writes: its valid units' (depth, learning rate) pairs."""
        return len(self.row_ids)

    @property
    def n_valid(self) -> int:
        """V: the real units."""
        return len(self.valid_units)

    @property
    def seeds(self) -> np.ndarray:
        """(G,) each seed group's seed."""
        return self.unit_seeds.reshape(self.n_groups, -1)[:, 0]


def depth_groups(depths: tuple[int, ...], max_groups: int = 2) -> list[tuple[int, ...]]:
    """Splits sorted depths into at most max_groups runs minimising Σ len(run) x max(run).

    Each run is one reverse scan from its deepest layer, so a shallow depth does not ride
    along, masked, through all L layers of the deepest one. Each run also adds its own
    code to compile: for depths 1..150 at width 64, 2 runs cost 10% more compile time than
    1 and save 15% of the run time; 4 runs cost 60% more compile for 6% more.
    """
    n = len(depths)
    groups = min(max_groups, n)
    best = {(0, 0): (0, [])}
    for k in range(1, groups + 1):
        for end in range(1, n + 1):
            options = [
                (
                    best[(k - 1, start)][0] + (end - start) * depths[end - 1],
                    best[(k - 1, start)][1] + [(start, end)],
                )
                for start in range(k - 1, end)
                if (k - 1, start) in best
            ]
            if options:
                best[(k, end)] = min(options, key=lambda o: o[0])
    _, runs = min(
        (best[(k, n)] for k in range(1, groups + 1) if (k, n) in best), key=lambda o: o[0]
    )
    return [tuple(depths[a:b]) for a, b in runs]


def stream_groups(depths: tuple[int, ...]) -> tuple[tuple[int, int, int], ...]:
    """(first, stop, top) of each reverse scan over shared measured depths."""
    out, first = [], 0
    for run in depth_groups(depths):
        out.append((first, first + len(run), run[-1]))
        first += len(run)
    return tuple(out)


def pad(values: np.ndarray, size: int) -> np.ndarray:
    """values (n, ...) padded to (size, ...) with copies of its last entry."""
    return np.concatenate([values, np.repeat(values[-1:], size - len(values), axis=0)])


def id_words(ids) -> np.ndarray:
    """(R, 2) uint32: the 64 bits of each 16-hex-digit config id."""
    numbers = spec_module.id_numbers(ids)
    return np.stack([numbers >> np.uint64(32), numbers & np.uint64(0xFFFFFFFF)], 1).astype(
        np.uint32
    )


def plan(
    sweep: spec_module.Spec, configs: pd.DataFrame, units_per_chunk, n_devices: int = 1
) -> list[Chunk]:
    """Chunks that cover every row of `configs`: whole units of the spec's config table.

    Args:
      sweep: the spec; configs: rows of the config table (with config_id), every row of
        each unit they touch; units_per_chunk: program -> how many units a chunk of it
        holds (memory.units_per_chunk); n_devices: each seed group holds a whole number of
        units per device.
    """
    independent = sweep.draws == "independent"
    if "dtype" not in configs:  # a setting: every bucket has the sweep's one dtype
        configs = configs.assign(dtype=sweep.dtype)
    unit_axes = list(sweep.unit_axes)
    # dropna=False: a non-residual architecture's residual_scale is NaN.
    rows = configs.assign(unit=configs.groupby(unit_axes, sort=False, dropna=False).ngroup())
    rows = rows.sort_values("unit", kind="stable")
    units = rows.drop_duplicates("unit")
    rows_per_unit = len(rows) // max(len(units), 1)
    ids = rows["config_id"].to_numpy()
    first_row = np.arange(len(units)) * rows_per_unit  # units are contiguous in `rows`
    chunks = []
    buckets = units.groupby(BUCKET_AXES, sort=False)
    for key, group in buckets:
        width, init, activation, architecture, dtype = int(key[0]), *key[1:]
        positions = buckets.indices[key]
        unit_depths = group["depth"].to_numpy(np.int64)
        for depths in bucket_depths(sweep):
            members = positions[np.isin(unit_depths, depths)] if independent else positions
            if not len(members):
                continue
            bucket = Bucket(width, init, activation, depths, architecture, dtype=dtype)
            program = program_of(sweep, bucket)
            chunks += chunks_of(
                sweep,
                bucket,
                program,
                units.iloc[members],
                [ids[r : r + rows_per_unit] for r in first_row[members]],
                units_per_chunk(program),
                n_devices,
            )
    return chunks


def bucket_depths(sweep: spec_module.Spec) -> list[tuple[int, ...]]:
    """The measured depths of each bucket: all of them with shared draws (one family is
    every depth); with independent draws a few depth groups, each run to its deepest."""
    depths = tuple(sweep.axes["depth"])
    if sweep.draws == "independent":
        return depth_groups(depths, INDEPENDENT_DEPTH_GROUPS)
    return [depths]


def programs(sweep: spec_module.Spec) -> list[network.Program]:
    """Every program the sweep compiles, at most (one per width, architecture, dtype and
    depth group)."""
    groups = bucket_depths(sweep)
    init, activation = sweep.axes["init"][0], sweep.axes["activation"][0]
    return [
        program_of(sweep, Bucket(width, init, activation, depths, architecture, dtype=dtype))
        for width in sweep.axes["width"]
        for architecture in sweep.axes["architecture"]
        for dtype in sweep.dtypes
        for depths in groups
    ]


def program_of(sweep: spec_module.Spec, bucket: Bucket) -> network.Program:
    """The program that runs `bucket`. Shared draws: the sweep's inits and activations as
    run-time choices, one program per (width, depths): compiling costs seconds per program
    on a CPU and the switch costs nothing measurable, so a sweep of 3 inits x 3
    activations compiles 1 program per width rather than 9. Independent draws: one program
    per bucket, run to its deepest depth, one stream per config."""
    if sweep.draws == "independent":
        deepest = bucket.depths[-1]
        groups, names = ((0, 1, deepest),), ((bucket.init,), (bucket.activation,))
    else:
        groups = stream_groups(bucket.depths)
        names = (tuple(sweep.axes["init"]), tuple(sweep.axes["activation"]))
    return network.Program(
        width=bucket.width,
        dtype=bucket.dtype,
        batch=sweep.batch,
        loss=sweep.loss,
        n_layers=bucket.depths[-1],
        stream_groups=groups,
        inits=names[0],
        activations=names[1],
        draws=sweep.draws,
        block=bucket.architecture,
        jacobian=sweep.jacobian,
    )


def seed_groups(seeds: np.ndarray, size: int, independent: bool, n_devices: int = 1):
    """How units with these seeds (U,) pack into chunks of about `size` units.

    Returns (pieces, group_units, groups_per_chunk): pieces, a list of index arrays into
    the units, each one seed group (one seed; independent draws: any seeds) of at most
    group_units units; a chunk holds groups_per_chunk pieces. A seed with more units than
    a chunk holds is split into pieces of a full chunk; seeds with fewer share chunks.
    """
    floor = MIN_UNITS_PER_DEVICE * n_devices

    def whole(n):  # at least `floor` units, a multiple of n_devices
        return -(-max(n, floor) // n_devices) * n_devices

    if independent:
        order = np.arange(len(seeds))
        group_units = whole(min(size, len(seeds)))
        pieces = [order[i : i + group_units] for i in range(0, len(order), group_units)]
        return pieces, group_units, 1
    order = np.argsort(seeds, kind="stable")
    counts = np.unique(seeds[order], return_counts=True)[1]
    by_seed = np.split(order, np.cumsum(counts)[:-1])
    group_units = whole(min(size, int(counts.max())))
    pieces = [m[i : i + group_units] for m in by_seed for i in range(0, len(m), group_units)]
    groups_per_chunk = max(1, min(size // group_units, len(pieces)))
    return pieces, group_units, groups_per_chunk


def chunks_of(sweep, bucket, program, units, unit_ids, size, n_devices=1):
    """The bucket's units (a frame with seed, sigma_w, sigma_b, depth; unit_ids: each
    one's row ids) in chunks of about `size` units (seed_groups), run by `program`."""
    choice = (program.inits.index(bucket.init), program.activations.index(bucket.activation))
    rates = sweep.train.learning_rate if sweep.train is not None else (None,)
    sigma_w, sigma_b = units["sigma_w"].to_numpy(float), units["sigma_b"].to_numpy(float)
    residual_scale = np.nan_to_num(units["residual_scale"].to_numpy(float), nan=1.0)
    seeds = units["seed"].to_numpy(np.int64)
    own_depths = program.draws == "independent"
    depths = units["depth"].to_numpy(np.int64)[:, None] if own_depths else None
    words = id_words([ids[0] for ids in unit_ids])
    pieces, group_units, per_chunk = seed_groups(seeds, size, own_depths, n_devices)
    chunks = []
    for start in range(0, len(pieces), per_chunk):
        chunk_pieces = pieces[start : start + per_chunk]
        # Each piece padded to group_units with copies of its last unit, the chunk to
        # per_chunk pieces with copies of its last piece; the copies are not valid.
        slots = pad(np.stack([pad(p, group_units) for p in chunk_pieces]), per_chunk).reshape(-1)
        real = np.zeros((per_chunk, group_units), bool)
        for g, p in enumerate(chunk_pieces):
            real[g, : len(p)] = True
        valid = np.flatnonzero(real.reshape(-1))
        chunks.append(
            Chunk(
                bucket=bucket,
                program=program,
                choice=choice,
                n_groups=per_chunk,
                unit_seeds=seeds[slots],
                sigma_w=sigma_w[slots],
                sigma_b=sigma_b[slots],
                residual_scale=residual_scale[slots],
                depths=depths[slots] if own_depths else np.asarray(bucket.depths),
                unit_words=words[slots],
                valid_units=valid,
                row_ids=np.concatenate([unit_ids[i] for i in slots[valid]]),
                learning_rates=rates,
            )
        )
    return chunks
