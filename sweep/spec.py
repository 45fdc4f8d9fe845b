"""What a sweep is: its axes and settings, their validation, and the config table.

A spec is a TOML file (or the same structure as a dict):

    name = "example"
    [axes]
    depth = {start = 1, stop = 150, step = 1}
    sigma_w = {start = 0.5, stop = 1.5, num = 41}
    width = [2, 64]
    [settings]
    batch = 8

Each axis is a list, or a range table: ``{start, stop, num}`` (inclusive, evenly spaced)
or ``{start, stop, step}`` (inclusive of stop when it lands on the grid), with
``log = true`` for geometric spacing. The sweep is the full cartesian product of the
axes. Everything here is plain Python: no JAX.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import re
import tomllib
from collections.abc import Iterator
from importlib import resources
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from . import names, ranges
from .errors import SpecError as SpecError

AXES = (
    "depth",
    "sigma_w",
    "sigma_b",
    "width",
    "init",
    "activation",
    "seed",
    "architecture",
    "residual_scale",
    "dtype",
)
# The axes before it are one level each of the grid; architecture and residual_scale are
# one level together (Spec.variants): the scale is ignored for non-residual architectures.
# dtype is a level only when given as an axis (DTYPE_AXIS); otherwise it is a setting.
ARCHITECTURE_LEVEL = AXES.index("architecture")
# An axis only when a spec gives it under [axes]: a sweep of one dtype in [settings] has
# no dtype level, so its config ids are those of sweeps from before the axis.
DTYPE_AXIS = "dtype"
AXIS_DEFAULTS = {
    "sigma_b": [0.0],
    "seed": [0],
    "init": ["gaussian"],
    "activation": ["linear"],
    "architecture": ["mlp"],
    "residual_scale": [1.0],
}
OPTIONAL_AXES = ("architecture", "residual_scale")
STRING_COLUMNS = ("init", "activation", "architecture", "dtype")
FLOAT_COLUMNS = ("sigma_w", "sigma_b", "residual_scale", "learning_rate")
REQUIRED_AXES = ("depth", "sigma_w", "width")
# An axis a spec may give squared instead (the literature's sigma_w^2, sigma_b^2): the
# values become their square roots, so a config is one id whichever way it is written.
SQUARED_AXES = {"sigma_w2": "sigma_w", "sigma_b2": "sigma_b"}
SETTINGS_DEFAULTS = {
    "batch": 8,
    "dtype": "float32",
    "loss": "cotangent",
    "draws": "shared",
    "jacobian": True,
}
DRAWS = ("shared", "independent")
DTYPES = ("float32", "float64", "bfloat16", "float16")
LOSSES = ("cotangent", "mse")
TOP_LEVEL_KEYS = ("name", "axes", "settings", "train")
RANGE_KEYS = ranges.RANGE_KEYS
# Columns that differ between configs of one family; everything else is shared by a family.
FAMILY_AXES = (
    "width",
    "init",
    "activation",
    "architecture",
    "residual_scale",
    "seed",
    "sigma_w",
    "sigma_b",
    "dtype",
)
# The grid levels of a family (Spec.levels, by first column), in the order blocks cut them
# (dtype first: a block is one dtype, so its chunks share their programs' dtype).
FAMILY_LEVELS = (
    "dtype",
    "width",
    "init",
    "activation",
    "architecture",
    "seed",
    "sigma_w",
    "sigma_b",
)
MAX_SEED = 2**31 - 1
MAX_DEPTH, MAX_WIDTH = 10**6, 2**16
# One results directory's cap: a sweep is streamed in blocks, but 2e7 rows with their
# per-layer lists no longer load into pandas on a laptop.
MAX_CONFIGS = 2 * 10**7
MAX_AXIS_LENGTH = ranges.MAX_AXIS_LENGTH
MAX_BATCH = 2**16
MAX_TRAIN_STEPS, MAX_TRAIN_BATCH = 10**6, 2**16
# A sweep's name is its default results directory: one safe path component.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
INTEGER_AXES = ranges.INTEGER_AXES
# The optional [train] table (the trainability probe, sweep.train); absent: no training.
TRAIN_DEFAULTS = {
    "steps": 300,
    "optimizer": "sgd",
    "learning_rate": 0.01,
    "batch_size": 32,
    "task": "digits",
}
TRAIN_OPTIMIZERS = names.OPTIMIZERS


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The [train] table: a short training run of every config (see sweep.train).

    steps: optimizer updates; optimizer: one of TRAIN_OPTIMIZERS (through optax);
    learning_rate: the learning rates, sorted (a number is one); more than one makes it
    an axis of the sweep: every config trains once per learning rate, one row each;
    batch_size: examples per update; task: a name in sweep.names.TASKS.
    """

    steps: int = TRAIN_DEFAULTS["steps"]
    optimizer: str = TRAIN_DEFAULTS["optimizer"]
    learning_rate: tuple[float, ...] = (TRAIN_DEFAULTS["learning_rate"],)
    batch_size: int = TRAIN_DEFAULTS["batch_size"]
    task: str = TRAIN_DEFAULTS["task"]

    def __post_init__(self):
        rates = (
            self.learning_rate
            if isinstance(self.learning_rate, (tuple, list))
            else (self.learning_rate,)
        )
        object.__setattr__(self, "learning_rate", tuple(sorted({float(r) for r in rates})))

    def to_dict(self) -> dict[str, Any]:
        """The table as a dict (learning rates as a list)."""
        return {**dataclasses.asdict(self), "learning_rate": list(self.learning_rate)}


