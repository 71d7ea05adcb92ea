"""`infer_file`: a FLIM file to maps in blocks, the SFD streamed into the .npz, pictures beside it."""

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from flirtl.infer import infer, infer_file
from flirtl.quant import quantize_model

sys.path.insert(0, str(Path(__file__).parent))
from golden_util import random_counts, random_weights  # noqa: E402

T = 30


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    quantize_model(random_weights(8, seed=2), 8, n_bins=T)[0].save(directory)
    return directory


def image(height, width, seed=0):
    return random_counts(height * width, T, seed=seed).reshape(height, width, T).astype(np.uint16)


def test_blocks_give_the_in_memory_maps(tmp_path, model_dir):
    counts = image(9, 7)
    np.save(tmp_path / "frame.npy", counts)
    # 10-pixel blocks: one row of 7 per block, the last block a part of the frame
    done = infer_file(tmp_path / "frame.npy", model_dir, tmp_path / "maps.npz", block_pixels=10, dt="model")
    whole = infer(counts, model_dir)
    with np.load(tmp_path / "maps.npz") as maps:
        assert set(maps.files) == {"tau1", "tau2", "a", "tau_mean", "intensity", "sfd"}
        for name, value in whole.items():
            np.testing.assert_array_equal(maps[name], value, err_msg=name)
        assert maps["intensity"].shape == (9, 7) and maps["intensity"].max() > 0
    assert done["pixels"] == 63 and "NumPy .npy" in done["source"]
    assert (tmp_path / "maps.png").read_bytes()[:4] == b"\x89PNG"
    assert "# Lifetime maps" in (tmp_path / "maps.md").read_text()


def test_pixel_list_without_sfd_or_pictures(tmp_path, model_dir):
    np.save(tmp_path / "pixels.npy", random_counts(50, T, seed=3))
    infer_file(tmp_path / "pixels.npy", model_dir, tmp_path / "out.npz", sfd=False, pictures=False, dt="model",
               block_pixels=16)
    with np.load(tmp_path / "out.npz") as maps:
        assert "sfd" not in maps.files and maps["tau_mean"].shape == (50,)
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.md").exists()


def test_the_sfd_streams_block_by_block(tmp_path, model_dir):
    """Peak memory stays a few blocks' worth while the frame's SFD is 16x larger than a block's."""
    counts = image(256, 256, seed=4)
    np.save(tmp_path / "frame.npy", counts)
    del counts
    sfd_bytes = 256 * 256 * T * 3 * 4
    tracemalloc.start()
    infer_file(tmp_path / "frame.npy", model_dir, tmp_path / "maps.npz", block_pixels=512, pictures=False, dt="model")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < sfd_bytes / 4, (peak, sfd_bytes)
    with np.load(tmp_path / "maps.npz") as maps:
        assert maps["sfd"].shape == (256, 256, T, 3)


def test_a_failure_writes_nothing(tmp_path, model_dir):
    counts = image(6, 6)
    bad = counts.astype(np.int32)
    bad[5, 5, 4] = 70000  # the last block goes over the IP's 16-bit input
    np.save(tmp_path / "frame.npy", bad)
    with pytest.raises(ValueError, match="beyond the IP's 16-bit input"):
        infer_file(tmp_path / "frame.npy", model_dir, tmp_path / "maps.npz", block_pixels=6, dt="model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.npy"]


def test_refusals_name_the_problem(tmp_path, model_dir):
    np.save(tmp_path / "frame.npy", image(2, 2))
    with pytest.raises(ValueError, match=r"must name a \.npz"):
        infer_file(tmp_path / "frame.npy", model_dir, tmp_path / "maps.txt")
    with pytest.raises(FileNotFoundError, match="output directory"):
        infer_file(tmp_path / "frame.npy", model_dir, tmp_path / "nowhere" / "maps.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no 8-bit codes .* and no float_weights.npz"):
        infer_file(tmp_path / "frame.npy", tmp_path / "empty", tmp_path / "maps.npz")
    assert not (tmp_path / "maps.npz").exists()


def test_pictures_keep_every_part_of_the_output_name(tmp_path, model_dir):
    np.save(tmp_path / "frame.npy", image(3, 3))
    for run in ("first", "second"):  # two runs into one directory: neither overwrites the other's pictures
        done = infer_file(tmp_path / "frame.npy", model_dir, tmp_path / f"maps.{run}.npz", dt="model")
        assert [p.name for p in done["files"]] == [f"maps.{run}.npz", f"maps.{run}.png", f"maps.{run}.md"]


def test_float_engine_on_a_quantization_aware_model_warns():
    """The shipped QAT model's float masters are not what it was trained to run: the user is told."""
    counts = random_counts(4, 135, seed=1)
    with pytest.warns(UserWarning, match="quantization-aware.*--engine golden"):
        values = infer(counts, "models/seq2seqlite-32x32", engine="float")
    assert np.all(np.isfinite(values["tau_mean"]))


def test_signal_in_the_background_bins_is_warned(tmp_path, model_dir):
    """A decay already risen in the head bins, read by a model that takes its background there,
    gets a one-line warning naming the fix (through the real command line); the same decay later
    in the window does not."""
    import subprocess

    t = np.arange(T)
    early = (5 + 300 * np.exp(-t / 6.0)).astype(np.uint16) * np.ones((4, 1), np.uint16)
    np.save(tmp_path / "early.npy", early)
    np.save(tmp_path / "late.npy", np.roll(early, 12, axis=1))
    for name, warned in (("early", True), ("late", False)):
        result = subprocess.run([sys.executable, "-m", "flirtl", "infer", str(tmp_path / f"{name}.npy"),
                                 "--model", str(model_dir), "--dt", "model", "-o", str(tmp_path / f"{name}.npz"),
                                 "--quiet", "--no-pictures"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("flirtl: warning:")]
        assert len(lines) == (1 if warned else 0), result.stderr
        if warned:
            assert "first 4 bins, which this model takes as background" in lines[0] and "'ends'" in lines[0]
