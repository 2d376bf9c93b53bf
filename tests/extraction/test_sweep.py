# ruff: noqa: F811  (pytest fixtures imported from extraction_fixtures are test arguments of the same name)
import json
import signal

import numpy as np
import pytest
import xarray as xr

import sawdist.io as sio
from sawdist.extraction.sweep import extract
from sawdist.extraction.train import Recipe

from .extraction_fixtures import _one_torch_thread, quick_recipe, reference_sweep, tiny  # noqa: F401  (fixtures)


def assert_same_file(a, b):
    """Same data, coordinates and attributes (but the creation time) — bit for bit."""
    with xr.open_dataset(a) as x, xr.open_dataset(b) as y:
        x.attrs.pop("created"), y.attrs.pop("created")
        xr.testing.assert_identical(x.load(), y.load())


def test_tiny_sweep_writes_a_schema_valid_file(reference_sweep):
    ds = sio.open_saliency(reference_sweep, values=True)
    assert dict(ds.sizes) == {"family": 2, "capacity": 2, "seed": 3, "input": 40, "feature": 64}
    assert ds["family"].values.tolist() == ["mlp", "cnn_small"] and ds["capacity"].values.tolist() == [4, 8]
    assert ds["direction"].dtype == np.float32 and ds["valid"].dtype == bool
    assert ds.attrs["dataset"] == "digits" and ds.attrs["target"] == "label_logit"
    assert json.loads(ds.attrs["recipe"])["epochs"] == 1 and "torch" in json.loads(ds.attrs["versions"])
    assert list(ds.attrs["input_shape"]) == [1, 8, 8] and ds.attrs["device"].startswith("cpu")
    assert ds["direction"].encoding["zlib"] and ds["direction"].attrs["units"] == "1"
    assert (ds["n_params"].sel(family="cnn_small").values == [666, 1898]).all()
    norms = np.linalg.norm(ds["direction"].values.astype(np.float64), axis=-1)
    np.testing.assert_allclose(norms[ds["valid"].values], 1, atol=1e-6)
    assert ds["test_accuracy"].max() > 0.3 and "train_accuracy" in ds
    assert not (reference_sweep.parent / "reference.nc.parts").exists()
    ds.close()


def test_ctrl_c_stops_after_the_current_model_and_resumes(tmp_path, reference_sweep, quick_recipe, caplog, tiny):
    out = tmp_path / "run.nc"

    def press_ctrl_c(key, n_done, n_total):
        if n_done == 5:
            signal.raise_signal(signal.SIGINT)  # a real Ctrl-C, handled by the sweep

    handler = signal.getsignal(signal.SIGINT)  # Python's own, or SIG_IGN where the run was started in the background
    first = extract(out, recipe=quick_recipe, on_model=press_ctrl_c, progress=True,
                    **{k: v for k, v in tiny.items() if k != "progress"})
    assert not first.complete and not out.exists()
    # Parts are recorded once the next chunk has trained (they are written meanwhile): the 5th part, of the chunk
    # [0, 1] of mlp k=8, is recorded after the chunk [2] of mlp k=8 trained. That model is finished and saved; no
    # other chunk starts.
    assert first.n_done == 6
    assert len(list((tmp_path / "run.nc.parts").glob("*.npz"))) == 6
    err = caplog.text  # the sweep's messages go to the sawdist.extract logger (sawdist extract prints them)
    assert "stopping after the current model" in err and "to resume, call extract() again" in err
    second = extract(out, recipe=quick_recipe, **tiny)
    assert second.complete and second.n_done == 12 and second.trained == 6
    assert_same_file(out, reference_sweep)
    assert signal.getsignal(signal.SIGINT) is handler  # restored


def test_crash_inside_a_chunk_resumes_to_the_same_file(tmp_path, reference_sweep, quick_recipe, tiny):
    out = tmp_path / "run.nc"

    def crash(key, n_done, n_total):
        if n_done == 8:  # after the first of the two models of chunk (cnn_small, 4, seeds 0 and 1)
            raise RuntimeError("machine lost")

    with pytest.raises(RuntimeError, match="machine lost"):
        extract(out, recipe=quick_recipe, on_model=crash, **tiny)
    assert len(list((tmp_path / "run.nc.parts").glob("*.npz"))) == 8
    assert extract(out, recipe=quick_recipe, **tiny).complete
    assert_same_file(out, reference_sweep)


