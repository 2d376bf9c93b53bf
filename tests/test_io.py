"""sawdist.io: schema validation, reading, atomic writing (no torch needed)."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import sawdist.io as sio


def make_part(family="mlp", capacity=4, seed=0, n=5, d=6, invalid=(), rng=None):
    rng = np.random.default_rng(seed if rng is None else rng)
    g = rng.normal(size=(n, d))
    norm = np.linalg.norm(g, axis=1)
    direction = g / norm[:, None]
    valid = np.ones(n, bool)
    for i in invalid:
        valid[i], norm[i], direction[i] = False, 0.0, np.nan
    return sio.model_part(family=family, capacity=capacity, seed=seed, direction=direction, grad_norm=norm,
                          valid=valid, correct=rng.random(n) < 0.5, test_accuracy=0.9, n_params=100 * capacity,
                          label=np.arange(n) % 3, extra={"train_accuracy": 0.95})


ATTRS = {"dataset": "synthetic", "target": "label_logit", "recipe": json.dumps({"epochs": 1}),
         "versions": json.dumps({"numpy": np.__version__}), "device": "cpu", "created": "2026-11-26T00:00:00+00:00",
         "input_shape": [2, 3]}


def make_dataset(**kw):
    parts = [[[make_part(f, c, s, **kw) for s in (0, 1)] for c in (4, 8)] for f in ("mlp", "cnn_small")]
    ds = xr.combine_nested(parts, concat_dim=["family", "capacity", "seed"], data_vars="minimal", coords="minimal",
                           compat="override", join="override", combine_attrs="drop")
    ds = ds.assign_coords(family=np.array(["mlp", "cnn_small"], dtype=object))
    ds.attrs.update(ATTRS)
    return ds


def test_valid_dataset_passes_and_round_trips(tmp_path):
    ds = make_dataset(invalid=(2,))
    assert sio.validate(ds) is ds
    path = sio.to_netcdf_atomic(ds, tmp_path / "s.nc")
    back = sio.open_saliency(path, values=True)
    assert back["direction"].dtype == np.float32 and back["valid"].dtype == bool
    assert back["family"].values.tolist() == ["mlp", "cnn_small"] and back["label"].dims == ("input",)
    assert back["direction"].encoding["zlib"] and back["direction"].encoding["chunksizes"] == (1, 1, 1, 5, 6)
    assert not list(tmp_path.glob("*.tmp"))
    lazy = sio.open_saliency(path, chunks={})
    assert lazy["direction"].chunks is not None
    back.close(), lazy.close()


def test_open_several_files_by_glob_and_list(tmp_path):
    ds = make_dataset()
    for i, family in enumerate(["mlp", "cnn_small"]):
        sio.to_netcdf_atomic(ds.sel(family=[family]), tmp_path / f"run{i}.nc")
    combined = sio.open_saliency(str(tmp_path / "run*.nc"), values=True)
    assert sorted(combined["family"].values.tolist()) == ["cnn_small", "mlp"]
    listed = sio.open_saliency([tmp_path / "run0.nc", tmp_path / "run1.nc"])
    assert listed.sizes["family"] == 2
    combined.close(), listed.close()
    with pytest.raises(FileNotFoundError, match=r"^'path' '.*nothing\*\.nc' matches no file\.$"):
        sio.open_saliency(str(tmp_path / "nothing*.nc"))


def test_several_files_of_other_runs_keep_the_required_attributes(tmp_path):
    """Files of two runs (other seeds) differ in ``created`` and ``device`` at least: their combined dataset keeps
    every required attribute, the differing ones listed, and drops the other attributes on which they disagree."""
    ds = make_dataset()
    ds["direction"].attrs["units"] = "1"
    runs = [("2026-11-26T00:00:00+00:00", "cpu (4 threads)", {"numpy": "2.1"}),
            ("2026-11-27T12:00:00+00:00", "cuda (NVIDIA H200)", {"numpy": "2.2"})]
    paths = []
    for seed, (created, device, versions) in enumerate(runs):
        part = ds.sel(seed=[seed])
        part.attrs = dict(part.attrs, created=created, device=device, versions=json.dumps(versions),
                          title=f"run {seed}", Conventions="CF-1.10")
        paths.append(sio.to_netcdf_atomic(part, tmp_path / f"run{seed}.nc"))
    with sio.open_saliency(paths, values=True) as back:
        assert back.sizes["seed"] == 2
        assert back.attrs["created"] == "2026-11-26T00:00:00+00:00; 2026-11-27T12:00:00+00:00"
        assert back.attrs["device"] == "cpu (4 threads); cuda (NVIDIA H200)"
        assert json.loads(back.attrs["versions"]) == [{"numpy": "2.1"}, {"numpy": "2.2"}]
        assert back.attrs["recipe"] == ATTRS["recipe"] and back.attrs["Conventions"] == "CF-1.10"
        assert list(back.attrs["input_shape"]) == [2, 3] and "title" not in back.attrs
        assert back["direction"].attrs == {"units": "1"}  # the variables' attributes are as they were
    # a merged file's joined device is not listed twice
    third = ds.sel(seed=[1]).assign_coords(seed=[2])
    third.attrs = dict(third.attrs, device="cpu (4 threads); cuda (NVIDIA H200)")
    paths.append(sio.to_netcdf_atomic(third, tmp_path / "run2.nc"))
    with sio.open_saliency(paths) as back:
        assert back.attrs["device"] == "cpu (4 threads); cuda (NVIDIA H200)"


def test_several_files_of_other_targets_are_refused(tmp_path):
    ds = make_dataset()
    other = ds.sel(seed=[1])
    other.attrs = dict(other.attrs, target="max_logit")
    paths = [sio.to_netcdf_atomic(ds.sel(seed=[0]), tmp_path / "a.nc"), sio.to_netcdf_atomic(other, tmp_path / "b.nc")]
    with pytest.raises(sio.SchemaError, match=r"^'.*a\.nc' and '.*b\.nc' disagree on the attribute 'target' "
                                              r"\('label_logit' against 'max_logit'\): files of other data, targets or "
                                              r"inputs do not make one dataset; open them separately\.$"):
        sio.open_saliency(paths)


def test_open_saliency_refuses_another_schema_version(tmp_path):
    """A file of schema version 1 (inputs along a dim ``sample``) must be extracted again; the message says so."""
    old = make_dataset().rename(input="sample")
    old.attrs["schema_version"] = "1"
    paths = [tmp_path / "v1.nc", tmp_path / "v1b.nc"]
    for path, family in zip(paths, ["mlp", "cnn_small"]):
        old.sel(family=[family]).to_netcdf(path, engine="netcdf4")
    for path in (paths[0], str(tmp_path / "v1*.nc")):
        with pytest.raises(sio.SchemaError, match=r"^'.*v1b?\.nc' is a saliency dataset of schema version 1, which "
                                                  r"this version of sawdist cannot read \(it reads version 2\): "
                                                  r"re-extract it with this version of sawdist\.$"):
            sio.open_saliency(path, validate_schema=False)
    current = make_dataset()
    current.attrs["schema_version"] = sio.SCHEMA_VERSION
    sio.to_netcdf_atomic(current, tmp_path / "v2.nc")
    with sio.open_saliency(tmp_path / "v2.nc") as back:
        assert back.attrs["schema_version"] == "2" and sio.DIMS[3] == "input"


def _break(ds, how):
    ds = ds.copy(deep=True)
    how(ds)
    return ds


@pytest.mark.parametrize(("how", "message"), [
    (lambda ds: ds.__delitem__("grad_norm"), r"^'ds' has no variable 'grad_norm'; a saliency dataset needs "),
    (lambda ds: ds.__setitem__("n_params", ds["n_params"].transpose()),
     r"^'n_params' must have dims \(family, capacity\), got \(capacity, family\)\.$"),
    (lambda ds: ds.__setitem__("valid", ds["valid"].astype("int8")),
     r"^'valid' must have a dtype of kind 'b', got int8\.$"),
    (lambda ds: ds.attrs.pop("recipe"), r"^'ds' has no attribute 'recipe'; required are "),
    (lambda ds: ds.attrs.__setitem__("recipe", "{epochs"), r"^attribute 'recipe' must be a JSON string, got "),
    (lambda ds: ds.attrs.__setitem__("input_shape", [4, 4]),
     r"^'input_shape' \[4, 4\] does not match the 6 features\.$"),
])
def test_structure_errors(how, message):
    with pytest.raises(sio.SchemaError, match=message):
        sio.validate(_break(make_dataset(), how), values=False)


def test_dim_without_coordinate():
    ds = make_dataset().drop_vars("seed")
    with pytest.raises(sio.SchemaError, match=r"^dim 'seed' has no coordinate\.$"):
        sio.validate(ds)


def test_not_a_dataset():
    with pytest.raises(sio.SchemaError, match=r"^'ds' must be an xarray\.Dataset, got DataArray\.$"):
        sio.validate(make_dataset()["direction"])


def _set(name, index, value):
    def how(ds):
        ds[name].values[index] = value
    return how


@pytest.mark.parametrize(("how", "message"), [
    (_set("direction", (0, 0, 0, 1, 0), np.nan), r"^'direction' has 1 vectors that are partly NaN\.$"),
    # the messages of every reader of directions (sawdist.summaries.summarize, sawdist.io.check_direction_values)
    (_set("valid", (0, 0, 0, 2), True), r"^'direction' must be finite where 'valid' is True, got nan in 1 row\(s\)\.$"),
    (_set("valid", (0, 0, 0, 1), False), r"^'direction' must be NaN where 'valid' is False \(the schema's mark of an "
                                         r"invalid direction\), got numbers in 1 row\(s\)\.$"),
    (_set("direction", (0, 0, 0, 1, 0), 3.0), r"^'direction' must contain unit vectors along its 'feature' dim "
                                              r"\(\|norm - 1\| <= 2\.9e-06\), got norm 3\.\d+ where 'valid' is True, "
                                              r"in 1 row\(s\)\.$"),
    (_set("grad_norm", (1, 1, 1, 0), 0.0), r"^'grad_norm' is not positive at 1 valid places\.$"),
    (_set("test_accuracy", (0, 1, 0), 1.5), r"^'test_accuracy' lies outside \[0, 1\] at 1 places\.$"),
])
def test_value_errors(how, message):
    ds = _break(make_dataset(invalid=(2,)), how)
    sio.validate(ds, values=False)  # structure is fine
    with pytest.raises(sio.SchemaError, match=message):
        sio.validate(ds)


def test_schema_error_is_a_value_error():
    assert issubclass(sio.SchemaError, ValueError)


def test_input_shape_forms():
    ds = make_dataset()
    assert sio.input_shape(ds) == (2, 3)
    ds.attrs["input_shape"] = "2x3"
    assert sio.input_shape(ds) == (2, 3)


def test_import_is_light():
    code = "import sys, sawdist.io; print(sorted(m for m in ('torch', 'pymc', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"



def _variable(path, name="direction"):
    """Values, attributes, filters and chunk layout of one variable, read by netCDF-C."""
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        v = nc[name]
        v.set_auto_mask(False)
        return v[...], {a: v.getncattr(a) for a in v.ncattrs()}, v.filters(), v.chunking(), v.endian()


@pytest.mark.parametrize("complevel", [0, 1, 4])
def test_parallel_direction_write_matches_netcdf_c(tmp_path, complevel):
    # Two models of 20 inputs x 3072 features: 8 inputs per chunk, so each model has an edge chunk of 4 rows.
    # The reference is the same dataset written by xarray/netCDF-C alone, which runs HDF5's own filters.
    d, n = 3072, 20
    parts = [make_part(seed=s, n=n, d=d, invalid=(3,), rng=s) for s in (0, 1)]
    ds = xr.concat(parts, "seed", data_vars="minimal", coords="minimal", compat="override")
    ds.attrs.update(ATTRS, input_shape=[d])
    reference = tmp_path / "reference.nc"
    ds.to_netcdf(reference, engine="netcdf4", encoding=sio.encoding(ds, complevel))
    ours = sio.to_netcdf_atomic(ds, tmp_path / "ours.nc", complevel=complevel, threads=3)
    values, attrs, filters, chunking, endian = _variable(ours)
    ref_values, ref_attrs, ref_filters, ref_chunking, ref_endian = _variable(reference)
    assert chunking == ref_chunking == [1, 1, 1, 8, d]
    np.testing.assert_array_equal(values, ref_values)  # NaN rows included
    assert np.isnan(values[0, 0, 1, 3]).all() and not np.isnan(values[0, 0, 1, :3]).any()
    assert filters == ref_filters
    if complevel == 0:  # raw chunks, checked by Fletcher-32: the stored bytes, checksums included, are netCDF-C's
        assert filters["fletcher32"] and not filters["zlib"] and not filters["shuffle"]
        assert _stored_chunks(ours) == _stored_chunks(reference)
    assert str(attrs.pop("_FillValue")) == str(ref_attrs.pop("_FillValue")) == "nan"
    assert attrs == ref_attrs and endian == ref_endian == "little"
    with sio.open_saliency(ours, values=True) as back, sio.open_saliency(reference) as expected:
        xr.testing.assert_identical(back, expected)


def _stored_chunks(path, name="direction") -> dict:
    """The bytes HDF5 stores for each chunk of a variable (filters applied, a Fletcher-32 checksum appended)."""
    import h5py

    with h5py.File(path, "r") as f:
        dset = f[name]
        offsets = [dset.id.get_chunk_info(i).chunk_offset for i in range(dset.id.get_num_chunks())]
        return {offset: dset.id.read_direct_chunk(offset) for offset in offsets}


@pytest.mark.parametrize("data", [
    bytes(7), b"\xff" * 9, b"\xff\xfe" * 500, bytes(range(256)) * 9 + b"\x01",
    np.random.default_rng(0).integers(0, 256, 3 * 2**12 + 1, dtype=np.uint8).tobytes(),
    np.random.default_rng(1).integers(0, 256, 2**20 + 2, dtype=np.uint8).tobytes(),
])
def test_fletcher32_is_the_checksum_hdf5_stores(tmp_path, data):
    """Chunks of bytes (odd and even lengths, zeros, all ones, rows of 1024 words and a tail) written by netCDF-C
    with Fletcher-32: HDF5 appends to each chunk the checksum sawdist computes."""
    import netCDF4

    with netCDF4.Dataset(tmp_path / "f.nc", "w") as nc:
        nc.createDimension("n", len(data))
        v = nc.createVariable("x", "u1", ("n",), fletcher32=True, chunksizes=(len(data),))
        v[:] = np.frombuffer(data, np.uint8)
    (stored,) = [chunk for _, chunk in _stored_chunks(tmp_path / "f.nc", "x").values()]
    assert stored[:-4] == data and stored[-4:] == sio._fletcher32(data)


def test_parallel_direction_write_streams_dask_and_is_thread_count_independent(tmp_path):
    ds = make_dataset(invalid=(1,))
    one = sio.to_netcdf_atomic(ds, tmp_path / "one.nc", threads=1)
    many = sio.to_netcdf_atomic(ds.chunk({"family": 1, "capacity": 1, "seed": 1}), tmp_path / "many.nc", threads=4)
    np.testing.assert_array_equal(_variable(one)[0], _variable(many)[0])
    np.testing.assert_array_equal(_variable(one)[0], ds["direction"].values.astype(np.float32))


def test_xarrays_write_reads_its_dask_chunks_in_one_thread(tmp_path, monkeypatch):
    """netCDF-C writes the variables xarray writes (all of them with direct=False, as sawdist merge does) from data
    read lazily from netCDF files; with older xarray a Dask thread reading and one writing could take the shared
    netCDF-C and HDF5 locks in opposite orders and wait for each other forever. Every read runs in this thread."""
    import threading

    source = sio.to_netcdf_atomic(make_dataset(), tmp_path / "source.nc")
    threads = set()
    read = sio._Array._getitem

    def recorded(self, key):
        threads.add(threading.get_ident())
        return read(self, key)

    monkeypatch.setattr(sio._Array, "_getitem", recorded)
    with sio.open_saliency(source, chunks={}) as ds:  # the stored chunks: one model each
        assert ds["direction"].data.npartitions > 1
        threads.clear()  # opening checks the values on Dask's threads: reads only, which cannot deadlock
        out = sio.to_netcdf_atomic(ds, tmp_path / "copy.nc", direct=False)
    assert threads == {threading.get_ident()}
    monkeypatch.undo()
    with sio.open_saliency(source) as a, sio.open_saliency(out) as b:
        xr.testing.assert_identical(a.load(), b.load())


@pytest.mark.parametrize("kwargs, message", [
    ({"complevel": 10}, r"^'complevel' must be an integer from 0 to 9, got 10\.$"),
    ({"complevel": 1.5}, r"^'complevel' must be an integer from 0 to 9, got 1\.5\.$"),
    ({"threads": 0}, r"^'threads' must be a positive integer, got 0\.$"),
])
def test_write_argument_errors(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sio.to_netcdf_atomic(make_dataset(), tmp_path / "s.nc", **kwargs)
    assert not list(tmp_path.iterdir())


def test_unlimited_dimension_is_written_by_netcdf_c(tmp_path):
    ds = make_dataset(invalid=(1,))
    ds.encoding["unlimited_dims"] = {"input"}
    with sio.open_saliency(sio.to_netcdf_atomic(ds, tmp_path / "s.nc"), values=True) as back:
        np.testing.assert_array_equal(back["direction"].values, ds["direction"].values.astype(np.float32))
        assert back.encoding["unlimited_dims"] == {"input"}


# --- values checked at small cost: the sample at open, every vector in summarize -------------------------------------


def _write(ds, path, **kw):
    """``ds`` written as sawdist writes it, with no value checked (to_netcdf_atomic checks none)."""
    return sio.to_netcdf_atomic(ds, path, **kw)


def _scaled(ds, factor, index=(slice(None),)):
    ds = ds.copy(deep=True)
    ds["direction"].values[index] *= factor
    return ds


def test_open_saliency_checks_a_sample_of_the_values_by_default(tmp_path):
    path = _write(_scaled(make_dataset(invalid=(2,)), 2.0), tmp_path / "norm2.nc")
    with pytest.raises(sio.SchemaError, match=rf"^'{path}': 'direction' must contain unit vectors along its 'feature' "
                                              r"dim \(\|norm - 1\| <= 2\.9e-06\), got norm 2\.0\d* where 'valid' is "
                                              r"True, in 16 row\(s\) \(in the sample checked at open: inputs 0-4 of "
                                              r"the first seed of each family and capacity\)\.$"):
        sio.open_saliency(path)
    with sio.open_saliency(path, values=False) as ds:  # no value read
        assert ds.sizes["seed"] == 2


@pytest.mark.parametrize(("how", "message"), [
    (_set("direction", (1, 0, 0, 1, 3), np.nan), r"'direction' has 1 vectors that are partly NaN \(in the sample "),
    (_set("valid", (0, 1, 0, 2), True), r"'direction' must be finite where 'valid' is True, got nan in 1 row\(s\) "
                                        r"\(in the sample checked at open"),
])
def test_the_sample_check_finds_nan_where_valid_disagrees(tmp_path, how, message):
    path = _write(_break(make_dataset(invalid=(2,)), how), tmp_path / "s.nc")
    with pytest.raises(sio.SchemaError, match=rf"^'{path}': {message}"):
        sio.open_saliency(path)


def test_the_sample_is_the_first_inputs_of_the_first_seed_and_at_most_4096_vectors():
    ds = make_dataset(n=1100)  # 4 families x capacities: 1024 inputs each
    sio.validate(_scaled(ds, 2.0, (0, 0, 1)), values="sample")  # seed 1: not in the sample
    sio.validate(_scaled(ds, 2.0, (0, 0, 0, 1024)), values="sample")  # input 1024: not in the sample
    with pytest.raises(sio.SchemaError, match=r"^'direction' must contain unit vectors .* in 1 row\(s\) \(in the "
                                              r"sample checked at open: inputs 0-1023 of the first seed"):
        sio.validate(_scaled(ds, 2.0, (1, 1, 0, 1023)), values="sample")


def test_validate_values_must_be_true_false_or_sample():
    with pytest.raises(ValueError, match=r"^'values' must be True, False or 'sample', got 'all'\.$"):
        sio.validate(make_dataset(), values="all")


def test_summarize_checks_every_vector_and_names_the_file(tmp_path):
    from sawdist.summaries import summarize

    ds = make_dataset(invalid=(2,))
    norm2 = _write(_scaled(ds, 2.0), tmp_path / "norm2.nc")
    with sio.open_saliency(norm2, values=False) as back, pytest.raises(
            sio.SchemaError, match=rf"^'{norm2}': 'direction' must contain unit vectors along its 'feature' dim "
                                   r"\(\|norm - 1\| <= 2\.9e-06\), got norm 2\.0\d* where 'valid' is True, in 32 "
                                   r"row\(s\)\.$"):
        summarize(back)
    one = _write(_scaled(ds, 1.001, (1, 1, 1, 4)), tmp_path / "one.nc")  # seed 1: past the sample
    with sio.open_saliency(one) as back, pytest.raises(
            sio.SchemaError, match=rf"^'{one}': 'direction' must contain .* got norm 1\.00(099|100)\d* where 'valid' "
                                   r"is True, in 1 row\(s\)\.$"):
        summarize(back)
    with sio.open_saliency(one, chunks={}) as back, pytest.raises(sio.SchemaError, match=r"in 1 row\(s\)\.$"):
        summarize(back)  # chunk by chunk, the same check


@pytest.mark.parametrize(("index", "value", "message"), [
    ((0, 1, 1, 0), False, r"must be NaN where 'valid' is False \(the schema's mark of an invalid direction\), got "
                          r"numbers in 1 row\(s\)\.$"),
    ((0, 1, 1, 2), True, r"must be finite where 'valid' is True, got nan in 1 row\(s\)\.$"),
])
def test_summarize_finds_valid_disagreeing_with_nan(tmp_path, index, value, message):
    from sawdist.summaries import summarize

    ds = make_dataset(invalid=(2,))
    ds["valid"].values[index] = value  # seed 1: past the sample
    path = _write(ds, tmp_path / "s.nc")
    with sio.open_saliency(path) as back, pytest.raises(sio.SchemaError, match=rf"^'{path}': 'direction' {message}"):
        summarize(back)


def test_summarize_names_every_file_of_a_multi_file_dataset(tmp_path):
    from sawdist.summaries import summarize

    ds = _scaled(make_dataset(), 1.001, (1, 1, 1, 4))
    for i, family in enumerate(["mlp", "cnn_small"]):
        _write(ds.sel(family=[family]), tmp_path / f"run{i}.nc")
    with sio.open_saliency(str(tmp_path / "run*.nc")) as back, pytest.raises(
            sio.SchemaError, match=rf"^'{tmp_path}/run0\.nc', '{tmp_path}/run1\.nc': 'direction' must contain "):
        summarize(back)


# --- checksums, and errors that name the file -----------------------------------------------------------------------


@pytest.mark.parametrize("complevel", [0, 4])
def test_every_variable_has_a_checksum(tmp_path, complevel):
    """Fletcher-32 on every variable; ``direction`` compressed is checked by zlib's Adler-32 instead."""
    import netCDF4

    path = _write(make_dataset(), tmp_path / "s.nc", complevel=complevel)
    with netCDF4.Dataset(path) as nc:
        checked = {name for name, v in nc.variables.items() if v.filters()["fletcher32"]}
        assert nc["family"].dtype == np.dtype("S1")  # characters: a variable-length string has no checksum
        assert nc["direction"].filters()["zlib"] == (complevel > 0)
    assert checked == set(make_dataset().variables) - ({"direction"} if complevel else set())
    with sio.open_saliency(path) as back:
        assert back["family"].values.tolist() == ["mlp", "cnn_small"]


