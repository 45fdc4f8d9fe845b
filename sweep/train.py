"""The trainability probe: a short optax training run of every config, all in one program.

Each config (sigma_w, sigma_b, depth) of a chunk starts from exactly the weights the
measurement pass used, W_l = sigma_w Ŵ_l and b_l = sigma_b b̂_l with (Ŵ_l, b̂_l) =
network.layer_weights(network.family_keys(root_key, seed, width, (init,)), l, program), adds
a linear readout R (K, N) to the task's K outputs, and trains every parameter (W_l, b_l
for l = 1..depth, and R) for `steps` updates of one optimizer on minibatches of a task
(sweep.tasks). The readout starts as R = R̂ with entries N(0, 1/N) from a key of (root
seed, seed, width); minibatches (drawn with replacement) come from a key of (root seed,
seed, width): configs of one chunk see the same readout and the same batches, in the
spirit of the engine's common random numbers.

One compiled program trains a chunk: jax.vmap over configs, lax.scan over steps, and a
lax.scan over layers inside the network. Configs of different depths share it by padding:
a config of depth d in a program of L >= d layers has layers d+1..L switched to the
identity (a_l = a_{l-1}) by a mask, and their gradients and updates are masked to zero,
so they stay identity and never change; a config trains alone or padded inside a chunk
to the same numbers. Depths are split into a few groups (network.depth_groups), each its
own vmapped scan, so a shallow config does not pay for the deepest one.

Outputs per config (train_chunk, train_columns):
- train_loss_initial, train_loss_final: the mean loss over the task's whole data set
  before and after training; train_accuracy_final: the fraction of it classified
  right (classification tasks; NaN / null otherwise).
- train_loss_curve: the minibatch loss of each step (before its update), averaged over
  consecutive windows of ceil(steps / 64) steps: at most 64 points.
- train_steps_to_half_loss: the last step of the first window whose mean minibatch loss
  is <= ½ train_loss_initial (0 / null if none is).
- train_diverged: a minibatch loss or the final loss is not finite.
- trainable: not diverged, and train_loss_final <= ½ min(train_loss_initial,
  reference), reference being the loss of the best input-independent prediction
  (tasks.reference_loss: ln 10 for digits, ½ for teacher). The min keeps a net whose
  random init starts far above chance from counting as trained by merely reaching it.

Axes: F configs, L layers (the program's deepest depth), N width, K outputs, B batch
(settings.batch_size), P examples, T steps.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import (
    activations,
    blocks,
    devices,
    logspace,
    names,
    network,
    plan,
    spec as spec_module,
    tasks,
)

MOMENTUM = 0.9
# Built with learning rate 1: every optimizer here ends in a scale by -learning_rate, so
# each config's own rate multiplies the update afterwards (the same bits: (-u)·lr = -(u·lr)),
# and one program trains every learning rate of a sweep.
OPTIMIZERS = {
    "sgd": lambda lr: optax.sgd(lr),
    "momentum": lambda lr: optax.sgd(lr, momentum=MOMENTUM),
    "adam": lambda lr: optax.adam(lr),
    "rmsprop": lambda lr: optax.rmsprop(lr),
}
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "adam": 2, "rmsprop": 1}  # param-sized state arrays
assert tuple(OPTIMIZERS) == names.OPTIMIZERS
CURVE_POINTS = 64
TRAINABLE_FRACTION = 0.5
DEFAULT_DEPTH_GROUPS = 4
TAG_READOUT, TAG_BATCHES = 101, 102


def train_keys(root_key, seed, width: int):
    """Keys of the readout and the minibatch order: (root seed, seed, width) only."""
    base = network.family_base(root_key, seed, width)
    return {
        "readout": jax.random.fold_in(base, TAG_READOUT),
        "batches": jax.random.fold_in(base, TAG_BATCHES),
    }


def train_bytes_per_config(program: network.Program, settings: spec_module.TrainSettings) -> int:
    """An upper estimate of the memory one config needs while a chunk trains.

    Parameters, gradients, updates and the next step's parameters (4 copies) plus the
    optimizer's state (0 to 2 copies), the forward residuals the backward pass keeps
    (L x B x N, 3 arrays), the evaluation pass over the data set (P x N, 3 arrays) and
    the per-example losses (P before and after, T x B during). The shared Ŵ stack and the
    data set are counted once per config too, which covers them in any chunk of two or
    more configs. tests/test_train.py checks it against XLA's own memory analysis.
    """
    item = np.dtype(program.compute_dtype).itemsize
    task = tasks.get(settings.task)
    n_examples = len(task.data(program.width)[1])
    layers, width, outputs = program.n_layers, program.width, task.n_outputs
    params = layers * (width * width + width) + outputs * width
    copies = 4 + OPTIMIZER_SLOTS[settings.optimizer]
    residuals = 3 * layers * settings.batch_size * width
    evaluation = 3 * n_examples * max(width, outputs) + 3 * n_examples
    per_step = settings.steps * settings.batch_size
    shared = layers * (width * width + width) + n_examples * width
    return item * (copies * params + residuals + evaluation + shared + per_step)


def _linear(x, w, b):
    """x W^T + b, with b through a rank-1 product, ones (B, 1) times b (N, 1)^T: the same
    bits as a broadcast add, but its gradient becomes a dot over the batch rather than a
    reduction, whose rounding XLA may vary with the number of vmapped configs."""
    ones = jnp.ones((x.shape[0], 1), x.dtype)
    return logspace.rows_times_transpose(x, w) + logspace.rows_times_transpose(ones, b[:, None])


def _forward(params, live, alpha, x, block, act):
    """Outputs (B, K) of one config: params w (L, N, N), b (L, N), readout (K, N); live (L,)
    True for the config's own layers, False for identity padding; alpha: its residual
    scale (read by residual blocks); x (B, N); block: the architecture (blocks.BLOCKS)."""

    def layer(a, p):
        w, b, on = p
        # A padded layer sees zeros, so nothing it computes can be non-finite, and passes
        # a through unchanged: no gradient reaches its w and b, and a's is exactly kept.
        a_in = jnp.where(on, a, 0)
        return jnp.where(on, block.plain(a_in, w, b, alpha, act, _linear), a), None

    a, _ = jax.lax.scan(layer, x, (params["w"], params["b"], live))
    return logspace.rows_times_transpose(a, params["readout"])


def _mask_layers(tree, live):
    """Zeroes the per-layer leaves (w, b) of one config's tree at padded layers."""
    return {
        "w": jnp.where(live[:, None, None], tree["w"], 0),
        "b": jnp.where(live[:, None], tree["b"], 0),
        "readout": tree["readout"],
    }