def test_corrupt_part_is_detected_and_redone(tmp_path, reference_sweep, quick_recipe, tiny):
    out = tmp_path / "run.nc"
    stop = {"n": 4}

    def interrupt(key, n_done, n_total):
        if n_done == stop["n"]:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(out, recipe=quick_recipe, on_model=interrupt, **tiny)
    parts = tmp_path / "run.nc.parts"
    victim = parts / "mlp-k4-s1.npz"
    victim.write_bytes(victim.read_bytes()[:200])  # truncated by a crash of the disk, say
    (parts / "mlp-k4-s2.npz.tmp").write_bytes(b"half a file")  # left over by a killed writer
    result = extract(out, recipe=quick_recipe, **tiny)
    assert result.complete and result.redone == ["mlp-k4-s1.npz"]
    assert_same_file(out, reference_sweep)


def test_rerun_of_a_finished_run_does_nothing(reference_sweep, quick_recipe, tiny):
    before = reference_sweep.stat().st_mtime_ns
    result = extract(reference_sweep, recipe=quick_recipe, **tiny)
    assert result.complete and result.trained == 0 and reference_sweep.stat().st_mtime_ns == before


def test_output_of_another_run_is_not_overwritten(reference_sweep, tiny):
    with pytest.raises(ValueError, match=r"^'out' '.*reference\.nc' already holds a different run; choose another "
                                         r"file or delete it\.$"):
        extract(reference_sweep, recipe=Recipe(epochs=2, batch_size=128), **tiny)


