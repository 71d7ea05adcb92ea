"""Reading FLIM files: the real samples of `make data`, synthetic TIFF and .npy files, damaged files,
and matching a decay to a model's time axis."""

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile

from flirtl.readers import CountsFileError, Decay, match_time_axis, read_decay

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
PTU = SAMPLES / "hazelnut_FLIM_single_image.ptu"
SDT = SAMPLES / "seminal_receptacle_FLIM_single_image.sdt"

COUNTS = np.random.default_rng(3).poisson(4.0, size=(5, 7, 24)).astype(np.uint16)  # (H, W, T)


def _sample(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path.relative_to(SAMPLES.parents[1])} is absent: `make data` fetches the samples")
    return path


@pytest.fixture(scope="module")
def ptu():
    return read_decay(_sample(PTU))


@pytest.fixture(scope="module")
def sdt():
    return read_decay(_sample(SDT))


def _names(error_info, path) -> None:
    assert repr(str(path)) in str(error_info.value), str(error_info.value)


# -- the real sample files -----------------------------------------------------------------------

def test_ptu_sample_is_histogrammed_over_one_laser_period(ptu):
    # 5 frames of 256 x 256 pixels, PicoHarp T3 records at 97 ps, 78.02 MHz laser: 132 bins per period
    assert ptu.counts.shape == (256, 256, 132) and ptu.counts.dtype == np.uint32
    assert ptu.dt == pytest.approx(0.09697, rel=1e-4)
    # 6,065,123 photons in the file, 269 of them timed beyond the laser period
    assert int(ptu.counts.sum()) == 6_064_854
    assert int(ptu.counts.reshape(-1, 132).sum(axis=0).argmax()) == 12
    assert "channel 0" in ptu.source and "5 frame(s) summed" in ptu.source


def test_ptu_frames_sum_to_the_whole(ptu):
    frames = [read_decay(PTU, frame=k).counts for k in range(5)]
    assert np.array_equal(np.sum(frames, axis=0, dtype=np.uint32), ptu.counts)


@pytest.mark.parametrize("options, message", [
    (dict(frame=5), r"frame must be an index in 0\.\.4, not 5"),
    (dict(channel=1), r"channel must be an index in 0\.\.0, not 1"),
    (dict(time_axis=0), "time_axis=0 does not apply"),
    (dict(dt=0.05), "records bins of 0.0969697 ns, not dt=0.05"),
])
def test_ptu_refuses_arguments_that_do_not_fit(options, message):
    with pytest.raises(CountsFileError, match=message) as info:
        read_decay(_sample(PTU), **options)
    _names(info, PTU)


def test_sdt_sample(sdt):
    # one SPC-160 image block: 512 x 512 pixels, 256 bins of 48.9 ps (50 ns TAC range / gain 4)
    assert sdt.counts.shape == (512, 512, 256) and sdt.counts.dtype == np.uint16
    assert sdt.dt == pytest.approx(0.048861, rel=1e-4)
    assert int(sdt.counts.sum(dtype=np.uint64)) == 19_409_541
    assert int(sdt.counts.reshape(-1, 256).sum(axis=0).argmax()) == 29
    assert read_decay(SDT, dt=0.04886).dt == sdt.dt  # a dt that agrees is accepted


@pytest.mark.parametrize("options, message", [
    (dict(frame=0), "frame=0 does not apply"),
    (dict(channel=2), r"channel must be an index in 0\.\.0"),
])
def test_sdt_refuses_arguments_that_do_not_fit(options, message):
    with pytest.raises(CountsFileError, match=message) as info:
        read_decay(_sample(SDT), **options)
    _names(info, SDT)


def test_sdt_bins_are_summed_in_pairs_for_a_twice_as_coarse_model(sdt):
    matched = match_time_axis(sdt, 128, 0.0977)
    assert matched.counts.shape == (512, 512, 128) and matched.counts.dtype == np.uint32
    assert matched.dt == pytest.approx(2 * sdt.dt)
    assert np.array_equal(matched.counts[100, 200], sdt.counts[100, 200].reshape(128, 2).sum(axis=1))
    assert int(matched.counts.sum()) == int(sdt.counts.sum(dtype=np.uint64))


def test_sdt_peak_is_placed_where_the_model_expects_it(sdt):
    """The Becker & Hickl sample records nothing in bins 0..11 and 246..255 (its TAC window is
    narrower than the file's): aligned, those bins are the pixel's background level, not zero."""
    with pytest.warns(UserWarning, match="pads 3 bin.*outside 12..245 hold no count in any pixel"):
        matched = match_time_axis(sdt, 200, sdt.dt, peak_bin=20)
    assert int(matched.counts.reshape(-1, 200).sum(axis=0).argmax()) == 20
    assert np.array_equal(matched.counts[..., 3:], sdt.counts[..., 12:209])
    recorded = sdt.counts[..., 12:246].astype(np.int64)
    level = np.rint(np.minimum(recorded[..., :4].sum(-1), recorded[..., -4:].sum(-1)) / 4)
    assert np.array_equal(matched.counts[..., :3], np.repeat(level[..., None], 3, axis=-1))