def _train_group(params, live, alpha, rate, x, y, batches, task: tasks.Task, block, act, optimizer):
    """Trains F configs of one depth group. params: w (F, L, N, N), b (F, L, N), readout
    (F, K, N); live (F, L); alpha (F,) residual scales; rate (F,) learning rates; x (P, N),
    y; batches (T, B) example indices. optimizer: built with learning rate 1 (OPTIMIZERS)."""

    def loss(p, on, scale, xb, yb):
        per_example = task.loss(_forward(p, on, scale, xb, block, act), yb)
        return jnp.mean(per_example), per_example

    def evaluate(p, on, scale):
        outputs = _forward(p, on, scale, x, block, act)
        correct = (
            jnp.argmax(outputs, axis=-1) == y
            if task.classification
            else jnp.zeros(x.shape[:1], bool)
        )
        return task.loss(outputs, y), correct

    grad_all = jax.vmap(jax.value_and_grad(loss, has_aux=True), in_axes=(0, 0, 0, None, None))

    def step(carry, idx):
        params, state = carry
        (_, per_example), grads = grad_all(params, live, alpha, x[idx], y[idx])
        grads = jax.vmap(_mask_layers)(grads, live)
        updates, state = jax.vmap(optimizer.update)(grads, state, params)
        updates = jax.vmap(lambda u, r: jax.tree.map(lambda leaf: leaf * r, u))(updates, rate)
        params = optax.apply_updates(params, jax.vmap(_mask_layers)(updates, live))
        return (params, state), per_example

    # Per-example losses come out and are averaged outside, in float64: a reduction inside
    # the program could round differently with the number of configs.
    loss_initial, _ = jax.vmap(evaluate)(params, live, alpha)
    (params, _), losses = jax.lax.scan(step, (params, jax.vmap(optimizer.init)(params)), batches)
    loss_final, correct = jax.vmap(evaluate)(params, live, alpha)
    return {
        "loss_initial": loss_initial,
        "loss_final": loss_final,
        "correct": correct,
        "losses": jnp.moveaxis(losses, 0, 1),
    }