def test_parts_of_another_run_are_not_mixed_in(tmp_path, quick_recipe, tiny):
    out = tmp_path / "run.nc"

    def interrupt(key, n_done, n_total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(out, recipe=quick_recipe, on_model=interrupt, **tiny)
    with pytest.raises(ValueError, match=r"^'out' has unfinished parts of a different run in .*run\.nc\.parts; "):
        extract(out, recipe=quick_recipe, **{**tiny, "inputs": 30})


def test_a_corrupt_file_at_out_is_refused_and_kept(tmp_path, quick_recipe, tiny):
    """Outputs are written whole (a temporary file renamed): a file at ``out`` that cannot be read was not written by
    a run, and sawdist never deletes it."""
    out = tmp_path / "run.nc"
    out.write_bytes(b"CDF garbage")
    tiny = {**tiny, "families": ["mlp"], "capacities": [4], "seeds": 2}
    with pytest.raises(ValueError, match=r"^'out' '.*run\.nc' exists and is not a saliency dataset written by sawdist"):
        extract(out, recipe=quick_recipe, **tiny)
    assert out.read_bytes() == b"CDF garbage" and sorted(p.name for p in tmp_path.iterdir()) == ["run.nc"]


def test_other_targets_and_sequential_mode(tmp_path, quick_recipe, tiny):
    out = tmp_path / "loss.nc"
    tiny = {**tiny, "families": ["mlp"], "capacities": [8], "seeds": 2, "mode": "sequential", "target": "loss"}
    result = extract(out, recipe=quick_recipe, **tiny)
    assert result.modes == {"mlp-k8": {"mode": "sequential", "chunk_size": 1}}
    with sio.open_saliency(out, values=True) as ds:
        assert ds.attrs["target"] == "loss" and json.loads(ds.attrs["training_modes"])["mlp-k8"]["mode"] == "sequential"


def test_uncompressed_output_holds_the_same_values(tmp_path, reference_sweep, quick_recipe, tiny):
    out = tmp_path / "raw.nc"
    assert extract(out, recipe=quick_recipe, complevel=0, **tiny).complete
    with sio.open_saliency(out, values=True) as raw, sio.open_saliency(reference_sweep) as reference:
        assert not raw["direction"].encoding.get("zlib") and reference["direction"].encoding["zlib"]
        xr.testing.assert_equal(raw, reference)  # values and coordinates; the attributes record the run


@pytest.mark.parametrize("kept_before", [True, False])
def test_saved_models_survive_an_interruption_and_reproduce_the_directions(tmp_path, reference_sweep, quick_recipe,
                                                                          tiny, kept_before):
    # Interrupted with or without --save-models, then resumed with it: the models with no weights are trained again,
    # and they come out the same (the file equals the uninterrupted run's; keeping the models is not another run).
    from sawdist.extraction.pool import TorchModelPool

    out, models = tmp_path / "run.nc", tmp_path / "models"

    def interrupt(key, n_done, n_total):
        if n_done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(out, recipe=quick_recipe, save_models=models if kept_before else None, on_model=interrupt, **tiny)
    assert not models.exists()  # written once the run completes
    result = extract(out, recipe=quick_recipe, save_models=models, **tiny)
    assert result.complete and (result.trained < 12 if kept_before else result.trained == 12)
    assert_same_file(out, reference_sweep)
    pool = TorchModelPool.load(models)
    with sio.open_saliency(reference_sweep, values=True) as ds:
        assert pool.labels.tolist() == ds["label"].values.tolist() and pool.meta["n_inputs"] == 40
        for family in ("mlp", "cnn_small"):
            for capacity in (4, 8):
                expected = ds["direction"].sel(family=family, capacity=capacity).values
                np.testing.assert_allclose(pool.directions(family, capacity), expected, atol=1e-5)
                np.testing.assert_array_equal(pool.stacks[(family, capacity)].test_accuracy,
                                              ds["test_accuracy"].sel(family=family, capacity=capacity).values)
    assert extract(out, recipe=quick_recipe, save_models=models, **tiny).trained == 0  # its pool is there
    with pytest.raises(ValueError, match=r"^'save_models' '.*elsewhere' holds no model pool, and '.*run\.nc' is a "
                                         r"finished run whose weights are gone, unless it kept them in another "
                                         r"folder; delete that file to train the models again\.$"):
        extract(out, recipe=quick_recipe, save_models=tmp_path / "elsewhere", **tiny)


def test_auto_mode_is_decided_by_rule_and_two_runs_give_one_file(tmp_path, quick_recipe, tiny):
    """--mode auto is not timed: two runs of one command write the same numbers (docs/extraction.md)."""
    import dataclasses

    from sawdist.extraction.sweep import Sweep, default_decision

    settings = {**tiny, "families": ["mlp"], "capacities": [4], "seeds": 3, "mode": "auto", "chunk_size": None}
    first = extract(tmp_path / "a.nc", recipe=quick_recipe, **settings)
    second = extract(tmp_path / "b.nc", recipe=quick_recipe, **settings)
    assert first.modes == second.modes == {"mlp-k4": {"mode": "batched", "chunk_size": 16}}
    with xr.open_dataset(tmp_path / "a.nc") as a, xr.open_dataset(tmp_path / "b.nc") as b:
        assert a.attrs["identity"] == b.attrs["identity"] and '"mode": "auto"' in a.attrs["identity"]
        xr.testing.assert_equal(a, b)  # values and coordinates, bit for bit (attributes differ in "created")
    sweep = Sweep(dataset="digits", dataset_options=None, families=["mlp"], capacities=[4], seeds=1, inputs=None,
                  target="label_logit", recipe=None, mode="auto", chunk_size=None, out=tmp_path / "c.nc", complevel=4,
                  save_models=None, device="cpu", progress=False)
    assert default_decision(sweep, "cpu") == {"mode": "sequential", "chunk_size": 1}  # one seed: nothing to batch
    more = dataclasses.replace(sweep, seeds=40)
    assert default_decision(more, "cpu") == {"mode": "batched", "chunk_size": 16}
    assert default_decision(more, "cuda") == {"mode": "batched", "chunk_size": 64}
    assert default_decision(dataclasses.replace(more, chunk_size=1), "cpu") == {"mode": "sequential", "chunk_size": 1}
    assert default_decision(dataclasses.replace(more, mode="sequential"), "cuda") == {"mode": "sequential",
                                                                                      "chunk_size": 1}


@pytest.mark.parametrize(("changes", "message"), [
    ({"mode": "fast"}, r"^'mode' must be one of auto, batched, sequential, got 'fast'\.$"),
    ({"chunk_size": 0}, r"^'chunk_size' must be a positive integer, got 0\.$"),
    ({"inputs": 0}, r"^'inputs' must be a positive integer or None, got 0\.$"),
    ({"families": []}, r"^'families' must name at least one family, got none\.$"),
    ({"capacities": []}, r"^'capacities' must name at least one capacity, got none\.$"),
    ({"seeds": 0}, r"^'seeds' must be a positive number of seeds, got 0\.$"),
    ({"seeds": [-1, 2]}, r"^'seeds' must be a positive count or a list of non-negative seeds, got \[-1, 2\]\.$"),
    ({"families": ["vit"], "capacities": [3]}, r"^'capacity' must be even for vit, got 3\.$"),
    ({"target": "saliency"}, r"^'target' must be one of label_logit, pred_logit, loss, log_softmax, "
                             r"got 'saliency'\.$"),
    ({"complevel": -1}, r"^'complevel' must be an integer from 0 to 9, got -1\.$"),
])
def test_extract_errors(tmp_path, changes, message, tiny):
    with pytest.raises(ValueError, match=message):
        extract(tmp_path / "x.nc", **{**tiny, **changes})
    assert not (tmp_path / "x.nc.parts").exists()


def test_units_are_chunks_of_seeds_with_stable_ids():
    from sawdist.extraction.sweep import Unit, units

    cut = units("mlp", 8, [0, 1, 2, 3, 5], {"mode": "batched", "chunk_size": 2})
    assert cut[0] == Unit("mlp", 8, (0, 1), "batched")
    assert [u.id for u in cut] == ["mlp-k8-s0..1", "mlp-k8-s2..3", "mlp-k8-s5"]
    assert [u.seeds for u in Unit("mlp", 8, (0, 1, 2), "batched").halves()] == [(0, 1), (2,)]


def _weights_stack(seed=3):
    """A stand-in for a trained ModelStack: what _save_weights reads."""
    from types import SimpleNamespace

    import torch

    return SimpleNamespace(family="mlp", capacity=4, seeds=[seed], params={"w": torch.arange(6.0).reshape(1, 6)},
                           buffers={}, test_accuracy=np.array([0.5]))


def test_two_writers_of_one_models_weights_use_their_own_temporary_files(tmp_path, monkeypatch):
    """When Dask runs a unit twice, two writers save the same model's weights at once: each writes its own temporary
    file (a name of its process and call) and renames it into place, so neither writes into the other's."""
    import threading
    from types import SimpleNamespace

    import torch

    from sawdist.extraction import sweep

    store = SimpleNamespace(folder=tmp_path)
    both_writing = threading.Barrier(2, timeout=10)
    written = []
    save = torch.save

    def save_together(blob, f):
        written.append(f.name)
        both_writing.wait()  # both files open before either is written and renamed
        save(blob, f)

    monkeypatch.setattr(torch, "save", save_together)
    threads = [threading.Thread(target=sweep._save_weights, args=(store, _weights_stack(), 0)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(written) == 2 and len(set(written)) == 2
    path = tmp_path / "weights" / "mlp-k4-s3.pt"
    assert torch.load(path, weights_only=True)["params"]["w"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [p.name for p in (tmp_path / "weights").iterdir()] == ["mlp-k4-s3.pt"]


def test_a_failed_save_of_weights_leaves_no_temporary_file(tmp_path, monkeypatch):
    import errno
    from types import SimpleNamespace

    import torch

    from sawdist.extraction import sweep

    def full(blob, f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="No space left on device"):
        sweep._save_weights(SimpleNamespace(folder=tmp_path), _weights_stack(), 0)
    assert not any((tmp_path / "weights").iterdir())
