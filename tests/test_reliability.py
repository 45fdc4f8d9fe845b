"""A results directory never holds silently wrong or mixed rows, and bad input is refused
in one line before anything is written: one writer per slice, parts verified against the
manifest (another sweep's, a foreign file, a flipped byte, a duplicate), safe names,
signals, a closed pipe, a full disk, and runs killed at random and resumed."""

import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from sweep import api, cli, interrupts, locks, spec, store

SPEC = {"name": "reliable", "axes": {"depth": [1, 3], "sigma_w": [0.8, 1.2], "width": [4]}}


@pytest.fixture
def finished(tmp_path):
    out = str(tmp_path / "out")
    api.execute(SPEC, out)
    return out


# --- one writer per slice -------------------------------------------------------------


def test_a_second_writer_of_the_same_slice_is_refused(tmp_path):
    out = str(tmp_path / "out")
    with locks.writer(out, (0, 1)):
        with pytest.raises(store.StoreError, match="another `sweep run` is writing slice 0/1"):
            api.execute(SPEC, out)
    assert not glob.glob(os.path.join(out, "part-*"))


def test_shards_of_one_count_run_side_by_side_but_not_beside_another_count(tmp_path):
    out = str(tmp_path / "out")
    with locks.writer(out, (0, 2)):
        with locks.writer(out, (1, 2)):  # the other slice of the same split: allowed
            pass
        with pytest.raises(store.StoreError, match="same N"):
            api.execute(SPEC, out)  # an unsharded run (0/1) overlaps both slices
        with pytest.raises(store.StoreError, match="another `sweep run` is writing"):
            api.execute(SPEC, out, overwrite=True)


def test_a_different_sweep_is_refused_naming_what_differs_and_never_offers_overwrite(finished):
    other = {**SPEC, "axes": {**SPEC["axes"], "sigma_w": [0.8, 1.3]}}
    with pytest.raises(store.StoreError) as err:
        api.execute(other, finished)
    assert "axes.sigma_w" in str(err.value) and "--overwrite" not in str(err.value)
    with pytest.raises(store.StoreError, match="--seed"):
        api.execute(SPEC, finished, root_seed=1)


def test_an_unreadable_manifest_is_reported_as_such_and_keeps_the_parts(finished):
    with open(os.path.join(finished, store.MANIFEST), "w") as f:
        f.write('{"spec": ')  # a torn write
    before = sorted(os.listdir(finished))
    with pytest.raises(store.StoreError, match="cannot be read") as err:
        api.execute(SPEC, finished)
    assert "--overwrite" not in str(err.value) and sorted(os.listdir(finished)) == before


def test_a_rerun_with_nothing_to_do_writes_nothing(finished, monkeypatch):
    stamps = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(finished, "*"))}

    def no_writer(*args, **kwargs):
        raise AssertionError("a finished sweep took the writer's lock")

    monkeypatch.setattr(locks, "writer", no_writer)
    frame = api.run(SPEC, finished)
    assert len(frame) == 4
    assert stamps == {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(finished, "*"))}


# --- the loader verifies what it reads -------------------------------------------------


def test_a_part_of_another_root_seed_is_refused_naming_the_file(tmp_path, finished):
    other = str(tmp_path / "seed1")
    api.execute(SPEC, other, root_seed=1)
    stranger = sorted(glob.glob(os.path.join(other, "part-*")))[0]
    copied = os.path.join(finished, "part-ffffffffffffffff.parquet")
    os.rename(stranger, copied)
    for read in (store.load, store.done_ids, lambda out: api.execute(SPEC, out)):
        with pytest.raises(store.StoreError, match="belongs to another sweep") as err:
            read(finished)
        assert copied in str(err.value)


def test_a_foreign_parquet_file_is_refused(finished):
    import pyarrow as pa

    path = os.path.join(finished, "part-0000000000000000.parquet")
    pq.write_table(pa.table({"config_id": ["x"], "depth": [1]}), path)
    with pytest.raises(store.StoreError, match="not written by sweep"):
        store.load(finished)


def test_a_flipped_byte_is_an_error_not_a_value(finished):
    path = sorted(glob.glob(os.path.join(finished, "part-*")))[0]
    column = pq.read_schema(path).get_field_index("log10_forward_gain")
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(column)
    offset = chunk.data_page_offset + chunk.total_compressed_size - 3  # inside the values
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(store.StoreError, match="is corrupt") as err:
        store.load(finished)
    assert path in str(err.value) and "\n" not in str(err.value)


def test_a_duplicated_part_is_read_once_with_a_warning(finished):
    path = sorted(glob.glob(os.path.join(finished, "part-*")))[0]
    with open(path, "rb") as src, open(path.replace("part-", "part-0"), "wb") as dst:
        dst.write(src.read())
    with pytest.warns(UserWarning, match="repeat a config_id"):
        frame = store.load(finished)
    assert len(frame) == 4 and frame["config_id"].is_unique


# --- bad input: one line, exit 2, nothing written ---------------------------------------