@functools.cache
def compiled(
    program: network.Program,
    settings: spec_module.TrainSettings,
    depth: tuple[int, ...],
    max_groups: int,
    n_devices: int = 1,
):
    """The training program of configs with these depths (F,), compiled once per shape;
    settings.learning_rate is not used (rates are an input). With n_devices > 1 the
    program takes n_devices·F configs, F per device, each device's with these depths.
    program: the measured network (width, its one init and activation, dtype); each
    device draws the shared weights itself and trains its own configs."""
    task, act = tasks.get(settings.task), activations.get(program.activations[0]).fn
    block = blocks.BLOCKS[program.block]
    optimizer = OPTIMIZERS[settings.optimizer](1.0)
    compute_dtype = program.compute_dtype
    depth_array = np.asarray(depth)
    groups = plan.depth_groups(tuple(sorted(set(depth))), max_groups)
    rows = [np.flatnonzero(np.isin(depth_array, group)) for group in groups]
    inverse = np.argsort(np.concatenate(rows))
    n_layers, width, n_outputs = max(depth), program.width, task.n_outputs

    def run(sigma_w, sigma_b, alpha, rate, seed, root_key, x, y):
        keys = network.family_keys(root_key, seed, width, program.inits)
        w_hat, b_hat = jax.lax.map(
            lambda layer: network.layer_weights(keys, layer, program), jnp.arange(1, n_layers + 1)
        )
        w_hat, b_hat = w_hat.astype(compute_dtype), b_hat.astype(compute_dtype)
        own = train_keys(root_key, seed, width)
        readout = jax.random.normal(own["readout"], (n_outputs, width), jnp.float32) / math.sqrt(
            width
        )
        batches = jax.random.randint(
            own["batches"], (settings.steps, settings.batch_size), 0, x.shape[0]
        )
        x = x.astype(compute_dtype)
        sw, sb, alpha, rate = (
            sigma_w.astype(compute_dtype),
            sigma_b.astype(compute_dtype),
            alpha.astype(compute_dtype),
            rate.astype(compute_dtype),
        )
        results = []
        for group, members in zip(groups, rows):
            top, n_members = group[-1], len(members)
            # XLA turns a batch of one into an unbatched dot, which rounds differently; a
            # lone config is trained twice so every config sees a batched program.
            members = members if n_members > 1 else np.repeat(members, 2)
            params = {
                "w": sw[members, None, None, None] * w_hat[None, :top],
                "b": sb[members, None, None] * b_hat[None, :top],
                "readout": jnp.broadcast_to(
                    readout.astype(compute_dtype), (len(members), n_outputs, width)
                ),
            }
            live = jnp.arange(1, top + 1)[None, :] <= jnp.asarray(depth_array[members])[:, None]
            out = _train_group(
                params,
                live,
                alpha[members],
                rate[members],
                x,
                y,
                batches,
                task,
                block,
                act,
                optimizer,
            )
            results.append({k: v[:n_members] for k, v in out.items()})
        return {k: jnp.concatenate([r[k] for r in results])[inverse] for k in results[0]}

    return devices.sharded_jit(run, n_devices, SPLIT)


SPLIT = (0,) * 4 + (None,) * 4  # sigma_w, sigma_b, alpha, rate per config; the rest shared


def _devices_for(depth: tuple[int, ...]) -> int:
    """How many local devices can split these configs: each device's share must have the
    same depths, so one compiled program serves them all."""
    n = jax.local_device_count()
    while n > 1:
        share = len(depth) // n
        if len(depth) % n == 0 and all(
            depth[i * share : (i + 1) * share] == depth[:share] for i in range(n)
        ):
            return n
        n -= 1
    return 1