@pytest.mark.parametrize("direct", [True, False])
def test_a_damaged_direction_chunk_of_an_uncompressed_file_is_named(tmp_path, direct):
    """At complevel 0 (no zlib stream to check) a flipped byte in a chunk of direction, or in its checksum, is found
    by Fletcher-32: reading the chunk fails with an error that names the file, it never changes a value."""
    ds = make_dataset()
    path = _write(ds, tmp_path / "s.nc", complevel=0, direct=direct)
    import h5py

    with h5py.File(path, "r") as f:  # family 1, capacity 0, seed 1: not in the sample checked at open
        info = f["direction"].id.get_chunk_info_by_coord((1, 0, 1, 0, 0))
        start, size = info.byte_offset, info.size
    message = r"^'{}' is damaged: reading 'direction' failed with NetCDF: HDF error\.$"
    for position in (start + 10, start + size - 4 - 1, start + size - 2):  # a value's byte, its last, the checksum
        bad = _flip(path, tmp_path / "bad.nc", position)
        for chunks in (None, {}):
            with sio.open_saliency(bad, chunks=chunks) as back:
                with pytest.raises(OSError, match=message.format(bad)):
                    back["direction"].load()
    with sio.open_saliency(path, values=True) as back:
        np.testing.assert_array_equal(back["direction"].values, ds["direction"].values.astype(np.float32))