BAD_SPECS = {
    "dot-dot-name": ('name = ".."\n', "name"),
    "dot-name": ('name = "."\n', "name"),
    "slash-name": ('name = "a/b"\n', "name"),
    "huge-sigma": ("", "axes.sigma_w", "sigma_w = [1e400]\n"),
    "huge-int-sigma": ("", "axes.sigma_w", "sigma_w = [" + "9" * 400 + "]\n"),
    "huge-batch": ("[settings]\nbatch = 1099511627776\n", "settings.batch"),
    "huge-steps": ("[train]\nsteps = 100000000000000000000000000000\n", "train.steps"),
    "huge-learning-rate": ("[train]\nlearning_rate = " + "9" * 400 + "\n", "learning_rate"),
    "a-family-too-big-for-memory": ("", "memory budget", "width = [65536]\n"),
}


@pytest.mark.parametrize("case", BAD_SPECS.values(), ids=BAD_SPECS.keys())
def test_bad_input_is_one_line_before_anything_is_written(tmp_path, capsys, monkeypatch, case):
    head, expected, *axes = case
    axes_text = axes[0] if axes else ""
    body = "[axes]\ndepth = [1]\n"
    body += axes_text if "sigma_w" in axes_text else "sigma_w = [1.0]\n"
    body += axes_text if "width" in axes_text else "width = [2]\n"
    top, rest = (head, "") if not head.startswith("[") else ("", head)
    path = tmp_path / "spec.toml"
    path.write_text(top + body + rest)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", str(path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert not os.path.exists(tmp_path / "results") and not os.path.exists(tmp_path.parent / "a")


def test_a_tiny_memory_budget_is_refused(tmp_path, capsys):
    path = tmp_path / "spec.toml"
    path.write_text("[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [8]\n")
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "--memory-budget", "1K"]) == 2
    assert "memory budget" in capsys.readouterr().err and not out.exists()


def test_a_deeply_nested_spec_is_one_line(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 2000 + "]" * 2000 + "\n")
    with pytest.raises(spec.SpecError) as err:
        spec.load(str(path))
    assert "\n" not in str(err.value)


def test_a_geometric_integer_range_rounds_to_integers():
    sweep = spec.from_dict(
        {
            "axes": {
                "depth": {"start": 1, "stop": 1024, "num": 11, "log": True},
                "sigma_w": [1.0],
                "width": [2],
            }
        }
    )
    assert sweep.axes["depth"] == tuple(2**k for k in range(11))


def test_validation_is_linear_in_the_axis_length():
    values = list(np.linspace(0.5, 2.0, 200_000))
    start = time.perf_counter()
    sweep = spec.from_dict({"axes": {"depth": [1], "sigma_w": values, "width": [2]}})
    assert len(sweep.axes["sigma_w"]) == 200_000 and time.perf_counter() - start < 30


def test_a_full_disk_names_the_file(tmp_path, capsys, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    path = tmp_path / "spec.toml"
    path.write_text("[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\n")
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{out}/part-" in err and "No space left" in err and err.count("\n") == 1


def test_every_dtype_of_a_seed_is_the_same_network_rounded(run_sweep):
    axes = {"depth": [6], "sigma_w": [0.9, 1.3], "width": [16], "activation": ["tanh"]}
    rows = {
        dtype: run_sweep(axes, {"dtype": dtype}).set_index("sigma_w")["log10_forward_gain"]
        for dtype in ("float64", "float32", "bfloat16")
    }
    # float32 rounding over 6 layers of width 16: ~1e-6; bfloat16's 8 bits: ~1e-2.
    np.testing.assert_allclose(rows["float32"], rows["float64"], atol=1e-5)
    np.testing.assert_allclose(rows["bfloat16"], rows["float64"], atol=0.05)


# --- signals and pipes --------------------------------------------------------------------


def test_a_swallowed_interrupt_still_stops_the_run(monkeypatch):
    monkeypatch.setattr(interrupts, "_received", [signal.SIGTERM])
    with pytest.raises(interrupts.Interrupted) as err:
        interrupts.check()
    assert err.value.signum == signal.SIGTERM


def _console(*args, **kwargs):
    code = "import sys; from sweep.console import main; sys.argv[0] = 'sweep'; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SWEEP_CACHE_DIR": ""},
        **kwargs,
    )


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize("delay", [1.0, 5.0], ids=["start-up", "running"])
def test_a_signal_at_any_moment_is_one_line_and_its_exit_code(tmp_path, signum, code, delay):
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(
        "[axes]\ndepth = [1, 2, 3]\nsigma_w = {start = 0.5, stop = 2, num = 40}\nwidth = [8]\n"
        "seed = [0, 1, 2, 3, 4, 5, 6, 7]\n"
    )
    out = str(tmp_path / "out")
    process = _console("run", str(spec_path), "--out", out, "--chunk-size", "3", "--quiet")
    time.sleep(delay)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert err.strip().count("\n") == 0 and "interrupted" in err, err


