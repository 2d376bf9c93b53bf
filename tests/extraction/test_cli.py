import json
import os
import subprocess
import sys

import pytest

import sawdist.io as sio
from sawdist.cli import main
from sawdist.extraction.config import DATASET_DEFAULTS, auto_threads, load_toml, resolve

from .extraction_fixtures import _one_torch_thread  # noqa: F401  (fixture: the CLI sets torch's thread count)


def test_sawdist_extract_tiny_run(tmp_path, capsys):
    out = tmp_path / "cli.nc"
    code = main(["extract", "--families", "mlp", "--capacities", "4,8", "--seeds", "2", "--epochs", "1",
                 "--batch-size", "256", "--inputs", "20", "--out", str(out), "--device", "cpu",
                 "--mode", "batched", "--target", "log_softmax", "--no-progress", "--threads", "1",
                 "--complevel", "1", "--save-models", str(tmp_path / "models")])
    printed, err = capsys.readouterr()
    assert code == 0 and f"wrote {out} (4 models)" in printed and "sawdist report --models" in printed
    # announced by the sweep once it has checked the output and the data
    assert err == f"extracting 4 models (mlp; capacities 4, 8; 2 seeds; digits) into {out}\n"
    assert (tmp_path / "models" / "pool.json").is_file()
    with sio.open_saliency(out, values=True) as ds:
        assert ds.attrs["target"] == "log_softmax" and ds.sizes["seed"] == 2 and ds.sizes["input"] == 20
        assert json.loads(ds.attrs["recipe"])["batch_size"] == 256
        assert ds["direction"].encoding["complevel"] == 1


def test_config_file_and_flags_override(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        '[extract]\ndataset = "synthetic"\nfamilies = ["cnn_small"]\ncapacities = [2]\nseeds = 3\ninputs = 10\n'
        f'out = "{tmp_path / "from_file.nc"}"\nmode = "sequential"\nprogress = false\n'
        '[dataset]\nshape = [1, 8, 8]\nn_classes = 3\nn_train = 64\nn_test = 16\n'
        '[recipe]\nepochs = 1\noptimizer = "adam"\nlr = 0.01\n'
    )
    out = tmp_path / "flag.nc"
    assert main(["extract", "--config", str(config), "--seeds", "2", "--out", str(out), "--lr", "0.002",
                 "--data-option", "noise=0.5", "--threads", "1"]) == 0
    with sio.open_saliency(out) as ds:
        assert ds.sizes["seed"] == 2 and ds.attrs["dataset"] == "synthetic" and ds.sizes["input"] == 10
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
    assert cifar["capacities"] == [4, 8, 16, 32, 64]


