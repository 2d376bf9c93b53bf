import json
import os
import subprocess
import sys

import pytest

import sawdist.io as sio
from extraction.cli import main as extraction_main
from extraction.config import DATASET_DEFAULTS, auto_threads, load_toml, resolve
from sawdist.cli import main

from .extraction_fixtures import _one_torch_thread  # noqa: F401  (fixture: the CLI sets torch's thread count)


def test_sawdist_extract_tiny_run(tmp_path, capsys):
    out = tmp_path / "cli.nc"
    code = main(["extract", "--families", "mlp", "--widths", "4,8", "--seeds", "2", "--epochs", "1",
                 "--batch-size", "256", "--samples", "20", "--out", str(out), "--device", "cpu",
                 "--mode", "batched", "--target", "log_softmax", "--no-progress", "--threads", "1",
                 "--complevel", "1", "--save-models", str(tmp_path / "models")])
    printed = capsys.readouterr().out
    assert code == 0 and f"wrote {out} (4 models)" in printed and "sawdist report --models" in printed
    assert (tmp_path / "models" / "pool.json").is_file()
    with sio.open_saliency(out, values=True) as ds:
        assert ds.attrs["target"] == "log_softmax" and ds.sizes["seed"] == 2 and ds.sizes["sample"] == 20
        assert json.loads(ds.attrs["recipe"])["batch_size"] == 256
        assert ds["direction"].encoding["complevel"] == 1


def test_config_file_and_flags_override(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        '[extract]\ndataset = "synthetic"\nfamilies = ["cnn_small"]\nwidths = [2]\nseeds = 3\nsamples = 10\n'
        f'out = "{tmp_path / "from_file.nc"}"\nmode = "sequential"\nprogress = false\n'
        '[dataset]\nshape = [1, 8, 8]\nn_classes = 3\nn_train = 64\nn_test = 16\n'
        '[recipe]\nepochs = 1\noptimizer = "adam"\nlr = 0.01\n'
    )
    out = tmp_path / "flag.nc"
    assert extraction_main(["--config", str(config), "--seeds", "2", "--out", str(out), "--lr", "0.002",
                            "--data-option", "noise=0.5", "--threads", "1"]) == 0
    with sio.open_saliency(out) as ds:
        assert ds.sizes["seed"] == 2 and ds.attrs["dataset"] == "synthetic" and ds.sizes["sample"] == 10
        recipe = json.loads(ds.attrs["recipe"])
        assert recipe["optimizer"] == "adam" and recipe["lr"] == 0.002 and recipe["epochs"] == 1
        assert json.loads(ds.attrs["dataset_options"])["noise"] == 0.5
    assert not (tmp_path / "from_file.nc").exists()


def test_defaults_resolve_per_dataset():
    digits = resolve({}, {})
    assert digits["families"] == DATASET_DEFAULTS["digits"]["families"] and digits["out"] == "saliency-digits.nc"
    assert digits["recipe"].epochs == DATASET_DEFAULTS["digits"]["recipe"]["epochs"]
    cifar = resolve({}, {"dataset": "cifar10"}, {"epochs": 3}, {"root": "/data"})
    assert cifar["recipe"].epochs == 3 and cifar["dataset_options"] == {"root": "/data"}
    assert cifar["widths"] == [4, 8, 16, 32, 64]


def test_help_does_not_import_torch():
    code = ("import sys; from sawdist.cli import build_parser; build_parser().format_help(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(("argv", "message"), [
    (["--widths", "4,x"], "'--widths' must be comma-separated integers, got '4,x'."),
    (["--families", ","], "'--families' must be a comma-separated list, got ','."),
    (["--data-option", "noise"], "'--data-option' must look like KEY=VALUE, got 'noise'."),
    (["--threads", "0"], "'--threads' must be a positive integer or auto, got '0'."),
])
def test_flag_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(["extract", *argv])
    assert message in capsys.readouterr().err


def test_threads_error(tmp_path):
    config = tmp_path / "threads.toml"
    config.write_text('[extract]\nthreads = "many"\n')
    with pytest.raises(SystemExit, match=r"^'threads' must be a positive integer or auto, got 'many'\.$"):
        main(["extract", "--config", str(config)])


def test_auto_threads_within_cores():
    assert 1 <= auto_threads() <= (os.cpu_count() or 1)


def test_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^'config' file '.*missing\.toml' does not exist\.$"):
        load_toml(tmp_path / "missing.toml")
    bad_table = tmp_path / "table.toml"
    bad_table.write_text("[train]\nepochs = 1\n")
    with pytest.raises(ValueError, match=r"^'config' has unknown table 'train'; the tables are extract, dataset, "
                                         r"recipe\.$"):
        load_toml(bad_table)
    bad_key = tmp_path / "key.toml"
    bad_key.write_text("[extract]\nwidth = [4]\n")
    with pytest.raises(ValueError, match=r"^'config' \[extract\] has unknown key 'width'; the keys are "):
        load_toml(bad_key)