def _summarise(
    out: dict[str, np.ndarray], classification: bool, reference: float
) -> dict[str, np.ndarray]:
    """Per-config columns from the program's per-example output: losses (F, T, B),
    loss_initial and loss_final (F, P), correct (F, P)."""
    losses = out["losses"].astype(np.float64).mean(axis=-1)
    steps = losses.shape[1]
    window = math.ceil(steps / min(steps, CURVE_POINTS))
    n_points = math.ceil(steps / window)
    padded = np.pad(losses, ((0, 0), (0, n_points * window - steps)))  # zeros: sums unchanged
    counts = np.minimum(window, steps - window * np.arange(n_points))
    curve = (
        padded.reshape(len(losses), n_points, window).sum(axis=-1) / counts
    )  # non-finite stays so
    initial = out["loss_initial"].astype(np.float64).mean(axis=-1)
    final = out["loss_final"].astype(np.float64).mean(axis=-1)
    reached = curve <= 0.5 * initial[:, None]
    first = np.argmax(reached, axis=1)
    steps_to_half = np.where(reached.any(axis=1), np.minimum((first + 1) * window, steps), 0)
    diverged = ~np.isfinite(losses).all(axis=1) | ~np.isfinite(final)
    trainable = ~diverged & (final <= TRAINABLE_FRACTION * np.minimum(initial, reference))
    return {
        "train_loss_initial": initial,
        "train_loss_final": final,
        "train_accuracy_final": out["correct"].mean(axis=-1)
        if classification
        else np.full(len(losses), np.nan),
        "train_steps_to_half_loss": steps_to_half.astype(np.int64),
        "trainable": trainable,
        "train_diverged": diverged,
        "train_loss_curve": curve,
    }


