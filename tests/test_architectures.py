"""The residual and LayerNorm architectures (sweep.blocks) against an independent float64
implementation (plain arithmetic and JAX autodiff, numpy's SVD), closed forms at depth
10,000, and LayerNorm's output at any scale."""

import dataclasses
import functools
import math

import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from sweep import activations, api, blocks, logspace, network, spec

DEPTHS = (1, 3, 6, 10)
WIDTH, BATCH = 12, 3
EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)


def program_of(architecture, activation, depths=DEPTHS, dtype="float64", width=WIDTH):
    base = helpers.program(width, "gaussian", activation, depths, dtype=dtype, batch=BATCH)
    return dataclasses.replace(base, block=architecture)


def plain_layer(architecture, act, x, w, b, alpha):
    """One layer as a textbook writes it, float64, LayerNorm without epsilon."""

    def layer_norm(v):
        centred = v - v.mean(-1, keepdims=True)
        return centred / jnp.sqrt((centred**2).mean(-1, keepdims=True))

    if architecture == "mlp":
        return act(x @ w.T + b)
    if architecture == "mlp_layernorm":
        return act(layer_norm(x @ w.T + b))
    inner = layer_norm(x) if architecture == "resnet_prenorm" else x
    return x + alpha * (act(inner) @ w.T + b)


ACTIVATIONS = ("tanh", "relu")


@functools.cache
def engine(architecture):
    """The engine's metrics of one family, and its Ŵ_l, b̂_l, probes and cotangents, from
    one compiled program (XLA may draw the weights an ulp apart in another program: eager
    ops are not fused); both activations are run-time choices."""
    program = dataclasses.replace(program_of(architecture, "tanh"), activations=ACTIVATIONS)

    @jax.jit
    def run(sigma_w, sigma_b, alpha, seed, activation_index):
        keys = network.family_keys(jax.random.key(0), seed, WIDTH, program.inits)
        scales = blocks.Scales(sigma_w, sigma_b, alpha)
        metrics = network.family_one(scales, keys, jnp.asarray(DEPTHS), activation_index, program)
        fwd = network.forward_one(scales, keys, activation_index, program)
        g_hat, log_g = network.output_cotangents(fwd.a_hat, fwd.log_a, keys, program)
        layers = jnp.arange(1, program.n_layers + 1)
        weights = jax.vmap(lambda layer: network.layer_weights(keys, layer, program))(layers)
        x = network.probe_inputs(keys, program)
        return metrics, weights, x, jnp.exp(log_g)[..., None] * g_hat

    return run


@functools.cache
def plain_network(architecture, activation):
    """Plain float64 JAX, compiled: per-layer activations (L+1, B, N), and at each of DEPTHS
    dℓ/dx (B, N), dℓ/dW_l (depth, N, N) and the Jacobian at probe 0 (N, N), by autodiff."""
    act = activations.get(activation).fn

    def run(x, w, b, alpha, depth):
        """a_0..a_depth (depth + 1, B, N): a scan over the layers."""

        def layer(a, wb):
            a = plain_layer(architecture, act, a, *wb, alpha)
            return a, a

        _, out = jax.lax.scan(layer, x, (w[:depth], b[:depth]))
        return jnp.concatenate([x[None], out])

    @jax.jit
    def all_of_it(x, w, b, alpha, cotangents):
        acts = run(x, w, b, alpha, max(DEPTHS))
        per_depth = []
        for depth in DEPTHS:

            def loss(x, w, depth=depth):
                return jnp.sum(run(x, w, b, alpha, depth)[-1] * cotangents[depth])

            dx, dw = jax.grad(loss, argnums=(0, 1))(x, w)
            jac = jax.jacfwd(lambda x0, depth=depth: run(x0[None], w, b, alpha, depth)[-1][0])(x[0])
            per_depth.append((dx, dw[:depth], jac))
        return acts, per_depth

    return all_of_it