def test_help_does_not_import_torch():
    code = ("import sys; from sawdist.cli import build_parser; build_parser().format_help(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(("argv", "message"), [
    (["--capacities", "4,x"], "argument --capacities: expected comma-separated positive integers, got '4,x'"),
    (["--capacities", "4,0"], "argument --capacities: expected comma-separated positive integers, got '4,0'"),
    (["--families", ","], "argument --families: expected a comma-separated list of names, got ','"),
    (["--data-option", "noise"], "argument --data-option: expected KEY=VALUE, got 'noise'"),
    (["--threads", "0"], "argument --threads: expected a positive integer or auto, got '0'"),
    (["--seeds", "-2"], "argument --seeds: expected a positive integer, got '-2'"),
    (["--seeds", "x"], "argument --seeds: expected a positive integer, got 'x'"),
    (["--inputs", "0"], "argument --inputs: expected a positive integer, got '0'"),
    (["--chunk-size", "0"], "argument --chunk-size: expected a positive integer, got '0'"),
    (["--complevel", "10"], "argument --complevel: expected an integer from 0 to 9, got '10'"),
    (["--device", "tpu"], "argument --device: expected auto, cpu, cuda or cuda:N, got 'tpu'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_flag_errors(argv, message, capsys):
    """argparse's own errors: one line "sawdist extract: error: ... (see sawdist extract --help)", no usage block,
    exit status 2."""
    with pytest.raises(SystemExit) as exit_:
        main(["extract", *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err == f"sawdist extract: error: {message} (see sawdist extract --help)\n"


def test_threads_error(tmp_path, capsys):
    config = tmp_path / "threads.toml"
    config.write_text('[extract]\nthreads = "many"\n')
    assert main(["extract", "--config", str(config)]) == 2
    assert capsys.readouterr().err == (f"sawdist extract: error: {config}: [extract] threads must be a positive "
                                       "integer or auto, got 'many'.\n")


def test_auto_threads_within_cores():
    assert 1 <= auto_threads() <= (os.cpu_count() or 1)


def test_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^config file '.*missing\.toml' does not exist\.$"):
        load_toml(tmp_path / "missing.toml")
    bad_table = tmp_path / "table.toml"
    bad_table.write_text("[train]\nepochs = 1\n")
    with pytest.raises(ValueError, match=r"table\.toml: unknown table \[train\]; the tables are \[extract\], "
                                         r"\[dataset\], \[recipe\]\.$"):
        load_toml(bad_table)
    bad_key = tmp_path / "key.toml"
    bad_key.write_text("[extract]\ncapacity = [4]\n")
    with pytest.raises(ValueError, match=r"key\.toml: unknown key 'capacity' in \[extract\]; the keys are dataset, "):
        load_toml(bad_key)
    bad_key.write_text("[recipe]\nepoch = 4\n")
    with pytest.raises(ValueError, match=r"key\.toml: unknown key 'epoch' in \[recipe\]; the keys are epochs, "):
        load_toml(bad_key)


# --- user errors of sawdist extract: one line "sawdist extract: error: ...", exit 2 (usage) or 1 (running) ---------


def _error(argv, capsys, entry=main):
    """(exit status, the one error line) of a failing command; stderr holds nothing else, and no traceback."""
    code = entry(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return code, err.splitlines()[0]


@pytest.fixture
def folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("")
    return tmp_path


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["--dataset", "imagenet"], 2,
     "--dataset must be one of digits, cifar10, cifar100, mnist, tinyimagenet, synthetic, got 'imagenet'."),
    (["--families", "mlp,big"], 2,
     "--families has unknown family 'big'; the families are mlp, cnn_small, cnn_large, resnet_small, resnet_large, "
     "vit."),
    (["--dataset", "cifar10"], 2,
     "dataset 'cifar10' needs --data-root DIR, the folder that holds its files (or receives them with --download)."),
    (["--dataset", "tinyimagenet"], 2,
     "dataset 'tinyimagenet' needs --data-root DIR, the folder that holds its files."),
    (["--dataset", "cifar10", "--data-root", "{d}/nowhere"], 1, "--data-root '{d}/nowhere' does not exist."),
    (["--dataset", "mnist", "--data-root", "{d}/file"], 1, "--data-root '{d}/file' is a file, not a folder."),
    (["--data-root", "{d}/empty"], 2,
     "--data-root is not an option of the digits dataset; its options are test_size, split_seed."),
    (["--dataset", "tinyimagenet", "--data-root", "{d}/empty", "--download"], 2,
     "--download works only for the datasets cifar10, cifar100, mnist, not tinyimagenet."),
    (["--dataset", "synthetic", "--data-option", "colour=1"], 2,
     "--data-option colour is not an option of the synthetic dataset; its options are shape, n_classes, n_train, "
     "n_test, noise, seed."),
    (["--out", "{d}/empty"], 1,
     "--out '{d}/empty' is a folder; pass a file name such as '{d}/empty/saliency-digits.nc'."),
    (["--save-models", "{d}/file"], 1, "--save-models '{d}/file' is a file; pass a folder."),
    (["--epochs", "0"], 2, "--epochs must be a positive integer, got 0."),
    (["--lr", "-1"], 2, "--lr must be a positive finite number, got -1.0."),
    (["--warmup", "1.5"], 2, "--warmup must lie in [0, 1), got 1.5."),
    (["--config", "{d}/nope.toml"], 1, "--config '{d}/nope.toml' does not exist."),
    (["--config", "{d}/empty"], 1, "--config '{d}/empty' is a folder, not a file."),
])
def test_extract_errors_name_the_flags(argv, code, message, folders, capsys):
    argv = [a.format(d=folders) for a in argv]
    assert _error(["extract", *argv], capsys) == (code, f"sawdist extract: error: {message.format(d=folders)}")


@pytest.mark.parametrize(("text", "code", "message"), [
    ("[extract]\nseeds = -2\n", 2,
     "{f}: [extract] seeds must be a positive integer (or a list of non-negative seeds), got -2."),
    ("[extract]\nseeds = \"x\"\n", 2,
     "{f}: [extract] seeds must be a positive integer (or a list of non-negative seeds), got 'x'."),
    ("[extract]\ncapacities = 4\n", 2,
     "{f}: [extract] capacities must be a non-empty list of positive integers, got 4."),
    ("[extract]\nfamilies = \"mlp\"\n", 2,
     "{f}: [extract] families must be a non-empty list of family names, got 'mlp'."),
    ("[extract]\ninputs = 0\n", 2, "{f}: [extract] inputs must be a positive integer, got 0."),
    ("[extract]\ncomplevel = 12\n", 2, "{f}: [extract] complevel must be an integer from 0 to 9, got 12."),
    ("[extract]\ntarget = \"logit\"\n", 2,
     "{f}: [extract] target must be one of label_logit, pred_logit, loss, log_softmax, got 'logit'."),
    ("[extract]\ndevice = \"tpu\"\n", 2, "{f}: [extract] device must be auto, cpu, cuda or cuda:N, got 'tpu'."),
    ("[extract]\nshard = \"3/3\"\n", 2, "{f}: [extract] shard must be I/N with 0 <= I < N, got '3/3'."),
    ("[extract]\nscheduler = \"slurm\"\n", 2,
     "{f}: [extract] scheduler must be local:N or a Dask scheduler address, got 'slurm'."),
    ("[extract]\nmode = \"fast\"\n", 2, "{f}: [extract] mode must be one of auto, batched, sequential, got 'fast'."),
    ("[extract]\nprogress = 1\n", 2, "{f}: [extract] progress must be true or false, got 1."),
    ("[extract]\ndataset = \"cifar10\"\n", 2,
     "dataset 'cifar10' needs --data-root DIR, the folder that holds its files (or receives them with --download); "
     "or set root in the [dataset] table of {f}."),
    ("[extract]\ndataset = \"synthetic\"\n[dataset]\ncolour = 1\n", 2,
     "{f}: [dataset] colour is not an option of the synthetic dataset; its options are shape, n_classes, n_train, "
     "n_test, noise, seed."),
    ("[recipe]\nepochs = 0\n", 2, "{f}: [recipe] epochs must be a positive integer, got 0."),
    ("[recipe]\noptimizer = \"lion\"\n", 2, "{f}: [recipe] optimizer must be one of sgd, adam, adamw, got 'lion'."),
    ("[recipe]\nepoch = 3\n", 2, "{f}: unknown key 'epoch' in [recipe]; the keys are epochs, batch_size, optimizer, "
                                 "lr, momentum, nesterov, weight_decay, schedule, warmup, label_smoothing, amp."),
    ("[extract]\ncapacity = [4]\n", 2, "{f}: unknown key 'capacity' in [extract]; the keys are dataset, families, "
                                       "capacities, seeds, out, target, inputs, device, mode, chunk_size, progress, "
                                       "threads, complevel, save_models, shard, scheduler."),
    ("[train]\nepochs = 1\n", 2, "{f}: unknown table [train]; the tables are [extract], [dataset], [recipe]."),
    ("[extract]\nseeds = \n", 2, "{f}: invalid TOML: Invalid value (at line 2, column 9)."),
])
def test_extract_config_errors_name_the_file_and_key(text, code, message, tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(text)
    assert _error(["extract", "--config", str(config)], capsys) == (
        code, f"sawdist extract: error: {message.format(f=config)}")


def test_flags_override_the_file_in_messages(tmp_path, capsys):
    """A bad value given by a flag is named by the flag even when the file sets it too."""
    config = tmp_path / "run.toml"
    config.write_text("[recipe]\nepochs = 3\n")
    assert _error(["extract", "--config", str(config), "--epochs", "0"], capsys) == (
        2, "sawdist extract: error: --epochs must be a positive integer, got 0.")


def test_missing_dataset_files(folders, capsys):
    """The loader's message (a failure while running, exit 1) in the command line's terms: --download, not
    download=True."""
    code, line = _error(["extract", "--dataset", "cifar10", "--data-root", str(folders / "empty"), "--threads", "1",
                         "--out", str(folders / "c.nc")], capsys)  # one line: the data are checked before the start
    assert code == 1 and "download=True" not in line
    assert line.startswith("sawdist extract: error: CIFAR-10 files not found: ") and str(folders / "empty") in line


def test_missing_pytorch(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ModuleNotFoundError
    assert _error(["extract"], capsys) == (
        1, "sawdist extract: error: PyTorch is not installed; install it with: pip install 'sawdist[extraction]'")


def test_an_existing_output_of_another_run(tmp_path, capsys):
    out = tmp_path / "tiny.nc"
    tiny = ["extract", "--families", "mlp", "--capacities", "2", "--inputs", "20", "--epochs", "1", "--mode", "batched",
            "--out", str(out), "--threads", "1", "--no-progress"]
    assert main([*tiny, "--seeds", "2"]) == 0
    capsys.readouterr()
    assert main([*tiny, "--seeds", "3", "-q"]) == 1
    assert capsys.readouterr().err == (f"sawdist extract: error: --out '{out}' already holds a different run; choose "
                                       "another file or delete it.\n")


def _fake_extract(seen):
    """A stand-in for sawdist.extraction.sweep.extract that records its arguments and logs like the sweep."""
    import logging

    from sawdist.extraction.sweep import ExtractResult

    def extract(out, **kwargs):
        seen.update(kwargs, out=out)
        logging.getLogger("sawdist.extract").warning("a sweep warning")
        return ExtractResult(out, True, 4, 4)

    return extract


@pytest.mark.parametrize(("flags", "lines", "progress"), [
    ([], ["a sweep warning"], True),
    (["-q"], ["a sweep warning"], False),
    (["--quiet", "--no-progress"], ["a sweep warning"], False),
    (["-v"], ["settings: ", "a sweep warning"], True),
])
def test_quiet_and_verbose(flags, lines, progress, tmp_path, capsys, monkeypatch):
    seen = {}
    monkeypatch.setattr("sawdist.extraction.sweep.extract", _fake_extract(seen))
    out = str(tmp_path / "x.nc")
    assert main(["extract", "--out", out, "--threads", "1", *flags]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"wrote {out} (4 models)\n"
    err = captured.err.splitlines()
    assert len(err) == len(lines) and all(e.startswith(x.format(out=out)) for e, x in zip(err, lines, strict=True))
    assert seen["progress"] is progress


def test_ctrl_c_exits_130_with_the_resume_message(tmp_path, capsys, monkeypatch):
    """A second Ctrl-C stops at once: the sweep says how to resume, the command line says it was interrupted."""
    import logging

    def extract(out, resume_hint, **kwargs):
        logging.getLogger("sawdist.extract").warning(f"interrupted: 1 of 4 models are saved; to resume, {resume_hint}.")
        raise KeyboardInterrupt

    monkeypatch.setattr("sawdist.extraction.sweep.extract", extract)
    assert main(["extract", "-q", "--out", str(tmp_path / "x.nc"), "--threads", "1"]) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("interrupted: 1 of 4 models are saved; to resume, rerun: ")
    assert err[1:] == ["sawdist extract: interrupted (Ctrl-C)"]


# --- refusals of files sawdist did not write, at the command line (tested through the Python API in
# --- test_shards_and_clusters.py): one line, exit status 1, and the user's file left as it is ----------------------


def _shards(folder):
    """Two shard files of one small sweep (the shard attributes sawdist extract --shard writes) and a dataset that
    is not a shard."""
    import numpy as np

    from ..test_io import make_dataset

    ds = make_dataset()
    shards = []
    for i in range(2):
        in_shard = (np.arange(ds.sizes["seed"]) % 2 == i) & np.ones((ds.sizes["family"], ds.sizes["capacity"], 1), bool)
        shard = ds.assign(in_shard=(sio.DIMS[:3], in_shard))
        shard.attrs = dict(ds.attrs, shard=f"{i}/2", sweep="0123abcd")
        shards.append(str(sio.to_netcdf_atomic(shard, folder / f"shard{i}.nc")))
    whole = str(sio.to_netcdf_atomic(ds, folder / "whole.nc"))
    return shards, whole


_TINY = ["--families", "mlp", "--capacities", "2", "--seeds", "1", "--inputs", "4", "--epochs", "1", "--threads", "1",
         "--no-progress"]


@pytest.mark.parametrize(("case", "line"), [
    ("out is a foreign file", "sawdist extract: error: --out '{d}/table.csv' exists and is not a saliency dataset "
                              "written by sawdist; sawdist leaves it as it is: choose another output file."),
    ("parts folder not ours", "sawdist extract: error: --out has a folder '{d}/run.nc.parts' that sawdist did not "
                              "make (no manifest.json of a part store); sawdist leaves it as it is"),
    ("lock file not ours", "sawdist extract: error: --out '{d}/run.nc' has a file '{d}/run.nc.lock' that is not a "
                           "sawdist lock"),
    ("shard does not exist", "sawdist merge: error: SHARD '{d}/nowhere.nc' does not exist."),
    ("shard is a folder", "sawdist merge: error: SHARD '{d}/folder' is a folder, not a file."),
    ("not a shard", "sawdist merge: error: '{d}/whole.nc' is not a shard (it has no attribute 'shard')"),
    ("merge out is a foreign file", "sawdist merge: error: --out '{d}/table.csv' exists and is not the merge of these "
                                    "shards; sawdist leaves it as it is"),
])
def test_refusals_at_the_command_line(case, line, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SAWDIST_DEBUG", raising=False)
    d = tmp_path
    (d / "table.csv").write_bytes(b"a,b\n1,2\n")
    (d / "folder").mkdir()
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    if case == "parts folder not ours":
        (d / "run.nc.parts").mkdir()
        (d / "run.nc.parts" / "keep.txt").write_text("mine")
    if case == "lock file not ours":
        (d / "run.nc.lock").write_text("not a lock")
    if case.startswith("out is") or case in ("parts folder not ours", "lock file not ours"):
        out = d / ("table.csv" if case.startswith("out is") else "run.nc")
        argv = ["extract", *_TINY, "--out", str(out)]
    else:
        shards, whole = _shards(d)
        argv = ["merge", *{"shard does not exist": [shards[0], str(d / "nowhere.nc")],
                           "shard is a folder": [shards[0], str(d / "folder")],
                           "not a shard": [shards[0], whole],
                           "merge out is a foreign file": shards}.get(case), "--out",
                str(d / ("table.csv" if case == "merge out is a foreign file" else "merged.nc"))]
    code, got = _error(argv, capsys)
    assert code == 1 and got.startswith(line.format(d=d)), got
    for name, data in before.items():  # the user's files are left as they are
        assert (d / name).read_bytes() == data
    assert not (d / "merged.nc").exists() and not (d / "run.nc").exists()
    assert (case != "parts folder not ours" or [p.name for p in (d / "run.nc.parts").iterdir()] == ["keep.txt"])
    assert case != "lock file not ours" or (d / "run.nc.lock").read_text() == "not a lock"
