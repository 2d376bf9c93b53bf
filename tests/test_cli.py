"""The ``sawdist`` command line: one error line per user error, exit statuses, --debug, -v/-q (sawdist.cli).

The errors of ``sawdist extract`` are tested in tests/extraction/test_cli.py; these are the command line's own and
those of ``sawdist run`` and ``sawdist report``. No test here trains a model.
"""

import errno
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from sawdist.cli import CommandError, UsageError, describe_error, main

from .test_io import _large, small_disk  # noqa: F401  (a fixture: a test argument of the same name)


def run_main(argv, capsys, entry=main):
    """(exit status, stdout, stderr) of ``entry(argv)``; argparse's errors exit through SystemExit."""
    try:
        code = entry(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def only_line(err: str) -> str:
    """The one line an error prints on stderr (and nothing else)."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


# --- the command line itself -----------------------------------------------------------------------------------------


def test_no_command_prints_the_usage_and_exits_2(capsys):
    code, out, err = run_main([], capsys)
    assert code == 2 and out == ""
    assert err.startswith("usage: sawdist ")
    assert err.splitlines()[-1] == ("sawdist: error: no command given; choose one of extract, merge, run, report "
                                    "(see sawdist --help)")


def test_unknown_command(capsys):
    code, _, err = run_main(["frobnicate"], capsys)
    assert code == 2 and only_line(err) == ("sawdist: error: argument COMMAND: invalid choice: 'frobnicate' (choose "
                                            "from 'extract', 'merge', 'run', 'report') (see sawdist --help)")


def test_unrecognized_arguments_are_named_by_the_subcommand(capsys):
    code, _, err = run_main(["report", "x.nc", "--bogus", "1"], capsys)
    assert code == 2 and only_line(err) == ("sawdist report: error: unrecognized arguments: --bogus 1 (see sawdist "
                                            "report --help)")


@pytest.mark.parametrize(("argv", "line"), [
    (["report"], "sawdist report: error: the following arguments are required: DATASET.nc (see sawdist report --help)"),
    (["run", "--out"], "sawdist run: error: argument --out: expected one argument (see sawdist run --help)"),
    (["merge", "a.nc"], "sawdist merge: error: the following arguments are required: --out (see sawdist merge --help)"),
    (["--bogus"], "sawdist: error: unrecognized arguments: --bogus (see sawdist --help)"),
])
def test_argparse_errors_are_one_line_pointing_to_help(argv, line, capsys):
    """argparse's own errors (every subcommand's parser is sawdist.cli.ArgumentParser): one line, no usage block."""
    code, out, err = run_main(argv, capsys)
    assert code == 2 and out == "" and only_line(err) == line


def test_console_script_prints_one_line_without_traceback(tmp_path):
    """The installed ``sawdist`` (a subprocess): the user sees one line and the exit status."""
    env = {k: v for k, v in os.environ.items() if k != "SAWDIST_DEBUG"}
    done = subprocess.run([sys.executable, "-m", "sawdist", "report", "missing.nc"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "sawdist report: error: dataset file 'missing.nc' does not exist.\n"


@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_debug_shows_the_traceback(where, tmp_path, capsys, monkeypatch):
    missing = str(tmp_path / "missing.nc")
    argv = {"before": ["--debug", "report", missing], "after": ["report", missing, "--debug"],
            "env": ["report", missing]}[where]
    if where == "env":
        monkeypatch.setenv("SAWDIST_DEBUG", "1")
    else:
        monkeypatch.delenv("SAWDIST_DEBUG", raising=False)
    code, _, err = run_main(argv, capsys)
    assert code == 1 and err.startswith("Traceback (most recent call last):")
    assert "sawdist.cli.CommandError: dataset file" in err
    assert err.splitlines()[-1] == f"sawdist report: error: dataset file '{missing}' does not exist."


def _patch_report(monkeypatch, error):
    def report(args):
        raise error

    monkeypatch.setattr("sawdist.analyses.cli.report", report)


@pytest.mark.parametrize(("error", "code", "line"), [
    (TypeError("boom"), 1, "sawdist report: error: internal error (TypeError: boom); rerun with --debug to see the "
                           "traceback"),
    (KeyError("x"), 1, "sawdist report: error: internal error (KeyError: 'x'); rerun with --debug to see the "
                       "traceback"),
    (KeyboardInterrupt(), 130, "sawdist report: interrupted (Ctrl-C)"),
    (ModuleNotFoundError("No module named 'pymc'", name="pymc"), 1,
     "sawdist report: error: the Python package 'pymc' is not installed; install the optional dependencies with: "
     "pip install 'sawdist[all]'"),
    (ModuleNotFoundError("No module named 'sawdist.nope'", name="sawdist.nope"), 1,
     "sawdist report: error: internal error (ModuleNotFoundError: No module named 'sawdist.nope'); rerun with "
     "--debug to see the traceback"),
    (IsADirectoryError(21, "Is a directory", "/tmp/x"), 1, "sawdist report: error: /tmp/x: Is a directory"),
    (PermissionError(13, "Permission denied", "/root/x.nc"), 1, "sawdist report: error: /root/x.nc: Permission denied"),
    (ValueError("a bad value\nover two lines"), 1, "sawdist report: error: a bad value over two lines"),
    (CommandError("it failed"), 1, "sawdist report: error: it failed"),
    (UsageError("bad usage"), 2, "sawdist report: error: bad usage"),
])
def test_exceptions_become_one_line(error, code, line, capsys, monkeypatch):
    monkeypatch.delenv("SAWDIST_DEBUG", raising=False)
    _patch_report(monkeypatch, error)
    status, _, err = run_main(["report", "x.nc"], capsys)
    assert status == code and only_line(err) == line


@pytest.mark.parametrize(("error", "line"), [
    (OSError(errno.ENOSPC, "No space left on device", "x.nc"),
     "sawdist report: error: no space left on the device writing 'x.nc'; free some space or write elsewhere, and "
     "rerun"),
    (OSError(errno.ENOSPC, "No space left on device"),
     "sawdist report: error: no space left on the device; free some space or write elsewhere, and rerun"),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "/data/out/saliency.nc"),
     "sawdist report: error: no space left on the device writing '/data/out/saliency.nc' (disk quota exceeded); "
     "free some space or write elsewhere, and rerun"),
])
def test_a_full_disk_is_one_line(error, line, capsys, monkeypatch):
    monkeypatch.delenv("SAWDIST_DEBUG", raising=False)
    _patch_report(monkeypatch, error)
    status, _, err = run_main(["report", "x.nc"], capsys)
    assert status == 1 and only_line(err) == line


def test_a_full_disk_while_merging_is_one_line(tmp_path, small_disk, capsys, monkeypatch):  # noqa: F811
    """A real full disk while netCDF-C writes (sawdist merge): the one line of a full disk, and no file left."""
    import sawdist.io as sio

    monkeypatch.delenv("SAWDIST_DEBUG", raising=False)
    ds = _large()
    shards = []
    for i in range(2):
        shard = ds.assign(in_shard=(sio.DIMS[:3], (np.arange(2) % 2 == i).reshape(1, 1, 2)))
        shard.attrs = dict(ds.attrs, shard=f"{i}/2", sweep="0123abcd")
        shards.append(str(sio.to_netcdf_atomic(shard, tmp_path / f"shard{i}.nc")))
    out = small_disk / "merged.nc"
    status, _, err = run_main(["merge", *shards, "--out", str(out)], capsys)
    assert status == 1 and only_line(err) == (f"sawdist merge: error: no space left on the device writing '{out}'; "
                                              "free some space or write elsewhere, and rerun")
    assert not list(small_disk.iterdir())  # the lock is released and removed with the temporary file


def test_describe_error_of_an_import_error_with_a_message():
    """An ImportError raised with a message (e.g. download needs torchvision) is shown as it is."""
    assert describe_error(ImportError("--download needs torchvision")) == (1, "--download needs torchvision")


def test_quiet_and_verbose_set_the_level_of_the_sawdist_logger(capsys, monkeypatch):
    def report(args):
        logging.getLogger("sawdist.analyses").debug("a debug message")
        logging.getLogger("sawdist.analyses").info("an info message")
        logging.getLogger("sawdist.extract").warning("a warning")
        print("a result")
        return 0

    monkeypatch.setattr("sawdist.analyses.cli.report", report)
    assert run_main(["report", "x.nc"], capsys) == (0, "a result\n", "an info message\na warning\n")
    assert run_main(["-q", "report", "x.nc"], capsys) == (0, "a result\n", "a warning\n")
    assert run_main(["report", "x.nc", "--quiet"], capsys) == (0, "a result\n", "a warning\n")
    assert run_main(["-v", "report", "x.nc"], capsys) == (0, "a result\n",
                                                          "a debug message\nan info message\na warning\n")
    assert run_main(["report", "x.nc", "--verbose"], capsys)[2].startswith("a debug message\n")
    # the command line leaves the logger as it found it
    assert logging.getLogger("sawdist").handlers == [] and logging.getLogger("sawdist").propagate


def test_progress_messages_go_through_logging(caplog):
    from sawdist.analyses._common import Progress

    caplog.set_level(logging.INFO, logger="sawdist")
    progress = Progress()
    with progress.stage("a stage"):
        pass
    assert [r.name for r in caplog.records] == ["sawdist.analyses", "sawdist.analyses"]
    assert caplog.records[0].getMessage().endswith("a stage ...")
    assert "a stage: done in" in caplog.records[1].getMessage()


# --- sawdist report ---------------------------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    """A folder, a CSV file, a netCDF file that is not a saliency dataset."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "some.csv").write_text("a,b\n1,2\n")
    xr.Dataset({"x": ("a", np.arange(3))}).to_netcdf(tmp_path / "other.nc")
    return tmp_path


