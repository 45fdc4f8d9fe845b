"""The command line: bad input gets one line, exit code 2, no traceback, nothing written."""

import os
import subprocess
import sys

import pytest

from sweep import cli, spec, store

GOOD = """name = "good"
[axes]
depth = [1, 2]
sigma_w = [0.5, 1.5]
width = [2]
init = ["identity"]
"""

BAD_SPECS = {
    "unknown-key": (
        'name = "x"\ncolour = 1\n[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\n',
        "colour",
    ),
    "unknown-axis": ("[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\nheight = [3]\n", "height"),
    "unknown-setting": (
        "[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\n[settings]\nbatchsize = 3\n",
        "batchsize",
    ),
    "width-zero": ("[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [0]\n", "width"),
    "depth-zero": ("[axes]\ndepth = [0, 1]\nsigma_w = [1.0]\nwidth = [2]\n", "depth"),
    "negative-sigma": ("[axes]\ndepth = [1]\nsigma_w = [-1.0]\nwidth = [2]\n", "sigma_w"),
    "nan-sigma": (
        "[axes]\ndepth = [1]\nsigma_w = [1.0]\nsigma_b = [nan]\nwidth = [2]\n",
        "sigma_b",
    ),
    "inf-sigma": ("[axes]\ndepth = [1]\nsigma_w = [inf]\nwidth = [2]\n", "sigma_w"),
    "unknown-init": (
        '[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\ninit = ["xavier"]\n',
        "xavier",
    ),
    "unknown-activation": (
        '[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\nactivation = ["mish2"]\n',
        "mish2",
    ),
    "unknown-dtype": (
        '[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\n[settings]\ndtype = "float8"\n',
        "float8",
    ),
    "unknown-loss": (
        '[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\n[settings]\nloss = "l1"\n',
        "l1",
    ),
    "empty-axis": ("[axes]\ndepth = []\nsigma_w = [1.0]\nwidth = [2]\n", "empty"),
    "empty-range": (
        "[axes]\ndepth = {start = 5, stop = 1, step = 1}\nsigma_w = [1.0]\nwidth = [2]\n",
        "empty",
    ),
    "malformed-toml": ("[axes\ndepth = [1]\n", "TOML"),
    "float-seed": ("[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\nseed = [1.5]\n", "seed"),
    "string-seed": ('[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\nseed = ["a"]\n', "seed"),
    "missing-axis": ("[axes]\ndepth = [1]\nwidth = [2]\n", "sigma_w"),
    "unknown-architecture": (
        '[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\narchitecture = ["transformer"]\n',
        "architecture",
    ),
    "negative-residual-scale": (
        "[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\nresidual_scale = [-0.5]\n",
        "residual_scale",
    ),
    "layernorm-width-one": (
        '[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [1, 4]\narchitecture = ["mlp_layernorm"]\n',
        "width >= 2",
    ),
    "jacobian-not-bool": (
        '[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\n[settings]\njacobian = "no"\n',
        "jacobian",
    ),
    "bad-range-key": (
        "[axes]\ndepth = {start = 1, stop = 3, stride = 1}\nsigma_w = [1.0]\nwidth = [2]\n",
        "stride",
    ),
    "nested-init": (
        '[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\ninit = [["gaussian"]]\n',
        "init",
    ),
    "huge-range": (
        "[axes]\ndepth = [1]\nsigma_w = {start = 0, stop = 1e308, step = 1e-300}\nwidth = [2]\n",
        "sigma_w",
    ),
    "huge-depth": ("[axes]\ndepth = [1000000000000]\nsigma_w = [1.0]\nwidth = [2]\n", "depth"),
    "unknown-draws": (
        '[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\n[settings]\ndraws = "fresh"\n',
        "draws",
    ),
    "independent-with-train": (
        '[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\n[settings]\ndraws = "independent"\n'
        "[train]\nsteps = 3\n",
        "draws",
    ),
    "dtype-not-string": (
        "[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\n[settings]\ndtype = 3\n",
        "dtype",
    ),
}