@pytest.mark.parametrize("fixture, n_bins, dt, message", [
    ("sdt", 135, 0.09, r"\(2\) spans 0.09772 ns, 8.6% from the model's 135 bins of 0.09 ns"),
    ("ptu", 135, 0.09, r"\(1\) spans 0.09697 ns, 7.7% from"),
    ("ptu", 256, 0.0489, "98.3% from"),
    ("ptu", 133, 0.097, "spans 132 bins of 0.09697 ns, shorter than the model's 133 bins"),
    ("sdt", 256, 0.04886, None),
])
def test_models_for_other_instruments_are_refused(request, fixture, n_bins, dt, message):
    decay = request.getfixturevalue(fixture)
    if message is None:
        assert match_time_axis(decay, n_bins, dt).counts.shape[-1] == n_bins
        return
    with pytest.raises(CountsFileError, match=message):
        match_time_axis(decay, n_bins, dt)


def test_alignment_pads_with_the_background_level(tmp_path):
    """A decay that peaks earlier than the model expects is padded in front with each pixel's own
    background level (the lesser end's mean), with a warning; one that peaks later is cropped."""
    t = np.arange(64)
    rng = np.random.default_rng(3)
    counts = (rng.poisson(3.0, (10, 64)) + (400 * np.exp(-np.abs(t - 6) / 4.0)).astype(int)).astype(np.uint16)
    decay = Decay(counts, 0.1, "test decay")
    with pytest.warns(UserWarning, match="peaks at bin 6; putting it at bin 20 of 48 pads 14 bin\\(s\\) before and 0 after"):
        matched = match_time_axis(decay, 48, 0.1, peak_bin=20)
    level = np.rint(np.minimum(counts[:, :4].sum(1), counts[:, -4:].sum(1)) / 4)
    assert matched.counts.shape == (10, 48) and matched.counts.dtype == np.uint16
    assert np.array_equal(matched.counts[:, :14], np.repeat(level[:, None], 14, axis=1))
    assert np.array_equal(matched.counts[:, 14:], counts[:, :34])
    assert int(matched.counts.sum(axis=0).argmax()) == 20
    with pytest.warns(UserWarning, match="pads 0 bin\\(s\\) before and 2 after"):
        assert match_time_axis(decay, 60, 0.1, peak_bin=0).counts.shape == (10, 60)
    with pytest.raises(CountsFileError, match="--peak-bin must be a bin of the model's window, 0..47, not 48"):
        match_time_axis(decay, 48, 0.1, peak_bin=48)


# -- the model's time axis -------------------------------------------------------------------------

@pytest.mark.parametrize("factor", [1, 2, 3, 5])
def test_rebinning_sums_whole_groups_of_bins(factor):
    decay = Decay(COUNTS, 0.05, "synthetic")
    n_bins = 24 // factor  # 5 leaves 4 bins at the end of the window, dropped
    matched = match_time_axis(decay, n_bins, 0.05 * factor * 1.004)  # within rtol
    expected = COUNTS[..., :n_bins * factor].reshape(5, 7, n_bins, factor).sum(axis=-1)
    assert matched.counts.dtype.kind == "u" and np.array_equal(matched.counts, expected)
    assert matched.dt == pytest.approx(0.05 * factor)


# -- TIFF and .npy ---------------------------------------------------------------------------------

def test_tiff_pages_are_time_bins_by_default(tmp_path):
    path = tmp_path / "gates.tif"
    tifffile.imwrite(path, np.moveaxis(COUNTS, -1, 0))  # T pages of H x W
    decay = read_decay(path, dt=0.09)
    assert np.array_equal(decay.counts, COUNTS) and decay.dt == 0.09
    assert read_decay(path).dt is None


def test_tiff_with_time_last(tmp_path):
    path = tmp_path / "cube.tiff"
    tifffile.imwrite(path, COUNTS)
    assert np.array_equal(read_decay(path, time_axis=-1).counts, COUNTS)


