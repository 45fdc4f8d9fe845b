"""Batching: buckets and chunks of families, one compiled program per bucket, streamed out.

A bucket fixes everything static (width, init, activation, dtype, probe batch, loss and
the measured depths). Buckets that differ only in init and activation share one compiled
program (program_of: the sweep's inits and activations as lax.switch branches, the
chunk's picked by index at run time), so a sweep compiles about once per width. A chunk
is up to `chunk_families` families of one bucket that share a seed, and so share every
weight matrix; the last chunk of a bucket is padded with copies of a real family, and the
copies are dropped. Nothing here touches files: `evaluate` yields Arrow tables, one per
chunk.

With independent draws a family is one config: configs are sorted by depth and split into
a few depth groups (network.depth_groups), each a bucket of depths (L,) for its deepest,
and each config runs to L with its own weights and is measured at its own depth.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from . import network, store, theory, train
from . import spec as spec_module

TRACE_COUNT = {"families": 0}


def device_count() -> int:
    """Local devices the config axis is split over."""
    return jax.local_device_count()


@dataclasses.dataclass(frozen=True)
class Chunk:
    bucket: network.Bucket
    seed: int
    sigma_w: np.ndarray  # (F,) padded
    sigma_b: np.ndarray  # (F,) padded
    n_valid: int
    train: spec_module.TrainSettings | None = None  # spec.train: the trainability probe
    depth: np.ndarray | None = None  # (F,) padded: each config's depth, independent draws only
    program: network.Bucket | None = (
        None  # the compiled program's bucket (program_of); None: bucket
    )

    @property
    def learning_rates(self) -> tuple:
        """Each (family, depth) gives one row per learning rate; (None,) without [train]."""
        return self.train.learning_rate if self.train is not None else (None,)

    @property
    def n_rows(self) -> int:
        return self.n_valid * len(self.bucket.depths) * len(self.learning_rates)


def config_words(chunk: Chunk) -> np.ndarray:
    """(F, 2) uint32: the 64 bits of each family's config_id, the root of its own keys
    (network.config_keys) with independent draws; zeros (unused) when draws are shared."""
    if not chunk.bucket.independent:
        return np.zeros((len(chunk.sigma_w), 2), np.uint32)
    b = chunk.bucket
    ids = [
        spec_module.config_id(
            {
                "depth": int(d),
                "sigma_w": float(sw),
                "sigma_b": float(sb),
                "width": b.width,
                "init": b.init,
                "activation": b.activation,
                "seed": chunk.seed,
            }
        )
        for d, sw, sb in zip(chunk.depth, chunk.sigma_w, chunk.sigma_b)
    ]
    return np.array([[int(i[:8], 16), int(i[8:16], 16)] for i in ids], np.uint32)


def family_bytes(bucket: network.Bucket) -> int:
    """Peak memory one family adds to a chunk's program, in bytes: an upper bound checked
    against XLA's own memory analysis in tests/test_planner.py."""
    item = np.dtype(jnp.dtype(bucket.dtype)).itemsize
    layers, batch, width, streams = bucket.max_depth, bucket.batch, bucket.width, len(bucket.depths)
    stored = (
        (layers + 1) * batch * (3 * width * item + 2 * 8)
    )  # a_hat, dphi, cotangents, log-scales
    backward = streams * batch * width * (2 * item + 2 * 8)  # stream carry and its temporaries
    outputs = 3 * streams * layers * 8  # per-layer gradient norms, with their copies
    jacobian = (
        (8 + 4 * (streams + 1)) * width * width * 8
    )  # J, J^-1, temporaries; each measured depth's, twice
    own_weights = (
        6 * width * width * 8 if bucket.independent else 0
    )  # Ŵ, W^-1 and their float64 copies
    return int(2.5 * stored) + backward + outputs + jacobian + own_weights