def test_a_closed_pipe_ends_quietly(finished):
    code = "import sys; from sweep.console import main; sys.argv[0] = 'sweep'; main()"
    result = subprocess.run(
        f'{sys.executable} -c "{code}" info {finished} | head -c 1',
        shell=True,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


# --- killed at random and resumed -----------------------------------------------------------


def test_runs_killed_at_random_resume_to_the_uninterrupted_rows(tmp_path):
    sweep = {
        "name": "chaos",
        "axes": {"depth": [1, 4], "sigma_w": list(np.linspace(0.6, 1.6, 12)), "width": [4]},
    }
    reference = api.run(sweep, str(tmp_path / "reference"), chunk_size=4)
    out = str(tmp_path / "killed")
    code = (
        "import json, sys; from sweep import api\n"
        "api.execute(json.loads(sys.argv[1]), sys.argv[2], chunk_size=4)\n"
    )
    rng = random.Random(0)
    env = {**os.environ, "SWEEP_CACHE_DIR": str(tmp_path / "cache")}
    for _ in range(3):
        process = subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(sweep), out],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(1.0, 8.0))
        process.kill()  # SIGKILL: no handler runs
        process.wait()
    resumed = api.run(sweep, out, chunk_size=4)
    a = reference.set_index("config_id").sort_index()
    b = resumed.set_index("config_id").sort_index()
    assert list(a.index) == list(b.index)
    for column in ("log10_forward_gain", "log10_backward_gain", "log10_jac_sv_min", "status"):
        np.testing.assert_array_equal(a[column].to_numpy(), b[column].to_numpy(), err_msg=column)


def test_two_processes_of_one_jax_distributed_cluster_share_a_sweep(tmp_path):
    """`--shard auto` with 2 CPU processes on the loopback, one coordinator: their union is
    the single-process run, row for row."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(
        "[axes]\ndepth = [1, 3]\nsigma_w = [0.6, 0.9, 1.2, 1.5]\nsigma_b = [0.0, 0.1]\n"
        "width = [4]\nseed = [0, 1]\n"
    )
    out = tmp_path / "shared"
    code = "import sys; from sweep.console import main; sys.argv[0] = 'sweep'; main()"
    processes = []
    for process_id in range(2):
        env = {
            **os.environ,
            "SWEEP_CACHE_DIR": "",
            "JAX_PLATFORMS": "cpu",
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAX_COORDINATOR_BIND_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_PROCESSES": "2",
            "JAX_PROCESS_ID": str(process_id),
        }
        args = ["run", str(spec_path), "--out", str(out), "--shard", "auto", "--quiet"]
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", code, *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [r[1][-2000:] for r in results]
    assert os.path.exists(out / ".lock-0-of-2") and os.path.exists(out / ".lock-1-of-2")
    together = store.load(str(out)).set_index("config_id").sort_index()
    alone = api.run(spec.load(str(spec_path)), str(tmp_path / "alone"))
    alone = alone.set_index("config_id").sort_index()
    assert list(together.index) == list(alone.index)
    for column in ("log10_forward_gain", "log10_backward_gain", "status"):
        np.testing.assert_array_equal(together[column], alone[column], err_msg=column)


def test_a_huge_grid_is_refused_with_its_size_before_the_table_is_built():
    start = time.perf_counter()
    with pytest.raises(spec.SpecError, match="more than 20,000,000") as err:
        spec.from_dict(
            {
                "axes": {
                    "depth": {"start": 1, "stop": 100_000, "step": 1},
                    "sigma_w": {"start": 0.5, "stop": 2.0, "num": 100_000},
                    "width": [2],
                }
            }
        )
    assert "\n" not in str(err.value) and time.perf_counter() - start < 10


def test_a_truncated_compile_cache_entry_is_repaired_quietly(tmp_path):
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text("[axes]\ndepth = [1, 2]\nsigma_w = [1.0]\nwidth = [3]\n")
    code = (
        "import sys, jax\n"
        "from sweep import cli, compile_cache\n"
        "use = compile_cache.use\n"
        "def use_for_everything(path):\n"
        "    use(path)\n"
        "    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)\n"
        "compile_cache.use = use_for_everything\n"
        "sys.exit(cli.main(['run', sys.argv[1], '--out', sys.argv[2], '--quiet']))\n"
    )
    cache = tmp_path / "cache"
    env = {**os.environ, "SWEEP_CACHE_DIR": str(cache)}

    def run(out):
        return subprocess.run(
            [sys.executable, "-c", code, str(spec_path), str(tmp_path / out)],
            env=env,
            capture_output=True,
            text=True,
        )

    assert run("a").returncode == 0
    entries = glob.glob(str(cache / "*-cache"))
    assert entries
    for entry in entries:  # a disk that filled up mid-write
        with open(entry, "r+b") as f:
            f.truncate(100)
    second = run("b")
    assert second.returncode == 0 and "cache" not in second.stderr, second.stderr
    assert all(os.path.getsize(entry) > 100 for entry in glob.glob(str(cache / "*-cache")))


def test_an_empty_out_is_refused(tmp_path, capsys, monkeypatch):
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text("[axes]\ndepth = [1]\nsigma_w = [1.0]\nwidth = [2]\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", str(spec_path), "--out", ""]) == 2
    assert "--out" in capsys.readouterr().err and not os.path.exists(tmp_path / "results")