@pytest.mark.parametrize(("argv", "line"), [
    (["{d}/missing.nc"], "dataset file '{d}/missing.nc' does not exist."),
    (["{d}/folder"], "dataset file '{d}/folder' is a folder, not a file."),
    (["{d}/some.csv"], "dataset file '{d}/some.csv' is not a saliency dataset: NetCDF: Unknown file format"),
    (["{d}/other.nc"], "dataset file '{d}/other.nc' is not a saliency dataset: it has no variable 'direction'; a "
                       "saliency dataset needs direction, grad_norm, valid, correct, test_accuracy, n_params, label."),
    (["{d}/other.nc", "--out", "{d}/some.csv"], "--out '{d}/some.csv' is a file; pass a folder."),
    (["{d}/other.nc", "--models", "{d}/nowhere"], "--models '{d}/nowhere' does not exist."),
    (["{d}/other.nc", "--models", "{d}/some.csv"], "--models '{d}/some.csv' is not a folder."),
    (["{d}/other.nc", "--models", "{d}/folder"],
     "--models '{d}/folder' has no pool.json; pass the folder of a model pool: DIR/models of sawdist run, or the "
     "--save-models folder of sawdist extract."),
    (["{d}/other.nc", "--config", "{d}/nope.toml"], "--config '{d}/nope.toml' does not exist."),
    (["{d}/other.nc", "--config", "{d}/folder"], "--config '{d}/folder' is a folder, not a file."),
])
def test_report_errors(argv, line, files, capsys):
    argv = [a.format(d=files) for a in argv]
    code, out, err = run_main(["report", "--out", str(files / "report"), *argv], capsys)
    assert code == 1 and out == "" and only_line(err) == f"sawdist report: error: {line.format(d=files)}"
    assert not (files / "report").exists()  # nothing is written before the inputs are checked