def test_every_netcdf_open_holds_the_lock_of_netcdf_reads(tmp_path, monkeypatch):
    """netCDF-C is not thread-safe, and a Dask thread may be reading another file (or reopening this one after an
    error): every open of a file, the first, a reopen after close, and the look for shards, holds the lock that reads
    hold, in every supported xarray (older ones opened under a lock of their own, and crashed so in a loop over damaged
    files)."""
    import netCDF4
    from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK

    held = []
    original = netCDF4.Dataset

    class Dataset(original):  # a class for isinstance; what it makes is a plain netCDF4.Dataset (an instance of a
        def __new__(cls, *args, **kwargs):  # subclass fails at deallocation, and a worker crashed later)
            held.append(all(lock.locked() for lock in NETCDF4_PYTHON_LOCK.locks))  # (.locked() of xarray < 2025: True)
            return original(*args, **kwargs)

    paths = [_write(make_dataset().sel(family=[family]), tmp_path / f"run{i}.nc")
             for i, family in enumerate(["mlp", "cnn_small"])]
    monkeypatch.setattr(netCDF4, "Dataset", Dataset)
    with sio.open_saliency(paths[0], chunks={}) as back:
        back.close()
        back["direction"].load()  # reopens
    with sio.open_saliency(paths) as back:
        back["direction"].load()
    assert len(held) >= 5 and all(held), held


