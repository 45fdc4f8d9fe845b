"""The names a spec may use, as plain tuples: no JAX, so a spec validates without it.

Each registry (sweep.activations, sweep.inits, sweep.tasks, sweep.train) checks at import
that its entries are exactly these, so a name added in one place and not the other fails
at once.
"""

ACTIVATIONS = (
    "linear",
    "relu",
    "leaky_relu",
    "tanh",
    "erf",
    "hard_tanh",
    "sigmoid",
    "gelu",
    "swish",
    "selu",
    "elu",
    "softplus",
)
INITS = ("identity", "gaussian", "uniform", "truncated_normal", "orthogonal")
TASKS = ("teacher", "digits")
OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
# sweep.blocks.BLOCKS; the residual ones read the residual_scale axis.
ARCHITECTURES = ("mlp", "resnet", "resnet_prenorm", "mlp_layernorm")
RESIDUAL_ARCHITECTURES = ("resnet", "resnet_prenorm")
LAYERNORM_ARCHITECTURES = ("resnet_prenorm", "mlp_layernorm")