def reference(architecture, activation, sigma_w, sigma_b, alpha, seed):
    """The engine's measurements of one family, and the same from plain float64 JAX:
    forward RMS per layer, backward gain, ||dℓ/dW_l||_F and the Jacobian's extreme
    singular values (numpy SVD of jax.jacfwd) at DEPTHS."""
    scalars = (jnp.float64(v) for v in (sigma_w, sigma_b, alpha))
    index = jnp.int32(ACTIVATIONS.index(activation))
    metrics, weights, x, cotangents = engine(architecture)(*scalars, jnp.int32(seed), index)
    w = sigma_w * jnp.asarray(weights.w_hat, jnp.float64)
    b = sigma_b * jnp.asarray(weights.b_hat, jnp.float64)
    acts, per_depth = plain_network(architecture, activation)(
        jnp.asarray(x, jnp.float64), w, b, jnp.float64(alpha), cotangents
    )

    def batch_rms(v):
        return math.sqrt(float(np.mean(np.sum(np.asarray(v) ** 2, -1))))

    expected = {
        "act": np.log10([batch_rms(a) / math.sqrt(WIDTH) for a in acts]),
        "gain": [],
        "grad": [],
        "sv": [],
    }
    for depth, (dx, dw, jac) in zip(DEPTHS, per_depth):
        expected["gain"].append(math.log10(batch_rms(dx) / batch_rms(cotangents[depth])))
        expected["grad"].append(np.log10(np.linalg.norm(np.asarray(dw), axis=(1, 2))))
        expected["sv"].append(np.linalg.svd(np.asarray(jac), compute_uv=False))
    return metrics, expected


def close(a, b, rtol=1e-9):
    return abs(10 ** (a - b) - 1) < rtol


@pytest.mark.parametrize("architecture", ["resnet", "resnet_prenorm", "mlp_layernorm"])
def test_every_measurement_equals_plain_float64_autodiff(architecture):
    cases = [(a, *c) for a in ACTIVATIONS for c in ((0, 1.4, 0.2, 1.0), (1, 0.8, 0.0, 0.3))]
    with jax.enable_x64(True):
        for activation, seed, sigma_w, sigma_b, alpha in cases:
            metrics, expected = reference(architecture, activation, sigma_w, sigma_b, alpha, seed)
            act = np.asarray(metrics.log10_act_norm)
            np.testing.assert_allclose(act, expected["act"], rtol=0, atol=1e-11)
            for s, depth in enumerate(DEPTHS):
                assert close(float(metrics.log10_backward_gain[s]), expected["gain"][s])
                grads = np.asarray(metrics.log10_grad_norm[s, :depth])
                np.testing.assert_allclose(grads, expected["grad"][s], rtol=0, atol=1e-10)
                sv = expected["sv"][s]
                log10_max, log10_min = (float(v) for v in metrics.log10_jac_sv[s])
                assert close(log10_max, math.log10(sv[0]))
                if architecture == "mlp_layernorm":
                    # LayerNorm projects out two directions: J is singular.
                    assert log10_min == -math.inf and sv[-1] < 1e-12 * sv[0]
                elif sv[-1] > 0 and sv[0] / sv[-1] < 1e-9 / (WIDTH * EPS64):  # numpy resolves it
                    assert close(log10_min, math.log10(sv[-1]))


def test_linear_identity_resnet_grows_by_one_plus_alpha_s_a_layer(tmp_path):
    """x_l = (1 + alpha s) x_{l-1}: gain L log10(1 + alpha s), exactly, at depth 10,000;
    and alpha = 0 is the identity map (tanh, Gaussian weights: gain 0)."""
    zero = api.run(
        {
            "axes": {
                "depth": [1, 50, 200],
                "sigma_w": [1.5],
                "sigma_b": [0.5],
                "width": [8],
                "activation": ["tanh"],
                "architecture": ["resnet"],
                "residual_scale": [0.0],
            },
        },
        str(tmp_path / "zero"),
    )
    # Each layer renormalises the same float32 vector: a few float64 ulps a layer.
    for column in ("log10_forward_gain", "log10_backward_gain", "log10_jac_sv_max"):
        assert (zero[column].abs() < 200 * 8 * EPS64).all(), column
    alpha, s, depths = 0.25, 2.0, [1, 100, 10_000]
    frame = api.run(
        {
            "axes": {
                "depth": depths,
                "sigma_w": [s],
                "width": [8],
                "init": ["identity"],
                "architecture": ["resnet"],
                "residual_scale": [alpha],
            },
        },
        str(tmp_path / "identity"),
    )
    per_layer = math.log10(1 + alpha * s)
    for depth, row in zip(depths, frame.itertuples()):
        # The float32 stream is summed in float64 and rounded at unit RMS, the rounding
        # charged to the float64 log-scale: a few float64 ulps of the log a layer.
        tolerance = depth * 16 * EPS64 * (1 + depth * per_layer)
        for column in (
            "log10_forward_gain",
            "log10_backward_gain",
            "log10_jac_sv_max",
            "log10_jac_sv_min",
        ):
            assert abs(getattr(row, column) - depth * per_layer) < tolerance, (column, depth)