@pytest.mark.parametrize("only", ["similarity,nope", ","])
def test_report_only_names_known_analyses(only, files, capsys):
    code, out, err = run_main(["report", str(files / "other.nc"), "--only", only], capsys)
    assert code == 2 and out == "" and only_line(err) == (
        "sawdist report: error: --only must name analyses among similarity, cosine_laws, shared_mean, convergence, "
        f"ensembles, transfer, got {only!r}.")


# --- sawdist run: its --config file and --out -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "code", "message"), [
    ("[plots]\nx = 1\n", 2, "{f}: unknown table [plots]; the tables are [extract], [dataset], [recipe], [analyses], "
                            "[models]."),
    ("extract = 3\n", 2, "{f}: extract must be a table, [extract], got 3."),
    ("[extract\n", 2, "{f}: invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 9)."),
    ("[extract]\ncapacity = [4]\n", 2, "{f}: unknown key 'capacity' in [extract]; the keys are dataset, families, "
                                       "capacities, seeds, out, target, inputs, device, mode, chunk_size, progress, "
                                       "threads, complevel, save_models, shard, scheduler."),
    ("[recipe]\nepochs = 0\n", 2, "{f}: [recipe] epochs must be a positive integer, got 0."),
    ("[extract]\nseeds = -1\n", 2, "{f}: [extract] seeds must be a positive integer (or a list of non-negative seeds), "
                                   "got -1."),
    ("[extract]\nfamilies = [\"mlp\", \"big\"]\n", 2, "{f}: [extract] families has unknown family 'big'; the "
                                                       "families are mlp, cnn_small, cnn_large, resnet_small, "
                                                       "resnet_large, vit."),
    ("[extract]\ndataset = \"cifar10\"\n", 2, "dataset 'cifar10' needs --data-root DIR, the folder that holds its "
                                              "files (or receives them with --download); or set root in the "
                                              "[dataset] table of {f}."),
    ("[extract]\ndataset = \"cifar10\"\n[dataset]\nroot = \"/nowhere/cifar\"\n", 1,
     "{f}: [dataset] root '/nowhere/cifar' does not exist."),
    ("[analyses]\nbayesian = false\n", 2, "{f}: unknown key 'bayesian' in [analyses]; the keys are "
                                          "alignment_threshold, architecture, bayes, bayes_inputs, draws, tune, "
                                          "chains, laws, ensemble_sizes, ensemble_subsets, transfer_epsilons, seed."),
    ("[models]\nseeds = 0\n", 2, "{f}: [models] seeds must be a positive integer, got 0."),
    ("[models]\nfamilies = [\"big\"]\n", 2, "{f}: [models] families has unknown family 'big'; the families are mlp, "
                                            "cnn_small, cnn_large, resnet_small, resnet_large, vit."),
])
def test_run_config_errors(text, code, message, tmp_path, capsys):
    pytest.importorskip("torch")
    config = tmp_path / "run.toml"
    config.write_text(text)
    status, out, err = run_main(["run", "--config", str(config), "--out", str(tmp_path / "out")], capsys)
    assert status == code and out == ""
    assert only_line(err) == f"sawdist run: error: {message.format(f=config)}"
    assert not (tmp_path / "out").exists()


def test_run_out_must_be_a_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code, _, err = run_main(["run", "--out", str(tmp_path / "file")], capsys)
    assert code == 1 and only_line(err) == f"sawdist run: error: --out '{tmp_path / 'file'}' is a file; pass a folder."