def _ome_lifetime_tiff(path, step_ps=None):
    """An OME-TIFF with a lifetime Modulo axis, as FLIM software writes them; tifffile writes no Step."""
    stack = np.moveaxis(COUNTS, -1, 0)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, stack, metadata={"axes": "HYX"}, ome=True)
    with tifffile.TiffFile(io.BytesIO(buffer.getvalue())) as tiff:
        xml = tiff.ome_metadata
    if step_ps is not None:
        modulo = f'Type="lifetime" Start="0" End="{len(stack) - 1}"'
        assert modulo in xml
        xml = xml.replace(modulo, f'Type="lifetime" Start="0" Step="{step_ps}" '
                                  f'End="{(len(stack) - 1) * step_ps}" Unit="ps"')
    tifffile.imwrite(path, stack, description=xml, metadata=None)


def test_ome_tiff_lifetime_axis_and_step(tmp_path):
    path = tmp_path / "flim.ome.tif"
    _ome_lifetime_tiff(path, step_ps=90)
    decay = read_decay(path)
    assert np.array_equal(decay.counts, COUNTS) and decay.dt == pytest.approx(0.09)
    assert "OME lifetime axis" in decay.source
    with pytest.raises(CountsFileError, match="records bins of 0.09 ns, not dt=0.1"):
        read_decay(path, dt=0.1)
    with pytest.raises(CountsFileError, match="names its lifetime axis"):
        read_decay(path, time_axis=0)
    plain = tmp_path / "nostep.ome.tif"
    _ome_lifetime_tiff(plain)
    assert read_decay(plain).dt is None and read_decay(plain, dt=0.2).dt == 0.2


def test_npy_round_trip_and_unknown_bin_width(tmp_path):
    path = tmp_path / "counts.npy"
    np.save(path, COUNTS.reshape(-1, 24))
    decay = read_decay(path)
    assert decay.dt is None and np.array_equal(decay.counts, COUNTS.reshape(-1, 24))
    # unknown bin width: refused, even where T agrees (a guessed bin width is a wrong lifetime)
    for n_bins, dt in ((24, 0.09), (12, 0.18)):
        with pytest.raises(CountsFileError, match="24 time bins of unrecorded width.*--dt NS"):
            match_time_axis(decay, n_bins, dt)
    assert match_time_axis(read_decay(path, dt=0.09), 24, 0.09).dt == 0.09
    assert match_time_axis(read_decay(path, dt=0.09), 12, 0.18).counts.shape == (35, 12)
    np.save(path, np.moveaxis(COUNTS, -1, 0))
    assert np.array_equal(read_decay(path, time_axis=0).counts, COUNTS)


def test_whole_number_floats_are_checked_and_stay_mapped(tmp_path):
    """A float .npy streams like an integer one: checked piece by piece, never copied whole."""
    path = tmp_path / "float.npy"
    np.save(path, COUNTS.astype(np.float32))
    decay = read_decay(path)
    assert isinstance(decay.counts, np.memmap) and np.array_equal(decay.counts, COUNTS)
    broken = COUNTS.astype(np.float32)
    broken[-1, -1, -1] = 0.5  # in the last piece checked
    np.save(path, broken)
    with pytest.raises(CountsFileError, match="integer photon counts, found 0.5"):
        read_decay(path)


def test_multiple_tiff_series_are_refused(tmp_path):
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(np.moveaxis(COUNTS, -1, 0))
        tiff.write(np.zeros((3, 8, 8), np.uint16), photometric="minisblack")
    with pytest.raises(CountsFileError, match="holds 2 image series") as info:
        read_decay(path)
    _names(info, path)


def test_decay_is_checked():
    with pytest.raises(ValueError, match="counts must be integers"):
        Decay(np.zeros((2, 8)), 0.1, "x")
    with pytest.raises(ValueError, match="dt must be a positive number"):
        Decay(np.zeros((2, 8), np.uint16), 0.0, "x")


# -- bad files: each error names the file ----------------------------------------------------------

def _write_npy(values):
    return lambda path: np.save(path, values)


def _write_tiff(values):
    return lambda path: tifffile.imwrite(path, values, photometric="minisblack")


def _truncated(write, keep):
    def writer(path):
        write(path)
        path.write_bytes(path.read_bytes()[:keep])
    return writer


