"""The benchmark's strongest simple peer: what a JAX user writes for a sweep in an afternoon.

One `jax.jit(jax.vmap(...))` per depth over every (sigma_w, seed) of the bench, float32,
no log space: the network as a `lax.scan` over stacked weights, `jax.grad` for the
gradient norms and the backward gain, `jax.jacfwd` and `jnp.linalg.svd` for the
input-output Jacobian at probe 0. It uses the engine's weights, probes and cotangents
(network.family_keys, drawn inside the jitted function, as a user draws theirs), so its
numbers can be checked against the engine's rows (sweep.agreement, both sides float32).
A float32 SVD gives sigma_min only while cond(J) < ~1e7, a few layers here, so sigma_min
is reported but not checked.

Compile time is charged to the peer: a user pays it, once per depth.

Axes: C configs (sigma_w, seed), L layers, B batch, N width.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from . import activations, agreement, network

CHECKED = ("log10_grad_norm", "log10_backward_gain", "log10_jac_sv_max")


def one_config(program: network.Program, depth: int, activation: str):
    """metrics(sigma_w, sigma_b, seed, root_key) of one config at `depth`, in float32."""
    phi = activations.get(activation).fn
    layers = jnp.arange(1, depth + 1)

    def metrics(sigma_w, sigma_b, seed, root_key):
        keys = network.family_keys(root_key, seed, program.width, program.inits)
        w_hat, b_hat = jax.vmap(lambda layer: network.layer_weights(keys, layer, program))(layers)
        params = (sigma_w.astype(jnp.float32) * w_hat, sigma_b.astype(jnp.float32) * b_hat)
        x = network.probe_inputs(keys, program)
        shape = (program.batch, program.width)
        g_hat, log_g = network.output_cotangents(
            jnp.zeros(shape)[None], jnp.zeros(shape[:1])[None], keys, program
        )
        g = (g_hat[0] * jnp.exp(log_g[0])[:, None]).astype(jnp.float32)

        def net(params, a):  # a (..., N) -> a_L and every layer's (a_l, h_l)
            def layer(a, weights):
                w, b = weights
                h = a @ w.T + b
                return phi(h), (phi(h), h)

            return jax.lax.scan(layer, a, params)

        def loss(params, a):
            return jnp.sum(g * net(params, a)[0])

        grad_w, grad_x = jax.grad(loss, argnums=(0, 1))(params, x)
        _, (acts, pre) = net(params, x)
        jac = jax.jacfwd(lambda a0: net(params, a0)[0])(x[0])
        sv = jnp.linalg.svd(jac, compute_uv=False)
        act_sq = jnp.concatenate([jnp.mean(x**2, -1)[None], jnp.mean(acts**2, -1)])  # (L+1, B)
        log10_act = 0.5 * jnp.log10(jnp.mean(act_sq, -1))
        dphi = jax.vmap(jax.grad(phi))(pre.reshape(-1)).reshape(pre.shape)  # (L, B, N)
        kappa = jnp.sum(jnp.max(jnp.where(dphi != 0, 1 / jnp.abs(dphi), 0.0), axis=(1, 2)))
        return {
            "log10_act_norm": log10_act,
            "log10_grad_norm": jnp.log10(jnp.sqrt(jnp.sum(grad_w[0] ** 2, axis=(1, 2)))),
            "log10_forward_gain": log10_act[-1] - log10_act[0],
            "log10_backward_gain": 0.5
            * jnp.log10(jnp.mean(jnp.sum(grad_x**2, -1)) / jnp.mean(jnp.sum(g**2, -1))),
            "log10_jac_sv_max": jnp.log10(sv[0]),
            "log10_jac_sv_min": jnp.log10(sv[-1]),
            "kappa": kappa,
        }

    return metrics


def run_depth(program, depth: int, activation: str, configs, root_seed: int):
    """Compiles and runs one jit(vmap) over configs (sigma_w, sigma_b, seed columns) at
    `depth`; returns (seconds including the compile, {name: (C, ...) numpy})."""
    start = time.perf_counter()
    batched = jax.jit(jax.vmap(one_config(program, depth, activation), in_axes=(0, 0, 0, None)))
    out = batched(
        jnp.asarray(configs["sigma_w"].to_numpy(), jnp.float32),
        jnp.asarray(configs["sigma_b"].to_numpy(), jnp.float32),
        jnp.asarray(configs["seed"].to_numpy(), jnp.int32),
        jax.random.key(root_seed),
    )
    out = jax.tree.map(np.asarray, out)
    return time.perf_counter() - start, out


def sampled_depths(depths, n_samples: int) -> list[int]:
    """About n_samples depths spread evenly over depths (sorted), first and last included."""
    picks = np.linspace(0, len(depths) - 1, min(n_samples, len(depths))).round().astype(int)
    return sorted({int(depths[i]) for i in picks})


def estimate(sweep, configs, frame, program, root_seed: int, n_samples: int = 6) -> dict:
    """The peer on the bench sweep: timed in full at a few depths (compile included),
    linearly interpolated over the others (its cost is a compile plus a part linear in
    depth), and checked against the engine's rows in `frame` at the timed depths.

    Returns {"naive_seconds": estimated total, "naive_timed_depths", "naive_timed_seconds",
    "naive_max_difference", "naive_tolerance_used", "naive_checked"}; raises
    AssertionError when a checked config differs beyond the float32 tolerance.
    """
    all_depths = sorted(set(int(d) for d in configs["depth"]))
    picked = sampled_depths(all_depths, n_samples)
    activation = sweep.axes["activation"][0]
    engine_rows = frame.set_index("config_id")
    seconds, worst, used, checked = {}, 0.0, 0.0, 0
    for depth in picked:
        at_depth = configs[configs["depth"] == depth]
        seconds[depth], out = run_depth(program, depth, activation, at_depth, root_seed)
        for i, config_id in enumerate(at_depth["config_id"]):
            m = {k: (v[i] if v[i].ndim else float(v[i])) for k, v in out.items()}
            diff, fraction, backward = agreement.difference(
                m, engine_rows.loc[config_id], peers_in_float32=2, backward=CHECKED
            )
            if not fraction <= 1:
                raise AssertionError(
                    f"the naive jit(vmap) peer disagrees with the engine on config {config_id}"
                    f" by {diff:g} (log10), {fraction:.3g} times the float32 tolerance"
                )
            worst, used, checked = max(worst, diff), max(used, fraction), checked + backward
    per_depth = np.interp(all_depths, picked, [seconds[d] for d in picked])
    return {
        "naive_seconds": float(np.sum(per_depth)),
        "naive_timed_depths": picked,
        "naive_timed_seconds": float(sum(seconds.values())),
        "naive_max_difference": worst,
        "naive_tolerance_used": used,
        "naive_checked": checked,
        "naive_configs_per_depth": int(math.ceil(len(configs) / len(all_depths))),
    }
