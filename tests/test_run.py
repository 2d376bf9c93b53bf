"""``sawdist run`` on a reduced configuration, ``sawdist report`` on its dataset, and their error messages."""

import pytest

from sawdist.analyses.cli import load_config
from sawdist.cli import main

torch = pytest.importorskip("torch")

# Models that learn in two short epochs (test accuracy 0.58-0.92): at chance, the exclusion rule would leave the
# analyses nothing (one epoch of batches of 128 left 5 of 6 mlp models of capacities 2 and 8 at chance).
REDUCED = """
[extract]
families = ["mlp"]
capacities = [8, 32]
seeds = 3
inputs = 40
mode = "batched"
[recipe]
epochs = 2
batch_size = 32
[analyses]
bayes = false
ensemble_subsets = 8
transfer_epsilons = [0.0, 1.0, 4.0]
[models]
seeds = 3
inputs = 40
"""


@pytest.fixture(scope="module")
def reduced_run(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("run")
    config = root / "reduced.toml"
    config.write_text(REDUCED)
    out = root / "out"
    assert main(["run", "--out", str(out), "--config", str(config), "--no-progress"]) == 0
    return out


def test_run_writes_dataset_figures_tables_models_and_report(reduced_run):
    out = reduced_run
    assert (out / "saliency-digits.nc").is_file()
    assert (out / "models" / "pool.json").is_file()
    text = (out / "report.md").read_text()
    for title in ("Similarity rises with capacity (H1)", "Cosine laws concentrate", "Capacities share the mean",
                  "Convergence law", "Ensembles of small models", "Black-box transfer"):
        assert title in text
    assert "NOT TESTED" in text  # the convergence law: Bayesian fits switched off
    assert "## Model quality" in text and "**Excluded.** None: every model passed." in text
    assert (out / "tables" / "model_quality.csv").is_file() and (out / "tables" / "model_pool_quality.csv").is_file()
    assert "Where the time went" in text
    assert (out / "report.html").is_file()
    assert len(list((out / "figures").glob("*.png"))) >= 5
    assert (out / "tables" / "transfer.csv").is_file()
    assert (out / "tables" / "ensembles_accuracy.csv").is_file()
    stages = (out / "timings.csv").read_text()
    assert "extraction" in stages and "analysis 6/6: transfer" in stages


def test_report_on_the_dataset_of_a_run(reduced_run, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(reduced_run / "saliency-digits.nc"), "--out", str(out), "--no-bayes",
                 "--models", str(reduced_run / "models"), "--no-progress"]) == 0
    text = (out / "report.md").read_text()
    assert "Black-box transfer along the mean direction — " in text
    assert "no trained models" not in text


def test_report_needs_an_existing_dataset(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing.nc"), "--out", str(tmp_path / "o")]) == 1
    missing = tmp_path / "missing.nc"
    assert capsys.readouterr().err == f"sawdist report: error: dataset file '{missing}' does not exist.\n"
    assert not (tmp_path / "o").exists()


def test_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file '.*nope.toml' does not exist."):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[plots]\nx = 1\n")
    with pytest.raises(ValueError, match="bad.toml: unknown table \\[plots\\]; the tables are \\[extract\\], "):
        load_config(bad)
    bad.write_text("[models]\nseed = 3\n")
    with pytest.raises(ValueError, match="bad.toml: unknown key 'seed' in \\[models\\]; the keys are families"):
        load_config(bad)
    bad.write_text("[analyses]\nbayesian = false\n")
    with pytest.raises(ValueError, match="bad.toml: unknown key 'bayesian' in \\[analyses\\]; the keys are "):
        load_config(bad)


def test_model_pool_load_needs_pool_json(tmp_path):
    from sawdist.extraction.pool import TorchModelPool

    with pytest.raises(FileNotFoundError, match="'models' folder '.*' has no pool.json"):
        TorchModelPool.load(tmp_path)


@pytest.mark.parametrize("where", ["absolute", "dotdot", "link"])
def test_model_pool_load_reads_nothing_outside_its_folder(tmp_path, where):
    import json

    from sawdist.extraction.pool import TorchModelPool

    outside = tmp_path / "secret.pt"
    torch.save({"x": torch.zeros(1), "labels": torch.zeros(1)}, outside)
    folder = tmp_path / "models"
    folder.mkdir()
    stacks = []
    if where == "link":  # inputs.pt, a link to a file elsewhere
        (folder / "inputs.pt").symlink_to(outside)
        name = "inputs.pt"
    else:
        name = str(outside) if where == "absolute" else "../secret.pt"
        stacks = [{"family": "mlp", "capacity": 2, "file": name}]
    (folder / "pool.json").write_text(json.dumps({"meta": {"input_shape": [1, 8, 8], "n_classes": 10},
                                                  "stacks": stacks}))
    with pytest.raises(ValueError, match=r"^'.*models/pool\.json' must name files inside the 'models' folder "
                                         rf"'.*models', got '{'.*' if where == 'absolute' else name}'; refused\.$"):
        TorchModelPool.load(folder)


def test_commands_are_registered():
    from sawdist.cli import SUBCOMMANDS, build_parser

    assert SUBCOMMANDS["run"] == "sawdist.analyses.cli:add_run_parser"
    assert SUBCOMMANDS["report"] == "sawdist.analyses.cli:add_report_parser"
    args = build_parser().parse_args(["run", "--out", "x"])
    assert args.out == "x" and args.progress


def test_command_line_and_analyses_import_light():
    import subprocess
    import sys

    code = ("import sys, sawdist, sawdist.analyses.cli, sawdist.analyses.context, sawdist.analyses.report; "
            "from sawdist.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'pymc', 'arviz', 'matplotlib') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_report_runs_only_the_analyses_asked_for(reduced_run, tmp_path, capsys):
    out = tmp_path / "alone"
    assert main(["report", str(reduced_run / "saliency-digits.nc"), "--out", str(out), "--only", "similarity"]) == 0
    printed = capsys.readouterr().out
    assert "Similarity rises with capacity (H1)" in printed and "Ensembles" not in printed
    assert (out / "report.md").is_file() and (out / "tables" / "similarity.csv").is_file()
    assert not (out / "tables" / "ensembles.csv").exists()
