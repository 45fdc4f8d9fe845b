"""Sharded over 4 CPU devices equals one device, measurements and training. Runs in a
subprocess, because the device count is fixed when JAX starts and the rest of the suite
runs on one device."""

import json
import os
import subprocess
import sys

import numpy as np

SCRIPT = """
import json, sys
import jax
jax.config.update("jax_num_cpu_devices", int(sys.argv[2]))
import sweep
assert jax.local_device_count() == int(sys.argv[2])
axes = {"depth": [2, 6], "sigma_w": [0.7, 1.0, 1.3], "sigma_b": [0.0, 0.1], "width": [6],
        "init": ["gaussian", "orthogonal"], "activation": ["tanh"], "seed": [0, 3]}
frame = sweep.run({"name": "devices", "axes": axes}, out=sys.argv[1])
frame = frame.set_index("config_id").sort_index()
train_axes = {"depth": [1, 3], "sigma_w": [0.9, 1.1], "width": [8], "activation": ["tanh"]}
train = {"steps": 10, "task": "teacher", "learning_rate": [0.05, 0.2]}
trained = sweep.run({"name": "devices-train", "axes": train_axes, "train": train},
                    out=sys.argv[1] + "-train").set_index("config_id").sort_index()
print(json.dumps({
    "train_ids": list(trained.index),
    "train_loss_final": trained["train_loss_final"].tolist(),
    "train_curve": __import__('numpy').concatenate(trained["train_loss_curve"].to_list()).tolist(),
    "ids": list(frame.index),
    "gain": frame["log10_backward_gain"].tolist(),
    "act": np.concatenate(frame["log10_act_norm"].to_list()).tolist(),
    "jac": frame["log10_jac_sv_min"].tolist(),
    "status": frame["status"].tolist(),
}))
""".replace("np.concatenate", "__import__('numpy').concatenate")


def _start(tmp_path, devices):
    # The device count is the script's: no --xla_force_host_platform_device_count.
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path / f"d{devices}"), str(devices)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "XLA_FLAGS": " ".join(flags)},
    )


def _result(process):
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_four_devices_equal_one(tmp_path):
    # Side by side: each compiles on its own core.
    started = [_start(tmp_path, 1), _start(tmp_path, 4)]
    one, four = (_result(p) for p in started)
    assert one["ids"] == four["ids"] and one["status"] == four["status"]
    # Training: each device trains its share of the configs, in float32. A sharded program
    # is another program, not the same bits by construction (XLA may order a reduction
    # otherwise): float32 rounding, 8 ulps (8 x 2^-23 ~ 1e-6 relative; seen: 2e-8).
    assert one["train_ids"] == four["train_ids"] and len(one["train_ids"]) == 8
    for key in ["train_loss_final", "train_curve"]:
        np.testing.assert_allclose(four[key], one[key], rtol=8 * 2.0**-23, err_msg=key)
    # float32 network state is bitwise equal; float64 bookkeeping to a few ulps (see test_engine).
    for key in ["gain", "act", "jac"]:
        np.testing.assert_allclose(four[key], one[key], rtol=1e-12, atol=1e-12, err_msg=key)
