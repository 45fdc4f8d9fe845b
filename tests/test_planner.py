"""The memory planner: its per-unit estimate bounds XLA's own memory analysis, and a
chunk it picks under a small budget fits in that budget."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import xla_temp_and_argument_bytes

from sweep import api, engine, memory, network, plan, spec

SHAPES = {
    "narrow-deep": (2, tuple(range(1, 121)), "linear", "shared", "mlp"),
    "medium-few-depths": (16, (10, 80, 160), "relu", "shared", "mlp"),
    "wide": (96, tuple(range(2, 33, 2)), "tanh", "shared", "mlp"),
    "independent": (32, (60,), "tanh", "independent", "mlp"),
    "resnet": (64, tuple(range(1, 41)), "tanh", "shared", "resnet"),
    "resnet-prenorm": (32, (10, 80, 152), "relu", "shared", "resnet_prenorm"),
    "mlp-layernorm": (48, tuple(range(2, 33, 2)), "tanh", "shared", "mlp_layernorm"),
}


def program_of(width, depths, activation, draws, architecture="mlp"):
    groups = plan.stream_groups(depths) if draws == "shared" else ((0, 1, depths[-1]),)
    return network.Program(
        width,
        "float32",
        8,
        "cotangent",
        depths[-1],
        groups,
        ("gaussian",),
        (activation,),
        draws,
        block=architecture,
    )


def xla_bytes(program, depths, n_units):
    run, _ = engine.compiled(program, 1)
    own = program.draws == "independent"
    args = (
        jnp.ones((1, n_units)),
        jnp.zeros((1, n_units)),
        jnp.ones((1, n_units)),
        jnp.full((1, n_units, 1), depths[-1]) if own else jnp.asarray(depths),
        jnp.zeros((1, n_units, 2), jnp.uint32),
        jnp.zeros(1, jnp.int32),
        jax.random.key(0),
        jnp.int32(0),
        jnp.int32(0),
    )
    return xla_temp_and_argument_bytes(run.lower(*args).compile())


@pytest.mark.parametrize(
    "width, depths, activation, draws, architecture", SHAPES.values(), ids=SHAPES.keys()
)
def test_estimate_bounds_xla_memory_analysis(width, depths, activation, draws, architecture):
    program = program_of(width, depths, activation, draws, architecture)
    two, six = xla_bytes(program, depths, 2), xla_bytes(program, depths, 6)
    per_unit = (six - two) / 4
    assert per_unit <= memory.unit_bytes(program) <= 4 * per_unit


def test_planned_chunk_fits_a_small_budget():
    sweep = spec.from_dict(
        {
            "axes": {
                "depth": list(range(1, 41)),
                "sigma_w": list(np.linspace(0.5, 2, 40)),
                "width": [32],
            }
        }
    )
    budget = 5 * 2**20  # the smallest chunk, 2 families, fits
    configs = sweep.configs()

    def units_per_chunk(program):
        return memory.units_per_chunk(program, len(sweep.axes["depth"]), budget)

    chunks = plan.plan(sweep, configs, units_per_chunk)
    assert len(chunks) > 1 and sum(c.n_valid for c in chunks) == 40
    assert sum(c.n_rows for c in chunks) == len(configs)
    size = len(chunks[0].sigma_w)
    assert xla_bytes(chunks[0].program, chunks[0].bucket.depths, size) <= budget
    assert size * memory.unit_bytes(chunks[0].program) <= budget


def test_default_budget_is_a_fraction_of_free_memory():
    assert 64 * 2**20 <= memory.default_memory_budget() <= memory.host_available_bytes()


def test_chunks_carry_the_spec_config_ids():
    sweep = spec.from_dict(
        {"axes": {"depth": [1, 4], "sigma_w": [0.5, 1.0, 2.0], "width": [4], "seed": [0, 1]}}
    )
    configs = sweep.configs()
    chunks = plan.plan(sweep, configs, lambda program: 2)
    ids = np.concatenate([c.row_ids for c in chunks])
    assert sorted(ids) == sorted(configs["config_id"]) and len(set(ids)) == len(ids)
    # Row r of a chunk is (unit, depth) in order, and its id is the spec's for those values.
    lookup = configs.set_index("config_id")
    for chunk in chunks:
        for r, config_id in enumerate(chunk.row_ids):
            valid, depth = divmod(r, 2)
            unit = chunk.valid_units[valid]
            row = lookup.loc[config_id]
            assert row["depth"] == sweep.axes["depth"][depth]
            assert row["sigma_w"] == chunk.sigma_w[unit] and row["seed"] == chunk.unit_seeds[unit]


def test_shards_split_units_disjointly():
    sweep = spec.from_dict(
        {"axes": {"depth": [1, 2], "sigma_w": [0.5, 1.0, 1.5, 2.0], "width": [4]}}
    )
    units = sweep.configs()[list(sweep.unit_axes)].drop_duplicates()
    masks = [api.shard_mask(units, i, 3) for i in range(3)]
    assert (sum(m.astype(int) for m in masks) == 1).all()


def test_seeds_pack_into_groups_and_uneven_seeds_pad():
    sweep = spec.from_dict(
        {"axes": {"depth": [1, 2], "sigma_w": [0.5, 1.0, 1.5], "width": [4], "seed": [0, 1, 2]}}
    )
    configs = sweep.configs()
    chunks = plan.plan(sweep, configs, lambda program: 100)
    assert len(chunks) == 1 and chunks[0].n_groups == 3
    assert list(chunks[0].seeds) == [0, 1, 2] and chunks[0].n_valid == 9
    # A resumed sweep: seed 1 has one family left, seed 2 all three.
    todo = configs[(configs["seed"] == 2) | ((configs["seed"] == 1) & (configs["sigma_w"] == 1.0))]
    chunks = plan.plan(sweep, todo, lambda program: 4)
    ids = np.concatenate([c.row_ids for c in chunks])
    assert sorted(ids) == sorted(todo["config_id"])
    for chunk in chunks:
        groups = chunk.unit_seeds.reshape(chunk.n_groups, -1)
        assert (groups == groups[:, :1]).all()  # one seed per group
        rows = dict(zip(chunk.row_ids, np.repeat(chunk.valid_units, 2)))
        lookup = todo.set_index("config_id")
        for config_id, unit in rows.items():
            assert lookup.loc[config_id, "seed"] == chunk.unit_seeds[unit]
            assert lookup.loc[config_id, "sigma_w"] == chunk.sigma_w[unit]