@dataclasses.dataclass(frozen=True)
class Spec:
    """A validated sweep: its axes and settings (build one with from_dict, load or preset).

    name: the default results directory's name (results/<name>); axes: each axis of AXES
    to its values, validated and sorted (init, activation and dtype keep their order); batch:
    probe inputs per network; dtype: the networks' arithmetic, or None when the spec gives
    dtype as an axis (axes["dtype"]; see dtypes); loss: "cotangent" or
    "mse"; train: the [train] probe, or None; draws: "shared" (common random numbers
    across depth and sigma) or "independent" (each config its own weights); jacobian:
    False skips the input-output Jacobian (its columns are null).

    >>> sweep = from_dict({"axes": {"depth": [1, 2], "sigma_w": [1.5], "width": [2]}})
    >>> sweep.n_configs, list(sweep.configs()["depth"])
    (2, [1, 2])
    """

    name: str
    axes: dict[str, tuple]
    batch: int = 8
    dtype: str | None = "float32"
    loss: str = "cotangent"
    train: TrainSettings | None = None
    draws: str = "shared"
    jacobian: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The spec as the dict from_dict reads (what sweep.json records)."""
        out = {
            "name": self.name,
            # The architecture axes are absent at their defaults: older sweeps keep their JSON.
            "axes": {
                k: list(v)
                for k, v in self.axes.items()
                if k not in OPTIONAL_AXES or list(v) != AXIS_DEFAULTS[k]
            },
            "settings": {"batch": self.batch, "dtype": self.dtype, "loss": self.loss},
        }
        if self.dtype is None:  # an axis
            del out["settings"]["dtype"]
        if self.draws != "shared":  # absent by default: older sweeps keep their JSON
            out["settings"]["draws"] = self.draws
        if not self.jacobian:
            out["settings"]["jacobian"] = False
        if self.train is not None:  # absent, not null: specs without [train] keep their old JSON
            out["train"] = self.train.to_dict()
        return out

    def to_json(self) -> str:
        """to_dict as canonical JSON."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def dtypes(self) -> tuple[str, ...]:
        """The dtypes the sweep runs in: the axis, or the setting alone."""
        return self.axes.get(DTYPE_AXIS, (self.dtype,))

    @property
    def unit_axes(self) -> tuple[str, ...]:
        """The columns that tell units of work apart: a family (every depth of one point)
        when draws are shared, one config when they are independent."""
        family = tuple(a for a in FAMILY_AXES if a in self.axes)
        return family + (("depth",) if self.draws == "independent" else ())

    @property
    def row_axes(self) -> tuple[str, ...]:
        """The columns that tell rows apart: the axes, and the learning rate when the sweep
        trains."""
        return tuple(name for level in self.levels() for name in level.names)

    @property
    def variants(self) -> tuple[tuple[str, float | None], ...]:
        """(architecture, residual_scale) of each network the architecture axes give: every
        residual scale for a residual architecture, None (ignored) for the others."""
        return _variants(self.axes)

    def levels(self) -> list[Level]:
        """The grid as a product of levels, in config_id's order: one per axis, the two
        architecture axes as one level of variants, dtype when it is an axis, and the
        learning rates when the sweep trains."""
        out = [
            Level((a,), tuple((v,) for v in self.axes[a]), tuple(_part(a, v) for v in self.axes[a]))
            for a in AXES[:ARCHITECTURE_LEVEL]
        ]
        out.append(
            Level(
                ("architecture", "residual_scale"),
                self.variants,
                tuple(_variant_part(*v) for v in self.variants),
            )
        )
        if DTYPE_AXIS in self.axes:
            dtypes = self.axes[DTYPE_AXIS]
            out.append(
                Level(
                    (DTYPE_AXIS,),
                    tuple((d,) for d in dtypes),
                    tuple(_part("dtype", d) for d in dtypes),
                )
            )
        if self.train is not None:
            rates = self.train.learning_rate
            out.append(
                Level(
                    ("learning_rate",),
                    tuple((r,) for r in rates),
                    tuple(_part("learning_rate", r) for r in rates),
                )
            )
        return out

    @property
    def rows_per_unit(self) -> int:
        """Rows of one unit of work: its depths (a family) and learning rates. (Not the
        axes' lengths: residual_scale is not crossed with every architecture.)"""
        spanned = [lv for lv in self.levels() if lv.names[0] not in self.unit_axes]
        return math.prod(len(level.options) for level in spanned)

    @property
    def n_configs(self) -> int:
        """Rows of the sweep: the grid's points, times the learning rates when it trains."""
        return math.prod(len(level.options) for level in self.levels())

    def configs(self) -> pd.DataFrame:
        """The config table: one row per point of the grid (and learning rate, when the
        sweep trains), in itertools.product order, with a stable `config_id`.

        Built from numpy columns, and the ids by grid_ids: no Python object per row but the
        id string itself. A sweep runs from config_blocks, never from this whole table."""
        return grid_table(self.levels())

    def config_blocks(self, max_rows: int) -> Iterator[list[Level]]:
        """The grid as sub-grids of about max_rows rows (at least one family each), each
        the levels of a product of whole families: every depth and learning rate of each
        family it holds. Together they cover the grid once. The families are cut in
        FAMILY_LEVELS order (seed before sigma), so a block keeps all the sigmas of its
        seeds and seed groups pack as in the whole grid."""
        levels = {level.names[0]: level for level in self.levels()}
        family_levels = [k for k in FAMILY_LEVELS if k in levels]
        sizes = [len(levels[k].options) for k in family_levels]
        per_family = self.n_configs // math.prod(sizes)
        families = max(1, max_rows // per_family)
        # The outermost family level whose inner levels fit: its options go in slices.
        cut = next(k for k in range(len(sizes)) if math.prod(sizes[k + 1 :]) <= families)
        step = max(1, families // math.prod(sizes[cut + 1 :]))
        outer = [range(len(levels[k].options)) for k in family_levels[:cut]]
        cut_level = levels[family_levels[cut]]
        for fixed in itertools.product(*outer):
            for start in range(0, len(cut_level.options), step):
                block = dict(levels)
                for key, i in zip(family_levels, fixed):
                    block[key] = levels[key].pick(slice(i, i + 1))
                block[cut_level.names[0]] = cut_level.pick(slice(start, start + step))
                yield list(block.values())


def _variants(axes: dict[str, tuple]) -> tuple[tuple[str, float | None], ...]:
    scales = axes["residual_scale"]
    return tuple(
        (name, alpha)
        for name in axes["architecture"]
        for alpha in (scales if name in names.RESIDUAL_ARCHITECTURES else (None,))
    )


class Level(NamedTuple):
    """One factor of the grid's product: the columns it sets, each option's values for
    them, and each option's piece of the canonical string that config_id hashes."""

    names: tuple[str, ...]
    options: tuple[tuple, ...]
    parts: tuple[str, ...]

    def pick(self, which: slice) -> Level:
        return Level(self.names, self.options[which], self.parts[which])


def _part(axis: str, value) -> str:
    return f"{axis}={value!r}"


def _variant_part(architecture: str, residual_scale: float | None) -> str:
    """The variant's piece of the id: nothing for mlp (so mlp ids are those of sweeps
    from before the axis), the architecture otherwise, and the scale when residual."""
    pieces = [] if architecture == "mlp" else [_part("architecture", architecture)]
    if residual_scale is not None:
        pieces.append(_part("residual_scale", residual_scale))
    return "|".join(pieces)


def grid_table(levels: list[Level]) -> pd.DataFrame:
    """The rows of the product of `levels` (in config_id's order) as numpy columns, in
    itertools.product order, with their config_id."""
    sizes = [len(level.options) for level in levels]
    table = {}
    for k, level in enumerate(levels):
        inner, outer = math.prod(sizes[k + 1 :]), math.prod(sizes[:k])
        for j, name in enumerate(level.names):
            values = [option[j] for option in level.options]
            dtype = object if name in STRING_COLUMNS else (float if name in FLOAT_COLUMNS else None)
            table[name] = np.tile(np.repeat(np.asarray(values, dtype=dtype), inner), outer)
    table["config_id"] = grid_ids(levels)
    return pd.DataFrame(table)


def grid_ids(levels: list[Level]) -> list[str]:
    """config_id of every point of the product of `levels`, in itertools.product order.

    The same SHA-1 as config_id, but each prefix of the canonical string is hashed once
    and copied (hashlib's copy), so a row costs one copy, one short update and one digest.
    The first level (depth) is never empty.
    """
    parts = [
        [(p if k == 0 or not p else "|" + p).encode() for p in level.parts]
        for k, level in enumerate(levels)
    ]
    out: list[str] = []
    last = len(parts) - 1

    def descend(level: int, prefix) -> None:
        if level == last:
            for part in parts[level]:
                h = prefix.copy()
                h.update(part)
                out.append(h.hexdigest()[:16])
            return
        for part in parts[level]:
            h = prefix.copy()
            h.update(part)
            descend(level + 1, h)

    descend(0, hashlib.sha1())
    return out


def config_id(values: dict[str, Any]) -> str:
    """16 hex digits from the axis values alone (a row of the config table), so ids are
    stable across runs and chunks: SHA-1 of 'axis=repr(value)|...' over the axes in AXES
    order, where architecture is left out for "mlp" and residual_scale for a
    non-residual architecture (so the ids of plain networks are those of sweeps from
    before these axes), and dtype unless it is an axis (the config table then has the
    column), then learning_rate, for rows of a sweep that trains."""
    architecture = values.get("architecture", "mlp")
    keys = list(AXES[:ARCHITECTURE_LEVEL])
    keys += ["architecture"] if architecture != "mlp" else []
    keys += ["residual_scale"] if architecture in names.RESIDUAL_ARCHITECTURES else []
    keys += [DTYPE_AXIS] if DTYPE_AXIS in values else []
    keys += ["learning_rate"] if values.get("learning_rate") is not None else []
    canonical = "|".join(f"{a}={values[a]!r}" for a in keys)
    return hashlib.sha1(canonical.encode()).hexdigest()[:16]


_HEX_DIGITS = np.zeros(256, np.uint64)
_HEX_DIGITS[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint64)
_NIBBLE_SHIFTS = np.arange(60, -1, -4, dtype=np.uint64)


def id_numbers(ids) -> np.ndarray:
    """(R,) uint64: each config id (16 hex digits) as the 64-bit number it spells."""
    digits = _HEX_DIGITS[np.asarray(ids, dtype="S16").view(np.uint8).reshape(-1, 16)]
    return np.bitwise_or.reduce(digits << _NIBBLE_SHIFTS, axis=1)


def _axis_values(key: str, raw: Any) -> list:
    if isinstance(raw, dict):
        values = ranges.expand_range(key, raw)
    elif isinstance(raw, list):
        values = raw
    else:
        values = [raw]
    if not values:
        raise SpecError(f"axes.{key}: the axis is empty; give at least one value")
    return values


def _unsquared(axes_raw: dict) -> dict:
    """axes_raw with each squared axis (sigma_w2) given as its plain one (sigma_w): the
    square roots of its checked values, to 12 significant digits like every float."""
    axes_raw = dict(axes_raw)
    for squared, plain in SQUARED_AXES.items():
        if squared not in axes_raw:
            continue
        if plain in axes_raw:
            raise SpecError(
                f"axes: give {plain} or {squared}, not both (they are one axis: {squared} = "
                f"{plain}^2)"
            )
        values = [_check_sigma(squared, v) for v in _axis_values(squared, axes_raw.pop(squared))]
        axes_raw[plain] = [ranges.canonical_float(math.sqrt(v)) for v in values]
    return axes_raw


def _unknown(kind: str, value: Any, accepted, label: str = "accepted") -> str:
    """'unknown <kind> <value>; did you mean <closest>? <label>: ...' (one line)."""
    close = (
        difflib.get_close_matches(value, [str(a) for a in accepted], n=1, cutoff=0.6)
        if isinstance(value, str)
        else []
    )
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return f"unknown {kind} {ranges.short(value)}{hint} {label}: {', '.join(accepted)}"


def _check_int(
    key: str, value: Any, low: int, high: int | None = None, what: str = "an integer"
) -> int:
    if isinstance(value, float) and value.is_integer() and key != "seed":
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"axes.{key}: {ranges.short(value)} is not {what}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise SpecError(f"axes.{key}: {ranges.short(value)} must be {bound}")
    return value


def _check_sigma(key: str, value: Any) -> float:
    number = ranges.finite_float(value)
    if number is None or number < 0:
        raise SpecError(f"axes.{key}: {ranges.short(value)} must be a finite number >= 0")
    return ranges.canonical_float(number) + 0.0  # -0.0 is 0.0, one config id


# Init conventions by their usual names, in sweep's terms (sigma_w^2 is the weight variance
# times fan_in; every layer here is square, so fan_in = fan_out = width).
INIT_CONVENTIONS = {
    "he": "He (Kaiming) init is init = gaussian with sigma_w2 = 2",
    "kaiming": "He (Kaiming) init is init = gaussian with sigma_w2 = 2",
    "lecun": "LeCun init is init = gaussian with sigma_w2 = 1",
    "glorot": "Glorot (Xavier) init of square layers is init = uniform (or gaussian) with "
    "sigma_w2 = 1",
    "xavier": "Glorot (Xavier) init of square layers is init = uniform (or gaussian) with "
    "sigma_w2 = 1",
}


def _check_name(key: str, value: Any, accepted) -> str:
    if not isinstance(value, str) or value not in accepted:
        convention = key == "init" and isinstance(value, str)
        hint = INIT_CONVENTIONS.get(value.lower().split("_")[0]) if convention else None
        if hint:
            raise SpecError(f"axes.init: unknown init {value!r}; {hint}")
        raise SpecError(f"axes.{key}: {_unknown(key, value, accepted)}")
    return value


def _validate_axis(key: str, values: list) -> tuple:
    if key in ("depth", "width"):
        checked = [
            _check_int(key, v, 1, MAX_DEPTH if key == "depth" else MAX_WIDTH) for v in values
        ]
    elif key == "seed":
        checked = [_check_int(key, v, 0, MAX_SEED, "an integer seed") for v in values]
    elif key in ("sigma_w", "sigma_b", "residual_scale"):
        checked = [_check_sigma(key, v) for v in values]
    elif key == "architecture":
        checked = [_check_name(key, v, names.ARCHITECTURES) for v in values]
    elif key == "init":
        checked = [_check_name(key, v, names.INITS) for v in values]
    elif key == DTYPE_AXIS:
        checked = [_check_name(key, v, DTYPES) for v in values]
    else:
        checked = [_check_name(key, v, names.ACTIVATIONS) for v in values]
    unique = list(dict.fromkeys(checked))  # first occurrences, in order: linear time
    return tuple(sorted(unique) if key not in STRING_COLUMNS else unique)


def from_dict(raw: dict[str, Any], default_name: str = "sweep") -> Spec:
    """Validates a spec given as a dict (the parsed TOML). Raises SpecError."""
    if not isinstance(raw, dict):
        raise SpecError("a spec must be a table with [axes] and optional [settings]")
    unknown = set(raw) - set(TOP_LEVEL_KEYS)
    if unknown:
        key = sorted(unknown)[0]
        if key in SETTINGS_DEFAULTS:  # dtype too: a setting, or an axis of several
            raise SpecError(
                f"unknown top-level key {key!r}: it is a setting; put it under a [settings] header"
            )
        if key in AXES or key in SQUARED_AXES:
            raise SpecError(
                f"unknown top-level key {key!r}: it is an axis; put the axes under an [axes] "
                "header (and batch, dtype, ... under [settings])"
            )
        raise SpecError(_unknown("key", key, TOP_LEVEL_KEYS, "accepted top-level keys"))
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise SpecError(
            f"name: {ranges.short(name)} must be one path component of letters, digits, '.', "
            "'_' and '-', starting with a letter or digit (at most 100 characters)"
        )
    axes_raw = raw.get("axes", {})
    if not isinstance(axes_raw, dict):
        raise SpecError("axes: must be a table of axis = values")
    unknown = set(axes_raw) - set(AXES) - set(SQUARED_AXES)
    if unknown:
        raise SpecError(
            _unknown("axis", sorted(unknown)[0], (*AXES, *SQUARED_AXES), "accepted axes")
        )
    axes_raw = _unsquared(axes_raw)
    for key in REQUIRED_AXES:
        if key not in axes_raw:
            also = f" (or {key}2)" if f"{key}2" in SQUARED_AXES else ""
            raise SpecError(
                f"axes.{key}{also} is missing; give a list or a range such as "
                f"{{start = 1, stop = 10, step = 1}}"
            )
    axes, n_configs = {}, 1
    for key in AXES:
        if key not in axes_raw and key not in AXIS_DEFAULTS:  # dtype, a setting
            continue
        values = _axis_values(key, axes_raw[key]) if key in axes_raw else AXIS_DEFAULTS[key]
        axes[key] = _validate_axis(key, values)
        n_configs *= len(axes[key]) if key not in OPTIONAL_AXES else 1
        if n_configs > MAX_CONFIGS:  # refused as soon as known, before the other axes
            break
    else:
        n_configs *= len(_variants(axes))
    if n_configs > MAX_CONFIGS:
        raise SpecError(
            f"axes: {n_configs:,} configs or more is more than {MAX_CONFIGS:,}; split it into "
            "several specs, or use smaller axes"
        )

    normed = [a for a in axes["architecture"] if a in names.LAYERNORM_ARCHITECTURES]
    if normed and axes["width"][0] < 2:
        raise SpecError(
            f"axes.width: architecture {normed[0]} needs width >= 2 (LayerNorm of one unit is "
            "0/0); drop width 1 or that architecture"
        )

    settings = raw.get("settings", {})
    if not isinstance(settings, dict):
        raise SpecError("settings: must be a table")
    unknown = set(settings) - set(SETTINGS_DEFAULTS)
    if unknown:
        key = sorted(unknown)[0]
        if key in AXES or key in SQUARED_AXES:
            raise SpecError(f"unknown setting {key!r}: it is an axis; put it under [axes]")
        raise SpecError(_unknown("setting", key, SETTINGS_DEFAULTS))
    if DTYPE_AXIS in axes and "dtype" in settings:
        raise SpecError(
            "settings.dtype: dtype is also an axis; give the dtypes as one axis "
            '(axes.dtype = ["float32", "float16"]) or one dtype as a setting, not both'
        )
    settings = {**SETTINGS_DEFAULTS, **settings}
    batch = settings["batch"]
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise SpecError(
            f"settings.batch: {ranges.short(batch)} must be an integer in [1, {MAX_BATCH}]"
        )
    for key, accepted in (("dtype", DTYPES), ("loss", LOSSES), ("draws", DRAWS)):
        if not isinstance(settings[key], str) or settings[key] not in accepted:
            raise SpecError(f"settings.{key}: {_unknown(key, settings[key], accepted)}")
    if not isinstance(settings["jacobian"], bool):
        raise SpecError(
            f"settings.jacobian: {ranges.short(settings['jacobian'])} must be true or false"
        )
    train = _train_settings(raw["train"]) if "train" in raw else None
    if train is not None and settings["draws"] != "shared":
        raise SpecError(
            "settings.draws: the [train] probe starts from shared draws; remove [train] or use "
            'draws = "shared"'
        )
    if train is not None and n_configs * len(train.learning_rate) > MAX_CONFIGS:
        raise SpecError(
            f"train.learning_rate: {n_configs * len(train.learning_rate):,} trained configs is "
            f"more than {MAX_CONFIGS:,}; use fewer learning rates or smaller axes"
        )
    return Spec(
        name=name,
        axes=axes,
        batch=batch,
        dtype=None if DTYPE_AXIS in axes else settings["dtype"],
        loss=settings["loss"],
        train=train,
        draws=settings["draws"],
        jacobian=settings["jacobian"],
    )


def _positive_number(key: str, value: Any) -> float:
    number = ranges.finite_float(value)
    if number is None or number <= 0:
        raise SpecError(f"train.{key}: {ranges.short(value)} must be a finite number > 0")
    return number


def _positive_integer(key: str, value: Any, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise SpecError(f"train.{key}: {ranges.short(value)} must be an integer in [1, {high:,}]")
    return value


def _learning_rates(raw: Any) -> tuple[float, ...]:
    """A number, a list or a range table (as for an axis) of learning rates > 0."""
    if isinstance(raw, dict):
        values = ranges.expand_range("learning_rate", raw, label="train.learning_rate")
    else:
        values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise SpecError(
            "train.learning_rate: the list is empty; give a number > 0 or a list of them"
        )
    return tuple(
        sorted({ranges.canonical_float(_positive_number("learning_rate", v)) for v in values})
    )


def _train_settings(raw: Any) -> TrainSettings:
    """Validates the [train] table. Raises SpecError."""
    if not isinstance(raw, dict):
        raise SpecError(f"train: must be a table of {', '.join(TRAIN_DEFAULTS)}")
    unknown = set(raw) - set(TRAIN_DEFAULTS)
    if unknown:
        raise SpecError(_unknown("train key", sorted(unknown)[0], TRAIN_DEFAULTS))
    train = {**TRAIN_DEFAULTS, **raw}
    for key, accepted in (("optimizer", TRAIN_OPTIMIZERS), ("task", names.TASKS)):
        if not isinstance(train[key], str) or train[key] not in accepted:
            raise SpecError(f"train.{key}: {_unknown(key, train[key], accepted)}")
    return TrainSettings(
        steps=_positive_integer("steps", train["steps"], MAX_TRAIN_STEPS),
        optimizer=train["optimizer"],
        learning_rate=_learning_rates(train["learning_rate"]),
        batch_size=_positive_integer("batch_size", train["batch_size"], MAX_TRAIN_BATCH),
        task=train["task"],
    )


def load(path: str) -> Spec:
    """Reads and validates a TOML spec file, or a built-in preset named instead of a path
    (a file of that name wins). Raises SpecError."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        if path in PRESETS:
            return preset(path)
        raise SpecError(
            f"spec file {path!r} not found; give the path to a TOML spec or a preset name "
            f"({', '.join(PRESETS)})"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"spec file {path!r} is not valid TOML: {err}") from None
    except RecursionError:
        raise SpecError(f"spec file {path!r} is nested too deeply to be a spec") from None
    except OSError as err:
        raise SpecError(f"spec file {path!r} cannot be read: {err.strerror}") from None
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", stem).lstrip("._-")[:100] or "sweep"
    return from_dict(raw, default_name=stem)


PRESETS = ("lecture", "trainability", "resnet")


def preset(name: str) -> Spec:
    """The built-in spec called `name` (PRESETS), validated."""
    if name not in PRESETS:
        raise SpecError(_unknown("preset", name, PRESETS))
    text = resources.files("sweep").joinpath(f"presets/{name}.toml").read_text()
    return from_dict(tomllib.loads(text))