@pytest.mark.parametrize("name, write, options, error, message", [
    ("missing.sdt", None, {}, FileNotFoundError, "does not exist"),
    ("counts.csv", lambda p: p.write_text("1,2\n"), {}, CountsFileError,
     r"unknown extension '\.csv'; flirtl reads \.sdt"),
    ("noext", lambda p: p.write_bytes(b"\x00" * 64), {}, CountsFileError, "unknown extension ''"),
    ("empty.sdt", lambda p: p.touch(), {}, CountsFileError, "is empty"),
    ("empty.ptu", lambda p: p.touch(), {}, CountsFileError, "is empty"),
    ("empty.tif", lambda p: p.touch(), {}, CountsFileError, "is empty"),
    ("empty.npy", lambda p: p.touch(), {}, CountsFileError, "is empty"),
    ("garbage.sdt", lambda p: p.write_bytes(bytes(range(256)) * 8), {}, CountsFileError,
     "not a readable Becker & Hickl SDT file"),
    ("garbage.ptu", lambda p: p.write_bytes(bytes(range(256)) * 8), {}, CountsFileError,
     "not a readable PicoQuant PTU file"),
    ("garbage.tif", lambda p: p.write_bytes(bytes(range(256)) * 8), {}, CountsFileError,
     "not a readable TIFF file"),
    ("garbage.npy", lambda p: p.write_bytes(bytes(range(256)) * 8), {}, CountsFileError,
     "not a readable NumPy .npy file"),
    ("cut.tif", _truncated(_write_tiff(np.moveaxis(COUNTS, -1, 0)), 1000), {}, CountsFileError,
     "not a readable TIFF file"),
    ("cut.npy", _truncated(_write_npy(COUNTS), 1000), {}, CountsFileError,
     "not a readable NumPy .npy file .*(not fully written|greater than file size)"),
    ("pickle.npy", _write_npy(np.array([{"a": 1}], dtype=object)), {}, CountsFileError,
     "not a readable NumPy .npy file"),
    ("flat.npy", _write_npy(COUNTS[0, 0]), {}, CountsFileError,
     r"shape \(24,\); counts must have shape \(N, T\) or \(H, W, T\)"),
    ("4d.tif", _write_tiff(np.ones((4, 2, 3, 8, 8), np.uint16)), {}, CountsFileError,
     r"shape \(2, 3, 8, 8, 4\)"),
    ("negative.npy", _write_npy(-COUNTS.astype(np.int32)), {}, CountsFileError, "non-negative"),
    ("fraction.npy", _write_npy(COUNTS + 0.5), {}, CountsFileError, "integer photon counts"),
    ("nan.tif", _write_tiff(np.full((4, 8, 8), np.nan, np.float32)), {}, CountsFileError, "NaN"),
    ("chan.npy", _write_npy(COUNTS), dict(channel=0), CountsFileError, "channel=0 does not apply"),
    ("axis.npy", _write_npy(COUNTS), dict(time_axis=3), CountsFileError, "time_axis 3 is not an axis"),
    ("dt.npy", _write_npy(COUNTS), dict(dt=-1.0), CountsFileError, "dt must be a positive number"),
])
def test_bad_files_are_named(tmp_path, name, write, options, error, message):
    path = tmp_path / name
    if write is not None:
        write(path)
    with pytest.raises(error, match=message) as info:
        read_decay(path, **options)
    _names(info, path)


def test_directory_is_refused(tmp_path):
    with pytest.raises(CountsFileError, match="is not a file") as info:
        read_decay(tmp_path)
    _names(info, tmp_path)


def _damaged(source: Path, path: Path, *, keep=None, overwrite=None):
    data = bytearray(_sample(source).read_bytes())
    if overwrite is not None:
        offset, junk = overwrite
        data[offset:offset + len(junk)] = junk
    path.write_bytes(bytes(data[:keep]))


@pytest.mark.parametrize("source, damage, message", [
    (PTU, dict(keep=100), "not a readable PicoQuant PTU file .*tag corrupted"),
    (PTU, dict(keep=1_000_000), "is truncated: its header announces 6070158 photon records, "
                                "the file holds 248846"),
    (PTU, dict(overwrite=(0, b"NOTAPTU!")), "not a readable PicoQuant PTU file .*not a PtuFile"),
    (PTU, dict(overwrite=(2000, b"\xff" * 100)), "not a readable PicoQuant PTU file"),
    (SDT, dict(keep=100), "not a readable Becker & Hickl SDT file"),
    (SDT, dict(keep=1_000_000), "not a readable Becker & Hickl SDT file .*BadZipFile"),
    (SDT, dict(overwrite=(5_000_000, b"\x00" * 100)), "not a readable Becker & Hickl SDT file .*CRC"),
    (SDT, dict(overwrite=(0, b"\xff" * 16)), "not a readable Becker & Hickl SDT file"),
])
def test_damaged_samples_are_named(tmp_path, source, damage, message):
    path = tmp_path / ("damaged" + source.suffix)
    _damaged(source, path, **damage)
    with pytest.raises(CountsFileError, match=message) as info:
        read_decay(path)
    _names(info, path)
    assert len(str(info.value)) < 400, "a library message quoting damaged bytes is shortened"


def test_errors_are_value_errors():
    # the `flirtl` command reports a ValueError as a one-line error, not a traceback
    assert issubclass(CountsFileError, ValueError)
