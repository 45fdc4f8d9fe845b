"""The memory planner: its per-family estimate bounds XLA's own memory analysis, and a
chunk it picks under a small budget fits in that budget."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweep import engine, network, spec

SHAPES = {
    "narrow-deep": (2, tuple(range(1, 121)), "linear", "shared"),
    "medium-few-depths": (16, (10, 80, 160), "relu", "shared"),
    "wide": (96, tuple(range(2, 33, 2)), "tanh", "shared"),
    "independent": (32, (60,), "tanh", "independent"),
}


def xla_bytes(bucket, n_families):
    per_family = (
        jnp.ones(n_families),
        jnp.zeros(n_families),
        jnp.full(n_families, bucket.max_depth),
        jnp.zeros((n_families, 2), jnp.uint32),
    )
    compiled = (
        engine.compiled(bucket, 1)
        .lower(*per_family, jnp.int32(0), jax.random.key(0), jnp.int32(0), jnp.int32(0))
        .compile()
    )
    stats = compiled.memory_analysis()
    return stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes


@pytest.mark.parametrize("width, depths, activation, draws", SHAPES.values(), ids=SHAPES.keys())
def test_estimate_bounds_xla_memory_analysis(width, depths, activation, draws):
    bucket = network.Bucket(width, "gaussian", activation, "float32", 8, "cotangent", depths, draws)
    two, six = xla_bytes(bucket, 2), xla_bytes(bucket, 6)
    per_family = (six - two) / 4
    assert per_family <= engine.family_bytes(bucket) <= 4 * per_family


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
    families = sweep.configs().drop_duplicates(list(spec.FAMILY_AXES))[list(spec.FAMILY_AXES)]
    budget = 3 * 2**20
    chunks = engine.plan(sweep, families, memory_budget=budget)
    assert len(chunks) > 1 and sum(c.n_valid for c in chunks) == len(families)
    size = len(chunks[0].sigma_w)
    assert xla_bytes(chunks[0].bucket, size) <= budget
    assert size * engine.family_bytes(chunks[0].bucket) <= budget


def test_default_budget_is_a_fraction_of_free_memory():
    assert 64 * 2**20 <= engine.default_memory_budget() <= engine._host_available_bytes()