def test_layernorm_output_has_zero_mean_and_unit_rms_at_any_scale():
    program = program_of("mlp_layernorm", "tanh", depths=(1,), dtype="float32", width=64)
    weights = blocks.Weights(jnp.eye(64, dtype=jnp.float32), jnp.zeros(64, jnp.float32))
    block = blocks.BLOCKS["mlp_layernorm"]
    with jax.enable_x64(True):
        scales = blocks.Scales(jnp.float64(1.0), jnp.float64(0.0))
        forward = jax.jit(lambda v, log_v: block.forward(v, log_v, v, scales, weights, 0, program))
        for decades in (-300, 0, 300):
            v = jax.random.normal(jax.random.key(decades + 1), (5, 64), jnp.float32) + 3.0
            log_v = jnp.full((5,), decades * math.log(10.0))
            normed, log_std = logspace.layer_norm(v, log_v)
            std = np.asarray(v, np.float64).std(-1)
            np.testing.assert_allclose(
                np.asarray(log_std), decades * math.log(10) + np.log(std), rtol=1e-13
            )
            # In float32, as the network keeps it; and inside the network (mlp_layernorm's
            # LN of h at 1e+-300).
            saved = forward(v, log_v).saved.normed
            for out in (normed.astype(jnp.float32), saved):
                out = np.asarray(out, np.float64)
                assert np.abs(out.mean(-1)).max() < 4 * EPS32
                assert np.abs(np.sqrt((out**2).mean(-1)) - 1).max() < 4 * EPS32


def test_the_architecture_axes_round_trip_and_keep_mlp_ids(tmp_path):
    axes = {
        "depth": [1, 2],
        "sigma_w": [1.2],
        "width": [4],
        "activation": ["tanh"],
        "architecture": ["mlp", "resnet", "resnet_prenorm", "mlp_layernorm"],
        "residual_scale": [1.0, 0.1],
    }
    sweep = spec.from_dict({"axes": axes})
    assert spec.from_dict(sweep.to_dict()) == sweep
    assert sweep.n_configs == 2 * (1 + 2 + 2 + 1)  # alpha is not crossed with mlp
    assert sweep.rows_per_unit == 2  # a family's depths, however many variants
    plain = spec.from_dict({"axes": {k: v for k, v in axes.items() if k in spec.AXES[:7]}})
    assert "architecture" not in plain.to_dict()["axes"]  # older sweeps keep their JSON
    configs = sweep.configs()
    mlp = configs[configs["architecture"] == "mlp"]
    assert list(mlp["config_id"]) == list(plain.configs()["config_id"])
    for row in configs.to_dict("records"):
        assert row["config_id"] == spec.config_id(row)
    # Two shards into one directory, then a resume with nothing left: the same rows as one
    # run; and the probe trains. Two architectures, one residual and one not, keep the
    # compiles (~10 s each) down; the others run in the tests above and in test_train.
    axes["architecture"] = ["resnet", "mlp_layernorm"]
    sweep = spec.from_dict({"axes": axes})
    for index in range(2):
        api.run({"axes": axes}, str(tmp_path / "shared"), shard=(index, 2), chunk_size=4)
    whole = api.run({"axes": axes}, str(tmp_path / "whole"), chunk_size=4)
    resumed = api.run({"axes": axes}, str(tmp_path / "shared"), chunk_size=4)
    pd.testing.assert_frame_equal(resumed, whole)
    train = {"steps": 3, "batch_size": 4}
    frame = api.run({"axes": axes, "train": train}, str(tmp_path / "t"), chunk_size=4)
    assert len(frame) == sweep.n_configs and frame["config_id"].is_unique
    assert set(frame["architecture"]) == {"resnet", "mlp_layernorm"}
    assert frame["train_loss_final"].notna().all()  # the probe trains both
    residual = frame["architecture"].isin(["resnet", "resnet_prenorm"])
    assert frame.loc[~residual, "residual_scale"].isna().all()
    assert set(frame.loc[residual, "residual_scale"]) == {0.1, 1.0}
