"""The benchmark's PyTorch eager baseline: one config at a time, written the way a PyTorch
user would, in float64 (torch.set_num_threads(1) is the caller's job).

It takes the engine's own weights, probe inputs and cotangents (drawn by JAX with the
engine's functions and converted to torch tensors by `inputs`, outside the timed region:
weight generation, much of the engine's cost, is not charged to torch, so the speedup
over this baseline is conservative), and computes the engine's metrics with autograd and
torch.linalg:
- log10_act_norm (L+1,): log10 sqrt(mean_B ||a_l||^2 / N), l = 0..L;
- log10_grad_norm (L,): log10 ||dℓ/dW_l||_F for ℓ = Σ_b <g_b, a_L^b> (the `cotangent` loss);
- log10_backward_gain: log10 RMS_B ||dℓ/da_0|| - log10 RMS_B ||g_b||;
- log10_forward_gain: log10_act_norm[L] - log10_act_norm[0];
- log10_jac_sv_max, log10_jac_sv_min: the extreme singular values of J = da_L/da_0 at
  probe 0 (-inf for sv_min when some phi'(h_l) is exactly 0 there: J is singular).

J comes from torch.func.jacrev, sigma_max from torch.linalg.svdvals(J). sigma_min cannot:
the condition number of J grows about 10^1.2 per layer at the bench's width 64 and tanh
(10^-92 <= sigma_min / sigma_max at depth 32, 10^-350 at 128), so it passes float64's
10^16 within ~15 layers and svdvals(J)[-1] is rounding noise from there on. As in the
engine, sigma_min = 1 / sigma_max(J^-1), J^-1 = W_1^-1 D_1^-1 ... W_L^-1 D_L^-1 with
D_l = diag phi'(h_l) at probe 0, renormalised every layer so that it cannot overflow.

Axes: B probe batch, N width, L layers.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import torch

from . import network
from .agreement import BACKWARD, EPS32, FORWARD, SAFETY, difference, tolerances  # noqa: F401

ACTIVATIONS = {"linear": lambda x: x, "relu": torch.relu, "tanh": torch.tanh}
DTYPE = torch.float64


def inputs(program: network.Program, seed: int, root_seed: int) -> dict[str, torch.Tensor]:
    """The engine's unit-scale weights w_hat (L, N, N), b_hat (L, N), probe inputs x (B, N)
    and cotangents g (B, N) of one family, as exact float64 copies."""
    if program.loss != "cotangent":
        raise ValueError(f"the torch baseline has only the cotangent loss, not {program.loss!r}")
    keys = network.family_keys(
        jax.random.key(root_seed), jnp.int32(seed), program.width, program.inits
    )
    w_hat, b_hat = jax.vmap(lambda layer: network.layer_weights(keys, layer, program))(
        jnp.arange(1, program.n_layers + 1)
    )
    shape = (program.batch, program.width)
    g_hat, log_g = network.output_cotangents(
        jnp.zeros(shape)[None], jnp.zeros(shape[:1])[None], keys, program
    )
    as_torch = lambda v: torch.tensor(np.asarray(v, np.float64))  # noqa: E731  (a copy)
    return {
        "w_hat": as_torch(w_hat),
        "b_hat": as_torch(b_hat),
        "x": as_torch(network.probe_inputs(keys, program)),
        "g": as_torch(g_hat[0] * jnp.exp(log_g[0])[:, None]),
    }


def metrics(
    data: dict[str, torch.Tensor], sigma_w: float, sigma_b: float, depth: int, activation: str
) -> dict:
    """One config's metrics (see the module docstring) from `inputs`' tensors, and kappa,
    Σ_l max_{B,N} 1 / |phi'(h_l)| over the nonzero phi' (for `tolerances`)."""
    phi = ACTIVATIONS[activation]
    weight = (
        sigma_w * data["w_hat"][:depth]
    ).requires_grad_()  # (L, N, N), a leaf: dℓ/dW per layer
    bias = sigma_b * data["b_hat"][:depth]  # (L, N)
    x = data["x"].clone().requires_grad_()  # (B, N)

    def net(a):  # a (..., N) -> every layer's pre-activations h_l (..., N) and a_L
        pre = []
        for layer in range(depth):
            pre.append(a @ weight[layer].T + bias[layer])
            a = phi(pre[-1])
        return pre, a

    pre, out = net(x)
    act_sq = torch.stack(
        [x.square().mean(-1)] + [phi(h).square().mean(-1) for h in pre]
    )  # (L+1, B)
    log10_act = 0.5 * torch.log10(act_sq.mean(-1)).detach()
    (out * data["g"]).sum().backward()
    log10_grad = torch.log10(torch.linalg.matrix_norm(weight.grad))
    gain_bwd = 0.5 * torch.log10(x.grad.square().sum(-1).mean() / data["g"].square().sum(-1).mean())

    with torch.no_grad():
        jac = torch.func.jacrev(lambda a0: net(a0)[1])(data["x"][0])  # (N, N)
        sv_max = float(torch.log10(torch.linalg.svdvals(jac)[0]))
        dphi = torch.stack(
            [torch.func.jvp(phi, (h,), (torch.ones_like(h),))[1] for h in pre]
        )  # (L, B, N)
        inv, log10_inv = torch.eye(x.shape[1], dtype=DTYPE), 0.0
        singular = bool((dphi[:, 0] == 0).any()) or sigma_w == 0
        for layer in range(0 if singular else depth):
            inv = (
                torch.linalg.solve(weight[layer], inv, left=False) / dphi[layer, 0]
            )  # inv W^-1 D^-1
            scale = torch.linalg.matrix_norm(inv)
            inv, log10_inv = inv / scale, log10_inv + math.log10(scale)
        sv_min = (
            -math.inf
            if singular
            else -(log10_inv + float(torch.log10(torch.linalg.svdvals(inv)[0])))
        )
        kappa = torch.where(dphi != 0, 1 / dphi.abs(), 0.0).amax(dim=(1, 2)).sum()
    return {
        "log10_act_norm": log10_act.numpy(),
        "log10_grad_norm": log10_grad.numpy(),
        "log10_forward_gain": float(log10_act[-1] - log10_act[0]),
        "log10_backward_gain": float(gain_bwd),
        "log10_jac_sv_max": sv_max,
        "log10_jac_sv_min": sv_min,
        "kappa": float(kappa),
    }