def _flip(path, out, position):
    data = bytearray(path.read_bytes())
    data[position] ^= 0xFF
    out.write_bytes(bytes(data))
    return out


def _chunk_offset(path, name, index=0):
    import h5py

    with h5py.File(path, "r") as f:
        return f[name].id.get_chunk_info(index).byte_offset


def test_a_file_that_is_not_netcdf_is_named(tmp_path):
    path = tmp_path / "some.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(OSError, match=rf"^'{path}' is damaged or not a netCDF4 file: NetCDF: Unknown file "
                                      r"format\.$") as info:
        sio.open_saliency(path)
    assert info.value.strerror == "NetCDF: Unknown file format"  # for sawdist report, which names the file itself


def test_a_damaged_chunk_is_named_when_it_is_read(tmp_path):
    path = _write(make_dataset(), tmp_path / "s.nc")
    bad = _flip(path, tmp_path / "bad.nc", _chunk_offset(path, "direction", 5) + 10)  # family 1, capacity 0, seed 1
    message = r"^'{}' is damaged: reading 'direction' failed with NetCDF: HDF error\.$"
    for chunks in (None, {}):
        with sio.open_saliency(bad, chunks=chunks) as ds:  # not in the sample (the first seed)
            with pytest.raises(OSError, match=message.format(bad)):
                ds["direction"].load()
    first = _flip(path, tmp_path / "first.nc", _chunk_offset(path, "direction", 0) + 10)  # in the sample
    with pytest.raises(OSError, match=message.format(first)):
        sio.open_saliency(first)
    sio.open_saliency(first, values=False).close()  # reads no value