@pytest.mark.parametrize("text, expected", BAD_SPECS.values(), ids=BAD_SPECS.keys())
def test_bad_spec_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, text, expected):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    out = tmp_path / "out"
    code = cli.main(["run", str(path), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep: error:") and expected in lines[0], (
        captured.err
    )
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists()


BAD_FLAGS = {
    "chunk-size-zero": (["--chunk-size", "0"], "chunk-size"),
    "seed-not-int": (["--seed", "x"], "seed"),
    "budget-not-size": (["--memory-budget", "lots"], "memory-budget"),
    "unknown-flag": (["--colour"], "colour"),
    "budget-infinite": (["--memory-budget", "infG"], "memory-budget"),
    "budget-zero": (["--memory-budget", "0"], "memory-budget"),
    "overwrite-with-shards": (["--overwrite", "--shard", "0/2"], "--shard"),
}


@pytest.mark.parametrize("flags, expected", BAD_FLAGS.values(), ids=BAD_FLAGS.keys())
def test_bad_flags_are_one_line_exit_2(tmp_path, capsys, flags, expected):
    path = tmp_path / "spec.toml"
    path.write_text(GOOD)
    code = cli.main(["run", str(path), "--out", str(tmp_path / "out"), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and expected in err[0]
    assert not (tmp_path / "out").exists()


def test_missing_spec_file(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_run_then_info_then_resume(tmp_path, capsys):
    path = tmp_path / "spec.toml"
    path.write_text(GOOD)
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out)]) == 0
    assert "4 configs computed" in capsys.readouterr().out
    assert cli.main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "rows: 4 of 4 configs" in info and "ok" in info
    assert cli.main(["run", str(path), "--out", str(out)]) == 0
    assert "0 configs computed" in capsys.readouterr().out
    assert len(store.load(str(out))) == 4
    assert cli.main(["info", str(tmp_path)]) == 2


def test_the_issue_example_spec_parses_to_the_lecture_grid(tmp_path):
    example = """name = "example"
[axes]
depth = {start = 1, stop = 150, step = 1}
sigma_w = {start = 0.5, stop = 1.5, num = 41}
sigma_b = [0.0]
width = [2, 64]
init = ["identity", "gaussian", "orthogonal"]
activation = ["linear", "tanh", "relu"]
seed = [0]
[settings]
batch = 8
dtype = "float32"
loss = "cotangent"
"""
    path = tmp_path / "example.toml"
    path.write_text(example)
    parsed = spec.load(str(path))
    assert parsed.axes == spec.preset("lecture").axes and parsed.n_configs == 110_700
    assert parsed.axes["sigma_w"][:3] == (0.5, 0.525, 0.55) and parsed.axes["depth"][-1] == 150


def test_theory_command(capsys):
    assert cli.main(["theory", "--activation", "relu", "--sigma-b", "0"]) == 0
    assert "critical sigma_w^2 = 2.000000" in capsys.readouterr().out
    assert cli.main(["theory", "--activation", "nope"]) == 2


def test_console_script_has_no_traceback(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text("[axes]\ndepth = [0]\nsigma_w = [1.0]\nwidth = [2]\n")
    result = subprocess.run(
        [sys.executable, "-m", "sweep.cli", "run", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "sweep: error: axes.depth: 0 must be in [1, 1000000]"
    ]


def test_info_and_out_paths_that_are_not_directories(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli.main(["info", str(afile)]) == 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "sweep.json").write_text("[1]")
    assert cli.main(["info", str(tmp_path / "bad")]) == 2
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(GOOD)
    assert cli.main(["run", str(spec_path), "--out", str(afile / "under"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("sweep: error:") for line in err)


def test_spec_values_are_canonical():
    parsed = spec.from_dict(
        {
            "axes": {
                "depth": [1],
                "sigma_w": {"start": 0, "stop": 2, "num": 5},
                "sigma_b": [-0.0],
                "width": [2],
            }
        }
    )
    assert parsed.axes["sigma_w"] == (
        0.0,
        0.5,
        1.0,
        1.5,
        2.0,
    )  # a float axis is never rounded to integers
    assert str(parsed.axes["sigma_b"][0]) == "0.0"  # -0.0 and 0.0 are one config