def default_memory_budget() -> int:
    """A quarter of the memory the devices have free: GPU/TPU memory when the backend
    reports it, else the host's available RAM."""
    devices = jax.local_devices()
    stats = devices[0].memory_stats() if devices[0].platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        free = sum(
            d.memory_stats()["bytes_limit"] - d.memory_stats().get("bytes_in_use", 0)
            for d in devices
        )
    else:
        free = _host_available_bytes()
    return max(64 * 2**20, free // 4)


def _host_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 4 * 2**30


def chunk_families(
    bucket: network.Bucket, memory_budget: int, chunk_size: int | None, train_settings=None
) -> int:
    """Families per chunk: from --chunk-size (in configs) if given, else from the budget."""
    if chunk_size is not None:  # configs = rows: each family is every depth at every learning rate
        rates = len(train_settings.learning_rate) if train_settings is not None else 1
        return max(1, chunk_size // (len(bucket.depths) * rates))
    per_family = family_bytes(bucket)
    if (
        train_settings is not None
    ):  # every depth and learning rate of a family trains, with its optimizer state
        trained = len(bucket.depths) * len(train_settings.learning_rate)
        per_family += trained * train.train_bytes_per_config(bucket, train_settings)
    return max(1, int(memory_budget // per_family))


def plan(
    sweep: spec_module.Spec,
    families,
    memory_budget: int | None = None,
    chunk_size: int | None = None,
):
    """Chunks that cover `families`: a table with the sweep's unit_axes columns (families;
    single configs with independent draws)."""
    memory_budget = memory_budget or default_memory_budget()
    if sweep.draws == "independent":
        return _plan_independent(sweep, families, memory_budget, chunk_size)
    chunks = []
    for (width, init, activation, seed), group in families.groupby(
        ["width", "init", "activation", "seed"], sort=False
    ):
        bucket = network.Bucket(
            int(width),
            init,
            activation,
            sweep.dtype,
            sweep.batch,
            sweep.loss,
            tuple(sweep.axes["depth"]),
        )
        program = program_of(bucket, sweep.axes["init"], sweep.axes["activation"])
        size = min(chunk_families(bucket, memory_budget, chunk_size, sweep.train), len(group))
        size = -(-size // device_count()) * device_count()  # a whole number of families per device
        sigma_w, sigma_b = group["sigma_w"].to_numpy(float), group["sigma_b"].to_numpy(float)
        for start in range(0, len(group), size):
            stop = min(start + size, len(group))
            pad = size - (stop - start)
            chunks.append(
                Chunk(
                    bucket,
                    int(seed),
                    np.concatenate([sigma_w[start:stop], np.repeat(sigma_w[stop - 1], pad)]),
                    np.concatenate([sigma_b[start:stop], np.repeat(sigma_b[stop - 1], pad)]),
                    stop - start,
                    sweep.train,
                    program=program,
                )
            )
    return chunks


def program_of(bucket: network.Bucket, inits, activations) -> network.Bucket:
    """The program that runs `bucket`: one per (width, dtype, batch, loss, depths) with the
    given inits and activations as run-time choices. Compiling costs seconds per program
    on a CPU and the switch costs nothing measurable, so this is how a sweep of 3 inits x 3
    activations compiles 1 program per width rather than 9."""
    return dataclasses.replace(bucket, init=tuple(inits), activation=tuple(activations))


def choice(chunk: Chunk) -> tuple[int, int]:
    """(init index, activation index) of the chunk's bucket in its program's tuples."""
    program = chunk.program or chunk.bucket
    pick = lambda names, name: names.index(name) if isinstance(names, tuple) else 0  # noqa: E731
    return pick(program.init, chunk.bucket.init), pick(program.activation, chunk.bucket.activation)


def _plan_independent(
    sweep, configs, memory_budget: int, chunk_size: int | None, max_groups: int = 4
):
    """Chunks of configs (rows of `configs`, with depth) for independent draws: a few depth
    groups per (width, init, activation, seed), each a bucket of depths (its deepest,)."""
    chunks = []
    groups = network.depth_groups(tuple(sweep.axes["depth"]), max_groups)
    for (width, init, activation, seed), group in configs.groupby(
        ["width", "init", "activation", "seed"], sort=False
    ):
        for depths in groups:
            members = group[group["depth"].isin(depths)]
            if members.empty:
                continue
            bucket = network.Bucket(
                int(width),
                init,
                activation,
                sweep.dtype,
                sweep.batch,
                sweep.loss,
                (depths[-1],),
                "independent",
            )
            size = min(chunk_families(bucket, memory_budget, chunk_size), len(members))
            size = -(-size // device_count()) * device_count()
            columns = {
                k: members[k].to_numpy(v)
                for k, v in (("sigma_w", float), ("sigma_b", float), ("depth", np.int64))
            }
            for start in range(0, len(members), size):
                stop = min(start + size, len(members))
                padded = {
                    k: np.concatenate(
                        [v[start:stop], np.repeat(v[stop - 1], size - (stop - start))]
                    )
                    for k, v in columns.items()
                }
                chunks.append(
                    Chunk(
                        bucket,
                        int(seed),
                        padded["sigma_w"],
                        padded["sigma_b"],
                        stop - start,
                        depth=padded["depth"],
                    )
                )
    return chunks


@functools.cache
def compiled(bucket: network.Bucket, n_devices: int):
    """The bucket's program over n_devices local devices; jit compiles it once per chunk
    shape. With several devices the family axis is split across them with shard_map: each
    device draws the same shared weights and runs its own families, with no communication.
    """

    def run(sigma_w, sigma_b, depth, words, seed, root_key, init_index, activation_index):
        TRACE_COUNT["families"] += 1
        return network.families(
            sigma_w, sigma_b, seed, root_key, bucket, depth, words, (init_index, activation_index)
        )

    if n_devices == 1:
        return jax.jit(run)
    mesh = family_mesh(n_devices)
    family_axis, replicated = P("families"), P()
    sharded = jax.shard_map(
        run,
        mesh=mesh,
        in_specs=(family_axis,) * 4 + (replicated,) * 4,
        out_specs=family_axis,
        check_vma=False,
    )
    return jax.jit(sharded)


@functools.cache
def family_mesh(n_devices: int):
    return jax.make_mesh((n_devices,), ("families",), devices=jax.local_devices()[:n_devices])


def evaluate_chunk(chunk: Chunk, root_seed: int) -> dict[str, np.ndarray]:
    n_devices = device_count()
    depth = (
        chunk.depth if chunk.depth is not None else np.zeros(len(chunk.sigma_w), np.int64)
    )  # unused when shared
    per_family = [
        jnp.asarray(v) for v in (chunk.sigma_w, chunk.sigma_b, depth, config_words(chunk))
    ]
    shared = [
        jnp.int32(chunk.seed),
        jax.random.key(root_seed),
        *(jnp.int32(i) for i in choice(chunk)),
    ]
    if n_devices > 1:
        mesh = family_mesh(n_devices)
        per_family = [jax.device_put(v, NamedSharding(mesh, P("families"))) for v in per_family]
        shared = [jax.device_put(v, NamedSharding(mesh, P())) for v in shared]
    out = compiled(chunk.program or chunk.bucket, n_devices)(*per_family, *shared)
    return {k: np.asarray(v)[: chunk.n_valid] for k, v in out.items()}


def _first_layer(flags: np.ndarray) -> np.ndarray:
    """1-based index of the first True along the last axis, or 0 when none."""
    return np.where(flags.any(axis=-1), flags.argmax(axis=-1) + 1, 0)


def _list_column(values: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """values (R, K) with row r keeping its first lengths[r] entries, as list<double>."""
    mask = np.arange(values.shape[1])[None, :] < lengths[:, None]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[mask], pa.float64()))


def _prefix_list_column(values: np.ndarray, row_of: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """values (F, K); row r is values[row_of[r], :lengths[r]], as list<double>."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    flat = (
        np.concatenate([values[f, :n] for f, n in zip(row_of, lengths)])
        if len(lengths)
        else np.zeros(0)
    )
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float64()))


def to_table(chunk: Chunk, result: dict[str, np.ndarray], root_seed: int = 0) -> pa.Table:
    """One row per (family, measured depth, learning rate), in the store's schema; the
    rows of one (family, depth) share their measurements and differ in training."""
    bucket = chunk.bucket
    depths, rates = np.asarray(bucket.depths), chunk.learning_rates
    n_families, n_depths, n_rates = chunk.n_valid, len(depths), len(rates)
    # Measurements are per (family, depth): computed once, then repeated per learning rate.
    # With independent draws each family is one config (n_depths = 1) at its own depth.
    family_depths = (
        chunk.depth[:n_families, None]
        if bucket.independent
        else np.broadcast_to(depths, (n_families, n_depths))
    )
    row_depth = np.repeat(family_depths.reshape(-1), n_rates)
    family_of_row = np.repeat(np.arange(n_families), n_depths * n_rates)
    measured_row = np.repeat(np.arange(n_families * n_depths), n_rates)
    row_rate = np.tile(
        np.asarray(rates, dtype=float if chunk.train else object), n_families * n_depths
    )

    # Row arrays are never (R, L+1) copies of the family's activations: at 1,000 depths a
    # chunk has 10^5 rows, and such copies were most of a run's peak memory.
    act = result["log10_act_norm"][:n_families]  # (F, L+1)
    per_row = (lambda x: x) if n_rates == 1 else (lambda x: x[measured_row])  # noqa: E731  no copy of the big one
    grad = per_row(result["log10_grad_norm"].reshape(n_families * n_depths, -1))  # (R, L)
    jac = per_row(result["log10_jac_sv"].reshape(n_families * n_depths, 2))  # (R, 2)
    gain_fwd = act[family_of_row, row_depth] - act[family_of_row, 0]
    gain_bwd = per_row(result["log10_backward_gain"].reshape(-1))

    def first_within_depth(flags):
        first = _first_layer(flags)[family_of_row]
        return np.where((first > 0) & (first <= row_depth), first, 0)

    overflow = first_within_depth(result["overflow"])
    dead = np.isneginf(act[family_of_row, row_depth])  # every output activation exactly 0
    underflow = first_within_depth(result["underflow"] & ~result["dead"])
    # NaN anywhere within the row's depth (-inf is a real answer: a dead net). Activation
    # l = 0..L is "layer" l + 1 for _first_layer; gradient norms above a row's depth are NaN
    # by design, so only a first NaN at or below it counts.
    first_nan_act = _first_layer(np.isnan(act))[family_of_row]
    first_nan_grad = _first_layer(np.isnan(grad))
    nonfinite = (
        ((first_nan_act > 0) & (first_nan_act <= row_depth + 1))
        | ((first_nan_grad > 0) & (first_nan_grad <= row_depth))
        | np.isnan(gain_bwd)
        | np.isnan(jac).any(axis=1)
    )
    status = np.select(
        [nonfinite, dead, overflow > 0, underflow > 0],
        ["nonfinite", "dead", "overflow", "underflow"],
        "ok",
    )
    sigma_w = chunk.sigma_w[family_of_row]
    sigma_b = chunk.sigma_b[family_of_row]
    config_ids = [
        spec_module.config_id(
            {
                "depth": int(d),
                "sigma_w": float(sw),
                "sigma_b": float(sb),
                "width": bucket.width,
                "init": bucket.init,
                "activation": bucket.activation,
                "seed": chunk.seed,
                "learning_rate": None if rate is None else float(rate),
            }
        )
        for d, sw, sb, rate in zip(row_depth, sigma_w, sigma_b, row_rate)
    ]
    n_rows = len(row_depth)
    nullable = lambda x: pa.array(x, pa.int64(), mask=(x == 0))  # noqa: E731
    columns = {
        "config_id": pa.array(config_ids, pa.string()),
        "depth": pa.array(row_depth, pa.int64()),
        "width": pa.array(np.full(n_rows, bucket.width), pa.int64()),
        "sigma_w": pa.array(sigma_w, pa.float64()),
        "sigma_b": pa.array(sigma_b, pa.float64()),
        "init": pa.array([bucket.init] * n_rows, pa.string()),
        "activation": pa.array([bucket.activation] * n_rows, pa.string()),
        "seed": pa.array(np.full(n_rows, chunk.seed), pa.int64()),
        "dtype": pa.array([bucket.dtype] * n_rows, pa.string()),
        "log10_act_norm": _prefix_list_column(act, family_of_row, row_depth + 1),
        "log10_forward_gain": pa.array(gain_fwd, pa.float64()),
        "log10_grad_norm": _list_column(grad, row_depth),
        "log10_backward_gain": pa.array(gain_bwd, pa.float64()),
        "log10_jac_sv_max": pa.array(jac[:, 0], pa.float64()),
        "log10_jac_sv_min": pa.array(jac[:, 1], pa.float64()),
        "overflow_layer": nullable(overflow),
        "underflow_layer": nullable(underflow),
        "status": pa.array(status, pa.string()),
    }
    columns.update(theory_columns(bucket, sigma_w, sigma_b, row_depth))
    columns.update(
        train.train_columns(chunk, row_depth, family_of_row, row_rate, chunk.train, root_seed)
    )
    return pa.table(columns, schema=store.SCHEMA)


def theory_columns(bucket: network.Bucket, sigma_w, sigma_b, depth) -> dict[str, pa.Array]:
    """Mean-field predictions for each row (R,). They hold for i.i.d. inits and share chi1
    with orthogonal; the identity init is deterministic, so only identity+linear (where
    the prediction, a gain of sigma_w per layer, is exact) gets values, others get null."""
    applies = bucket.init != "identity" or bucket.activation == "linear"
    if not applies:  # all null: nothing to predict
        return {
            name: pa.nulls(len(depth), store.SCHEMA.field(name).type) for name in THEORY_COLUMNS
        }
    grid = tuple(
        np.ascontiguousarray(v, dtype).tobytes()
        for v, dtype in ((sigma_w, float), (sigma_b, float), (depth, np.int64))
    )
    predicted = dict(_predicted(bucket.activation, *grid))
    phase_code = predicted.pop("theory_phase")
    out = {name: pa.array(values, pa.float64()) for name, values in predicted.items()}
    phases = np.asarray(theory.PHASES + ("",))[phase_code]
    out["theory_phase"] = pa.array(phases, pa.string(), mask=phase_code < 0)
    return out


THEORY_COLUMNS = [name for name in store.SCHEMA.names if name.startswith("theory_")]


@functools.lru_cache(maxsize=8)
def _predicted(activation: str, sigma_w: bytes, sigma_b: bytes, depth: bytes) -> tuple:
    """theory.predict of a chunk's rows, kept for the next chunk with the same grid: the
    prediction does not depend on init or width, and a sweep repeats it for each."""
    arrays = (np.frombuffer(sigma_w), np.frombuffer(sigma_b), np.frombuffer(depth, np.int64))
    return tuple((k, np.asarray(v)) for k, v in theory.predict(activation, *arrays).items())


def evaluate(chunks, root_seed: int) -> Iterator[tuple[Chunk, pa.Table]]:
    """Evaluates chunks in order, yielding each chunk's rows as soon as they exist."""
    for chunk in chunks:
        yield chunk, to_table(chunk, evaluate_chunk(chunk, root_seed), root_seed)


def n_configs(chunks) -> int:
    """Rows the chunks produce."""
    return sum(c.n_rows for c in chunks)