def test_a_damaged_chunk_index_is_found_at_open(tmp_path):
    path = _write(make_dataset(), tmp_path / "s.nc")
    # The first node of a chunk index (an HDF5 version-1 B-tree of chunks, which no checksum covers): "TREE", type 1,
    # level, entries, two sibling addresses, then the first key: the chunk's size (4 bytes), its filter mask (4) and
    # its offsets (8 bytes each). Byte 3 of the first offset moves the chunk outside its variable.
    node = path.read_bytes().index(b"TREE\x01")
    bad = _flip(path, tmp_path / "bad.nc", node + 24 + 8 + 3)
    with pytest.raises(OSError, match=rf"^'{bad}' is damaged: the chunk index of '\w+' is inconsistent \(a chunk at "
                                      r"\(4278190080, "):
        sio.open_saliency(bad, values=False)
    _flip(path, bad, node + 24 + 4)  # the filter mask: the chunk's filters would be skipped, its bytes read raw
    with pytest.raises(OSError, match=rf"^'{bad}' is damaged: the chunk index of '\w+' is inconsistent \(a chunk at "
                                      r"\(0, "):
        sio.open_saliency(bad, values=False)


def _stored_data(path) -> list:
    """A byte in the middle of each variable's stored data (its first chunk, or its contiguous block)."""
    import h5py

    positions = []
    with h5py.File(path, "r") as f:
        for dset in f.values():
            if dset.chunks is not None:
                info = dset.id.get_chunk_info(0)
                positions.append(info.byte_offset + info.size // 2)
            elif dset.id.get_offset() is not None:
                positions.append(dset.id.get_offset() + dset.id.get_storage_size() // 2)
    return positions


def test_single_byte_corruptions_are_refused_with_the_file_name_or_harmless(tmp_path):
    """Each of 150 single-byte flips over a small file (one in the data of every variable, the others spread at random)
    either makes reading it (open_saliency, summarize, every variable) fail with an error that starts with the file's
    name, or changes nothing that is read."""
    from sawdist.summaries import summarize

    ds = make_dataset(invalid=(2,), d=16)
    ds.attrs["input_shape"] = [4, 4]
    path = _write(ds, tmp_path / "s.nc")

    def read(p):
        with sio.open_saliency(p) as back:
            summarize(back)
            return {name: back[name].values for name in back.variables}, dict(back.attrs)

    expected, attrs = read(path)
    size = path.stat().st_size
    # a byte in the data of every variable, and in the text of a family's name
    in_data = [*_stored_data(path), path.read_bytes().index(b"cnn_small") + 3]
    assert len(in_data) == len(expected) + 1  # every variable stores data (string9, the length of the names, none)
    positions = np.concatenate([in_data, np.random.default_rng(0).choice(size, 150 - len(in_data), replace=False)])
    refused = 0
    for i, position in enumerate(positions):
        bad = _flip(path, tmp_path / f"flip{i}.nc", int(position))
        try:
            values, got_attrs = read(bad)
        except (OSError, ValueError) as err:
            assert str(err).startswith(repr(str(bad))), (int(position), str(err))
            refused += 1
            continue
        assert values.keys() == expected.keys() and got_attrs.keys() == attrs.keys(), int(position)
        for name, value in expected.items():
            np.testing.assert_array_equal(values[name], value, err_msg=f"{name} at byte {position}")
        for name, value in attrs.items():
            np.testing.assert_array_equal(got_attrs[name], value, err_msg=f"attribute {name} at byte {position}")
        bad.unlink()
    assert refused >= 15  # the flips do reach data and metadata


# --- a full disk: one error, ENOSPC, naming the file -----------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a file system of 1 MiB (a tmpfs; skipped where it cannot be mounted: not root, a container
    without the right to mount)."""
    import shutil

    folder = tmp_path / "small"
    folder.mkdir()
    if not shutil.which("mount") or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small file system: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        # lazily: a file that HDF5 failed to close stays open in this process, and keeps the mount busy
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _large(seeds=2):
    """A dataset whose direction (about 1.6 MB of noise) does not fit on :func:`small_disk`."""
    parts = [make_part(seed=s, n=200, d=1024, rng=s) for s in range(seeds)]
    ds = xr.concat(parts, "seed", data_vars="minimal", coords="minimal", compat="override")
    ds.attrs.update(ATTRS, input_shape=[1024])
    return ds


@pytest.mark.parametrize("kwargs", [{}, {"complevel": 0}, {"direct": False}])
def test_a_full_disk_is_enospc_naming_the_file(small_disk, kwargs):
    """h5py reports a full disk with errno 28, netCDF-C as "NetCDF: HDF error" (a write) or "Permission denied" (a
    file it cannot create): each becomes ENOSPC naming the output, and the temporary file is removed."""
    out = small_disk / "s.nc"
    with pytest.raises(OSError, match=rf"^\[Errno 28\] No space left on device: '{out}'$") as info:
        sio.to_netcdf_atomic(_large(), out, threads=2, **kwargs)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(out)
    assert not list(small_disk.iterdir())
    # a disk full before the file is created
    (small_disk / "filler").write_bytes(bytes(2**20))
    with pytest.raises(OSError, match=r"^\[Errno 28\] No space left on device: ") as info:
        sio.to_netcdf_atomic(make_dataset(), out, **kwargs)
    assert info.value.filename == str(out)
    assert [p.name for p in small_disk.iterdir()] == ["filler"]


class _Statvfs:
    def __init__(self, free):
        self.f_bavail, self.f_frsize = free // 4096, 4096


@pytest.mark.parametrize("error", [RuntimeError("NetCDF: HDF error"), OSError(-101, "NetCDF: HDF error"),
                                   PermissionError(errno.EACCES, "Permission denied")])
def test_a_library_error_on_a_full_disk_is_enospc(tmp_path, monkeypatch, error):
    """netCDF-C's errors do not say that the disk is full: an error it raises while writing is ENOSPC when the file
    system has (almost) no space left, and stays as it is otherwise."""
    def failing_write(self, path, **kwargs):
        Path(path).write_bytes(b"half a file")
        raise error

    monkeypatch.setattr(xr.Dataset, "to_netcdf", failing_write)
    for direct in (True, False):
        monkeypatch.setattr(sio.os, "statvfs", lambda folder: _Statvfs(4096))
        with pytest.raises(OSError, match=rf"^\[Errno 28\] No space left on device: '{tmp_path / 's.nc'}'$") as info:
            sio.to_netcdf_atomic(make_dataset(), tmp_path / "s.nc", direct=direct)
        assert info.value.errno == errno.ENOSPC and info.value.__cause__ is error
        assert not list(tmp_path.iterdir())
        monkeypatch.setattr(sio.os, "statvfs", lambda folder: _Statvfs(2**30))
        with pytest.raises(type(error)) as info:
            sio.to_netcdf_atomic(make_dataset(), tmp_path / "s.nc", direct=direct)
        assert info.value is error
        assert not list(tmp_path.iterdir())


def test_an_unwritable_folder_is_not_a_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(sio.os, "statvfs", lambda folder: _Statvfs(0))
    monkeypatch.setattr(sio.os, "access", lambda path, mode: False)
    assert not sio._disk_full(PermissionError(errno.EACCES, "Permission denied"), tmp_path)
    assert not sio._disk_full(FileNotFoundError(errno.ENOENT, "No such file or directory"), tmp_path)
    assert sio._disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"), tmp_path)
