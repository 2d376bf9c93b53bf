"""sawdist.extraction.parts: the part store of a sweep — resuming, assembling, the background writer (no torch
needed)."""

import json
import threading
import time

import numpy as np
import pytest
import xarray as xr

import sawdist.io as sio
from sawdist.extraction.parts import PartStore, PartWriter, load_direction

from ..test_io import ATTRS, make_dataset, make_part


def test_part_store_resumes_and_assembles(tmp_path):
    out = tmp_path / "run.nc"
    identity = {"dataset": "synthetic", "epochs": 1}
    store = PartStore(out, identity).open()
    keys = [(f, c, s) for f in ("mlp", "cnn_small") for c in (4, 8) for s in (0, 1)]
    for key in keys[:5]:
        store.write(make_part(*key))
    store.record("mlp", 4, {"mode": "batched", "chunk_size": 2})
    again = PartStore(out, identity).open()
    assert again.done(keys) == set(keys[:5]) and again.decision("mlp", 4) == {"mode": "batched", "chunk_size": 2}
    (again.folder / "mlp-k4-s1.npz").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    assert again.done(keys) == set(keys[:5]) - {("mlp", 4, 1)} and again.removed == ["mlp-k4-s1.npz"]
    for key in keys:
        if key not in again.done(keys):
            again.write(make_part(*key))
    attrs = {k: v for k, v in ATTRS.items() if k != "input_shape"}
    again.assemble(["mlp", "cnn_small"], [4, 8], [0, 1], attrs, input_shape=(2, 3))
    assert not again.folder.exists()
    with sio.open_saliency(out, values=True) as ds:
        xr.testing.assert_equal(ds["direction"], make_dataset()["direction"].astype(np.float32))
        assert ds["feature"].attrs["input_shape"].tolist() == [2, 3]
        assert ds["capacity"].attrs["long_name"] == "capacity k"


def test_part_store_refuses_another_run(tmp_path):
    PartStore(tmp_path / "run.nc", {"epochs": 1}).open()
    with pytest.raises(ValueError, match=r"^'out' has unfinished parts of a different run in .*run\.nc\.parts; "):
        PartStore(tmp_path / "run.nc", {"epochs": 2}).open()


@pytest.mark.parametrize(("part_level", "out_level"), [(4, 4), (0, 0), (4, 0), (0, 4), (1, 9)])
def test_assembly_copies_or_transcodes_the_stored_chunks(tmp_path, part_level, out_level):
    # Parts hold direction encoded at the level of the run that wrote them; a resumed run may ask for another.
    out = tmp_path / "run.nc"
    store = PartStore(out, {"run": 1}, complevel=part_level, threads=2).open()
    for f in ("mlp", "cnn_small"):
        for c in (4, 8):
            for s in (0, 1):
                store.write(make_part(f, c, s, invalid=(2,)))
    attrs = {k: v for k, v in ATTRS.items() if k != "input_shape"}
    again = PartStore(out, {"run": 1}, complevel=out_level).open()
    again.assemble(["mlp", "cnn_small"], [4, 8], [0, 1], attrs, input_shape=(2, 3))
    with sio.open_saliency(out, values=True) as ds:
        expected = make_dataset(invalid=(2,))
        for name in ("direction", "grad_norm", "valid", "correct", "test_accuracy", "train_accuracy", "n_params"):
            np.testing.assert_array_equal(ds[name].values, expected[name].values.astype(ds[name].dtype))
        assert ds["label"].values.tolist() == expected["label"].values.tolist()
        assert bool(ds["direction"].encoding.get("zlib")) == (out_level > 0)
        # raw chunks (a part's, copied) carry the Fletcher-32 checksum the writer appends
        assert bool(ds["direction"].encoding.get("fletcher32")) == (out_level == 0)


def test_part_direction_decodes_and_a_short_chunk_table_is_unreadable(tmp_path):
    # A long model (3 chunks of 8 rows: 2**17 features) round-trips through a part file; a part whose chunk table
    # disagrees with its input count is redone.
    store = PartStore(tmp_path / "run.nc", {"run": 1}).open()
    part = make_part(n=20, d=2**17, invalid=(3,))
    path = store.write(part)
    np.testing.assert_array_equal(load_direction(path), part["direction"].values[0, 0, 0].astype(np.float32))
    with np.load(path) as z:
        arrays = dict(z)
    arrays["direction_sizes"] = arrays["direction_sizes"][:2]
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    assert store.done([("mlp", 4, 0)]) == set() and store.removed == [path.name]


def test_part_store_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"^'complevel' must be an integer from 0 to 9, got 'zlib'\.$"):
        PartStore(tmp_path / "run.nc", {}, complevel="zlib")
    with pytest.raises(ValueError, match=r"^'threads' must be a positive integer, got -2\.$"):
        PartStore(tmp_path / "run.nc", {}, threads=-2)

def test_parts_of_the_previous_format_are_kept_and_assembled(tmp_path):
    # Parts written before 2026-11-26 hold the plain direction array; a run resumed across the upgrade keeps them.
    out = tmp_path / "run.nc"
    store = PartStore(out, {"run": 1}).open()
    keys = [("mlp", 4, 0), ("mlp", 4, 1)]
    old = make_part(*keys[0], invalid=(2,))
    meta = {"family": "mlp", "capacity": 4, "seed": 0, "n_params": 400, "test_accuracy": 0.9,
            "extra": {"train_accuracy": 0.95}}
    with open(store.path(*keys[0]), "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), direction=old["direction"].values[0, 0, 0].astype(np.float32),
                 grad_norm=old["grad_norm"].values.ravel(), valid=old["valid"].values.ravel(),
                 correct=old["correct"].values.ravel(), label=old["label"].values, input=old["input"].values)
    store.write(make_part(*keys[1]))
    assert store.done(keys) == set(keys) and store.removed == []
    attrs = {k: v for k, v in ATTRS.items() if k != "input_shape"}
    store.assemble(["mlp"], [4], [0, 1], attrs, input_shape=(2, 3))
    with sio.open_saliency(out, values=True) as ds:
        expected = np.concatenate([old["direction"].values, make_part(*keys[1])["direction"].values], axis=2)
        np.testing.assert_array_equal(ds["direction"].values, expected.astype(np.float32))


def test_a_second_ctrl_c_cancels_the_queued_part_writes():
    written, started = [], threading.Event()

    class SlowStore:
        def write_model(self, seed, **kwargs):
            started.set()
            time.sleep(0.2)
            written.append(seed)

    writer = PartWriter(SlowStore(), lambda key, accuracy: None)
    for seed in range(10):
        writer.submit(("mlp", 4, seed), 0.5, seed=seed)
    started.wait()
    begin = time.perf_counter()
    keys = writer.close(cancel=True)
    assert time.perf_counter() - begin < 1.0 and written == [0] and keys == [("mlp", 4, 0)]