def train_chunk(
    sigma_w,
    sigma_b,
    depth,
    seed: int,
    root_key,
    program: network.Program,
    settings: spec_module.TrainSettings,
    max_groups: int = DEFAULT_DEPTH_GROUPS,
    learning_rate=None,
    residual_scale=None,
) -> dict[str, np.ndarray]:
    """Trains F configs that share a seed and a network (width, init, activation, dtype).

    The configs are split over the local devices when they divide into equal shares with
    the same depths (as train_columns arranges them); each device trains its share.

    Args:
      sigma_w, sigma_b: (F,) scales; depth: (F,) integers >= 1, any mix (the program pads
        to the deepest and masks); seed: the configs' seed; root_key: the sweep's root
        key, jax.random.key(root_seed); program: a network.Program with one init and one
        activation (single_program); its width and dtype are used, its depths, batch and
        loss are the measurement's and are ignored; settings: the spec's [train];
        max_groups: depth groups, each its own scan; learning_rate: (F,) each config's
        rate; None for settings.learning_rate, which must then be one number;
        residual_scale: (F,) each config's alpha (residual architectures; None: 1).
    Returns:
      numpy arrays keyed by column name, each (F,) except train_loss_curve (F, <= 64);
      train_steps_to_half_loss is 0 where the loss never halved.
    """
    depth = tuple(int(d) for d in np.asarray(depth).reshape(-1))
    if not depth or min(depth) < 1:
        raise ValueError(f"train_chunk: depths must be >= 1, got {depth}")
    if not np.shape(sigma_w) == np.shape(sigma_b) == (len(depth),):
        shapes = f"{np.shape(sigma_w)}, {np.shape(sigma_b)}, {len(depth)}"
        raise ValueError(f"train_chunk: sigma_w, sigma_b and depth must all be (F,), got {shapes}")
    if learning_rate is None:
        if len(settings.learning_rate) != 1:
            count = len(settings.learning_rate)
            raise ValueError(f"train_chunk: {count} learning rates; pass learning_rate (F,)")
        learning_rate = np.full(len(depth), settings.learning_rate[0])
    if np.shape(learning_rate) != (len(depth),):
        got = np.shape(learning_rate)
        raise ValueError(f"train_chunk: learning_rate must be ({len(depth)},), got {got}")
    task = tasks.get(settings.task)
    x, y = task.data(program.width)
    n_devices = _devices_for(depth)
    # The learning rates are an input, not part of the compiled program.
    program_settings = dataclasses.replace(settings, learning_rate=())
    share = depth[: len(depth) // n_devices]
    trainer = compiled(program, program_settings, share, max_groups, n_devices)
    alpha = np.ones(len(depth)) if residual_scale is None else residual_scale
    per_config = [np.asarray(v, np.float64) for v in (sigma_w, sigma_b, alpha, learning_rate)]
    args = [*per_config, jnp.int32(seed), root_key, x, y]
    out = trainer(*devices.place(args, n_devices, SPLIT))
    summary = _summarise(
        {k: np.asarray(v) for k, v in out.items()},
        task.classification,
        tasks.reference_loss(task, program.width),
    )
    return {"learning_rate": np.asarray(learning_rate, np.float64), **summary}


def single_program(program: network.Program, init: str, activation: str) -> network.Program:
    """The program of one (init, activation) of `program`: what a trained config draws."""
    return dataclasses.replace(program, inits=(init,), activations=(activation,))


def train_columns(chunk, rows, settings, root_seed: int, memory_budget: int | None = None):
    """The train columns of a measured chunk's rows (columns.Rows), in the rows' order.

    Trains every family of the chunk (padding copies included, so every chunk of a bucket
    has the same shape and compiles once) at every depth of its bucket and every learning
    rate of settings, then picks each row's (family, depth, learning rate). With
    memory_budget (bytes), the families are split into programs of at most
    memory_budget // train_bytes_per_config configs.

    Args:
      chunk: a plan.Chunk; rows: its columns.Rows; settings: spec.train, None gives null
        columns; root_seed: the sweep's root seed.
    Returns:
      {column: numpy array (R,) or masked array}; train_loss_curve (R, <= 64).
    """
    n_rows = len(rows.depth)
    if settings is None:
        return {}  # not trained: the store writes null
    bucket = chunk.bucket
    program = single_program(chunk.program, bucket.init, bucket.activation)
    depths, rates = np.asarray(bucket.depths), np.asarray(settings.learning_rate)
    n_families, n_depths, n_rates = len(chunk.sigma_w), len(depths), len(rates)
    per_family = n_depths * n_rates  # configs: (family, depth, rate), rate fastest
    per_program = n_families
    if memory_budget is not None:
        configs = max(1, memory_budget // train_bytes_per_config(program, settings))
        per_program = max(1, min(n_families, configs // per_family))
    results = []
    group_size = n_families // chunk.n_groups
    per_program = min(per_program, group_size)
    for group, seed in enumerate(chunk.seeds):  # each seed group is one seed's families
        for start in range(group * group_size, (group + 1) * group_size, per_program):
            stop = min(start + per_program, (group + 1) * group_size)
            families = plan.pad(np.arange(start, stop), per_program)
            trained = train_chunk(
                np.repeat(chunk.sigma_w[families], per_family),
                np.repeat(chunk.sigma_b[families], per_family),
                np.tile(np.repeat(depths, n_rates), len(families)),
                int(seed),
                jax.random.key(root_seed),
                program,
                settings,
                learning_rate=np.tile(rates, n_depths * len(families)),
                residual_scale=np.repeat(chunk.residual_scale[families], per_family),
            )
            results.append({k: v[: (stop - start) * per_family] for k, v in trained.items()})
    trained = {k: np.concatenate([r[k] for r in results]) for k in results[0]}
    rate_index = np.searchsorted(rates, np.asarray(rows.learning_rate, float))
    picked = {k: v[rows.measured * n_rates + rate_index] for k, v in trained.items()}
    task = tasks.get(settings.task)
    steps = picked["train_steps_to_half_loss"]
    return {
        **picked,
        "train_accuracy_final": np.ma.masked_array(
            picked["train_accuracy_final"], mask=np.full(n_rows, not task.classification)
        ),
        "train_steps_to_half_loss": np.ma.masked_array(steps, mask=steps == 0),
    }
