"""Student training: a tiny run writes a complete model directory, resumes, and is reproducible."""

import argparse
import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from flirtl.golden import GoldenModel
from flirtl.nn import data
from flirtl.nn.config import TrainConfig, command_line
from flirtl.fli import lifetimes_from_sfd, simulate, tau_from_ratio
from flirtl.nn.loop import (epoch_generator, epoch_order, lifetime_loss, lifetime_terms, photon_floor,
                             train_student, training_loss)
from flirtl.nn.train import add_train_parser, config_from_args, main
from flirtl.quant import QuantizedModel

MODEL_FILES = ("float_weights.npz", "config.json", "spec.json", "weights.npz", "history.json",
               "metrics.json", "model_card.md")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One simulation cache for the whole module: each split is simulated once."""
    return tmp_path_factory.mktemp("data")


def tiny(tmp_path, cache_dir, name="tiny", **changes) -> TrainConfig:
    fields = dict(hidden=8, n_train=256, n_val=64, n_test=128, batch=64, max_epochs=1, seed=3,
                  out=str(tmp_path / "models" / name), checkpoint_dir=str(tmp_path / "ckpt"),
                  data_dir=str(cache_dir), device="cpu", threads=1)
    fields.update(changes)
    return TrainConfig(**fields)


def float_weights(path) -> dict:
    with np.load(path / "float_weights.npz") as archive:
        return {name: archive[name] for name in archive.files}


def checkpoint(config: TrainConfig) -> dict:
    return torch.load(config.checkpoint_path, map_location="cpu", weights_only=False)


def test_tiny_run_writes_model_directory(tmp_path, cache_dir):
    config = tiny(tmp_path, cache_dir, max_epochs=2)
    out = train_student(config, progress=False)
    for name in MODEL_FILES:
        assert (out / name).is_file(), name
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["hidden"] == 8 and saved["model"] == {"hidden": 8, "layers": 1, "n_bins": 135, "decoder_input": "zeros"}
    assert saved["data"]["test"]["seed"] == data.split_seed(3, "test")
    assert [row["epoch"] for row in json.loads((out / "history.json").read_text())] == [1, 2]

    model = QuantizedModel.load(out)
    assert model.spec.hidden == 8 and model.spec.bits == 8 and model.spec.dt == 0.09
    counts = data.simulated("ss3", n=16, seed=data.split_seed(3, "test"), cache_dir=cache_dir,
                            progress=False)["counts"]
    result = GoldenModel(model).run(counts, threads=1)
    assert result.sfd.shape == (16, 135, 3)

    card = (out / "model_card.md").read_text()
    assert "no knowledge distillation" in card.lower() and "PTQ" in card
    assert command_line(config) in card
    assert "RMSE ch0" in card and "saturated" in card
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"float_val", "float_test", "golden_test", "test_by_photons"}
    assert 0 < metrics["golden_test"]["rmse_ch0"] < 1
    assert sum(row["pixels"] for row in metrics["test_by_photons"]) == config.n_test


def test_photon_curriculum_admits_dimmer_pixels_epoch_by_epoch(tmp_path, cache_dir):
    config = tiny(tmp_path, cache_dir, curriculum=4)
    lo, hi = config.instrument().photons_range
    floors = [photon_floor(config, epoch) for epoch in range(1, 6)]
    assert floors[0] == pytest.approx(hi * (lo / hi) ** 0.25) and floors[2] == pytest.approx(hi * (lo / hi) ** 0.75)
    assert floors[0] > floors[1] > floors[2] > lo and floors[3:] == [0.0, 0.0]
    assert photon_floor(tiny(tmp_path, cache_dir), 1) == 0.0  # no curriculum: every pixel

    train = data.split_tensors("ss3", n=256, seed=3, split="train", cache_dir=cache_dir, progress=False)
    plain = epoch_order(train, tiny(tmp_path, cache_dir), 1)
    first = epoch_order(train, config, 1)
    # the bright pixels of the same permutation, in its order
    assert torch.equal(first, plain[train.photons[plain] >= floors[0]]) and 0 < len(first) < len(train) / 2
    assert torch.equal(epoch_order(train, config, 4), epoch_order(train, tiny(tmp_path, cache_dir), 4))

    out = train_student(tiny(tmp_path, cache_dir, name="curriculum", curriculum=2, max_epochs=2), progress=False)
    assert "photon curriculum: epoch e < 2" in (out / "model_card.md").read_text()
    with pytest.raises(ValueError, match="curriculum must be an int >= 0"):
        tiny(tmp_path, cache_dir, curriculum=-1)


def test_photon_weight_draws_bright_pixels_more_often(tmp_path, cache_dir):
    train = data.split_tensors("ss3", n=256, seed=3, split="train", cache_dir=cache_dir, progress=False)
    config = tiny(tmp_path, cache_dir, photon_weight=1.0)
    order = epoch_order(train, config, 1)
    assert len(order) == len(train) and torch.equal(order, epoch_order(train, config, 1))
    assert not torch.equal(order, epoch_order(train, config, 2))  # a fresh draw each epoch
    # photons are log-uniform over 50..10000: weighting by photons lifts the drawn mean well above
    assert train.photons[order].mean() > 1.5 * train.photons.mean()

    out = train_student(tiny(tmp_path, cache_dir, name="weighted", photon_weight=0.5), progress=False)
    assert "probability ~ photons^0.5" in (out / "model_card.md").read_text()
    with pytest.raises(ValueError, match="photon_weight must lie in"):
        tiny(tmp_path, cache_dir, photon_weight=-1)


def test_resume_continues_at_next_epoch(tmp_path, cache_dir):
    config = tiny(tmp_path, cache_dir, name="resumed")
    train_student(config, progress=False)
    assert checkpoint(config)["epoch"] == 1
    resumed = tiny(tmp_path, cache_dir, name="resumed", max_epochs=3)
    out = train_student(resumed, progress=False)
    state = checkpoint(resumed)
    assert state["epoch"] == 3
    threads = torch.get_num_threads()
    assert state["sessions"] == [{"first_epoch": 1, "last_epoch": 1, "device": "cpu", "threads": threads},
                                 {"first_epoch": 2, "last_epoch": 3, "device": "cpu", "threads": threads}]
    # each run's pace and device, read off the history: a resumed run may move to a GPU
    second = sum(row["seconds"] for row in state["history"][1:]) / 2
    assert re.search(rf"epochs 1-1: [0-9.]+ s per epoch on cpu, {threads} thread\(s\); "
                     rf"epochs 2-3: {second:.1f} s per epoch on cpu",
                     (out / "model_card.md").read_text())

    # the interrupted run ends where an uninterrupted one does
    straight = train_student(tiny(tmp_path, cache_dir, name="straight", max_epochs=3), progress=False)
    for name, value in float_weights(straight).items():
        np.testing.assert_array_equal(float_weights(out)[name], value, err_msg=name)


def test_resume_refuses_a_different_run(tmp_path, cache_dir):
    train_student(tiny(tmp_path, cache_dir), progress=False)
    with pytest.raises(ValueError, match=r"lr: 0.001 -> 0.01"):
        train_student(tiny(tmp_path, cache_dir, lr=1e-2), progress=False)
    train_student(tiny(tmp_path, cache_dir, lr=1e-2), fresh=True, progress=False)
    assert checkpoint(tiny(tmp_path, cache_dir))["config"]["lr"] == 1e-2


def test_same_seed_same_model(tmp_path, cache_dir):
    first = train_student(tiny(tmp_path, cache_dir, name="a"), progress=False)
    second = train_student(tiny(tmp_path, cache_dir, name="b"), progress=False)
    other = train_student(tiny(tmp_path, cache_dir, name="c", seed=4), progress=False)
    for name, value in float_weights(first).items():
        np.testing.assert_array_equal(float_weights(second)[name], value, err_msg=name)
    assert not np.array_equal(float_weights(other)["enc.w_hh"], float_weights(first)["enc.w_hh"])
    assert (QuantizedModel.load(first).codes["dec.w_hh"] == QuantizedModel.load(second).codes["dec.w_hh"]).all()


def test_kd_needs_a_teacher(tmp_path, cache_dir):
    with pytest.raises(ValueError, match="--teacher"):
        tiny(tmp_path, cache_dir, kd_alpha=0.6)
    with pytest.raises(ValueError, match="not a model directory"):
        tiny(tmp_path, cache_dir, kd_alpha=0.6, teacher=str(tmp_path))


def test_loss_hook_is_used(tmp_path, cache_dir):
    calls = []

    def loss_fn(pred, target, teacher):
        calls.append((pred.shape, teacher))
        return torch.nn.functional.l1_loss(pred, target)

    train_student(tiny(tmp_path, cache_dir), loss_fn=loss_fn, progress=False)
    assert calls == [((64, 135, 3), None)] * 4


def test_teacher_then_distilled_qat_student(tmp_path, cache_dir):
    """The whole compression chain on a toy scale: a 2-layer teacher, a float student, a distilled
    QAT student from it; the QAT model's forward pass equals the golden model on every test beat."""
    teacher = train_student(tiny(tmp_path, cache_dir, name="teacher", layers=2), progress=False)
    assert not (teacher / "spec.json").exists()  # a teacher is not for the IP
    assert "Teacher: 2 x GRU(8)" in (teacher / "model_card.md").read_text()
    student = train_student(tiny(tmp_path, cache_dir, name="float"), progress=False)
    config = tiny(tmp_path, cache_dir, name="qat", qat=True, init=str(student), teacher=str(teacher),
                  kd_alpha=0.5, bits=6, hidden_bits=8, lr=1e-4)
    out = train_student(config, progress=False)
    metrics = json.loads((out / "metrics.json").read_text())
    check = metrics["qat_vs_golden"]
    assert check["beats"] == config.n_test * 135 and check["identical_beats"] == check["beats"]
    spec = QuantizedModel.load(out).spec
    assert spec.fmt("hidden").width == 8 and spec.fmt("enc.w_hh").width == 6
    card = (out / "model_card.md").read_text()
    assert "6-bit QAT + KD" in card and "0.5 x MSE(student, teacher)" in card
    assert len(list((cache_dir / "teacher").glob("*.npz"))) == 1  # the teacher ran once
    with pytest.raises(ValueError, match="trained for another instrument"):
        tiny(tmp_path, cache_dir, name="other", preset="tcspc256", teacher=str(teacher), kd_alpha=0.5)
    # resuming QAT rebuilds the formats it trained in
    more = train_student(tiny(tmp_path, cache_dir, name="qat", qat=True, init=str(student),
                              teacher=str(teacher), kd_alpha=0.5, bits=6, hidden_bits=8, lr=1e-4,
                              max_epochs=2), progress=False)
    assert QuantizedModel.load(more).spec == spec


def test_hint_distillation_trains_the_student_and_a_map_to_the_teacher_state(tmp_path, cache_dir):
    """--kd-hidden adds MSE(P h_student, h_teacher) on the encoders' final states: the student's
    weights move differently than without it, the map P is checkpointed for a resume and is not
    part of the model directory, and the QAT path still equals the golden model."""
    teacher = train_student(tiny(tmp_path, cache_dir, name="teacher", layers=2, hidden=12), progress=False)
    student = train_student(tiny(tmp_path, cache_dir, name="float"), progress=False)
    common = dict(qat=True, init=str(student), teacher=str(teacher), kd_alpha=0.5, lr=1e-3)
    plain = train_student(tiny(tmp_path, cache_dir, name="kd", **common), progress=False)
    config = tiny(tmp_path, cache_dir, name="hint", kd_hidden=1.0, **common)
    hinted = train_student(config, progress=False)
    saved = checkpoint(config)["model"]
    assert saved["hint.weight"].shape == (12, 8) and "student.master.enc_w_hh" in saved
    assert set(float_weights(hinted)) == set(float_weights(plain))
    assert any(not np.array_equal(float_weights(hinted)[k], float_weights(plain)[k]) for k in float_weights(plain))
    metrics = json.loads((hinted / "metrics.json").read_text())["qat_vs_golden"]
    assert metrics["identical_beats"] == metrics["beats"]
    assert "0.5 x MSE(student, teacher)" in (hinted / "model_card.md").read_text()
    assert "1 x MSE(P h_student, h_teacher)" in (hinted / "model_card.md").read_text()
    more = tiny(tmp_path, cache_dir, name="hint", kd_hidden=1.0, max_epochs=2, **common)
    train_student(more, progress=False)
    assert checkpoint(more)["epoch"] == 2  # resumed with its map
    with pytest.raises(ValueError, match="kd_hidden"):
        tiny(tmp_path, cache_dir, kd_hidden=1.0)  # no teacher
    with pytest.raises(ValueError, match="kd_hidden"):
        tiny(tmp_path, cache_dir, kd_hidden=-1.0, teacher=str(teacher))


def test_lifetime_terms_are_the_ips_reading_of_an_sfd():
    """dt * R per component maps through tau_from_ratio onto exactly the lifetimes the float
    extraction reads (mono pixels included: the absent component takes the other's), and a is
    the same; the loss is zero on the truth and grows with a stretched decay."""
    sim = simulate("ss3", n=300, seed=5, progress=False)
    dt = float(sim["dt"])
    terms = {k: v.numpy().astype(np.float64) for k, v in lifetime_terms(torch.from_numpy(sim["sfd"]), dt=dt).items()}
    reference = lifetimes_from_sfd(sim["sfd"], dt=dt)
    assert (sim["a"] >= 1).any()
    for name in ("tau1", "tau2"):
        tau = dt * tau_from_ratio(terms[name] / dt, n_bins=135)
        np.testing.assert_allclose(tau, reference[name], rtol=2e-4, atol=1e-4)
        assert 0 < np.median(terms[name] - reference[name]) < dt  # dt*R = tau + dt/2 inside the window
    np.testing.assert_allclose(terms["a"], reference["a"], atol=1e-6)

    target = torch.from_numpy(sim["sfd"])
    loss = lifetime_loss(dt=dt)
    assert float(loss(target, target, None)) == 0.0
    longer = target.clone()
    longer[..., 1:] = target[..., 1:] ** 0.8  # every lifetime 25% longer
    pred = longer.clone().requires_grad_()
    value = loss(pred, target, None)
    value.backward()
    assert value.item() > 0.05 and float(pred.grad.abs().sum()) > 0


def test_lifetime_weight_adds_the_lifetime_term(tmp_path, cache_dir):
    sim = simulate("ss3", n=64, seed=6, progress=False)
    target = torch.from_numpy(sim["sfd"])
    pred = target * 0.9 + 0.01
    plain = training_loss(tiny(tmp_path, cache_dir))(pred, target, None)
    weighted = training_loss(tiny(tmp_path, cache_dir, lifetime_weight=0.5))(pred, target, None)
    expected = plain + 0.5 * lifetime_loss(dt=0.09)(pred, target, None)
    assert float(weighted) == pytest.approx(float(expected)) and float(weighted) > float(plain)
    with pytest.raises(ValueError, match="lifetime_weight"):
        tiny(tmp_path, cache_dir, lifetime_weight=-1.0)
    # the run's history records the validation lifetimes' term that picks its best epoch
    out = train_student(tiny(tmp_path, cache_dir, name="lifetimes", lifetime_weight=0.5), progress=False)
    row = json.loads((out / "history.json").read_text())[0]
    assert row["val_lifetimes"] > 0
    assert "0.5 x the lifetimes' error" in (out / "model_card.md").read_text()


@pytest.mark.parametrize("changes", [{}, {"qat": True, "hidden_bits": 6, "kd_alpha": 0.25, "kd_hidden": 0.5,
                                           "teacher": "models/seq2seqlite-32x32-float", "lifetime_weight": 0.02},
                                      {"preset": "tcspc256", "bins": 132, "dt": 0.097, "irf_position": (1.1, 1.4)}])
def test_command_line_round_trip(changes):
    config = TrainConfig(hidden=16, n_train=1234, lr=3e-4, max_minutes=2.5, threads=1, seed=7, **changes)
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    words = command_line(config).split()
    assert words[:4] == ["python", "-m", "flirtl.nn.train", "student"]
    args = parser.parse_args(words[3:])
    assert config_from_args(args) == config and args.func.__name__ == "main_train"


def test_module_entry_point_trains(tmp_path, cache_dir, capsys):
    config = tiny(tmp_path, cache_dir, name="cli")
    assert main(command_line(config).split()[3:] + ["--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == config.out
    assert json.loads((tmp_path / "models" / "cli" / "config.json").read_text())["command"] == command_line(config)


def test_config_checks():
    with pytest.raises(ValueError, match="hidden"):
        TrainConfig(hidden=0)
    with pytest.raises(ValueError, match="kd_alpha"):
        TrainConfig(kd_alpha=1.5)
    with pytest.raises(ValueError, match="preset"):
        TrainConfig(preset="nope")


def test_epoch_order_depends_on_seed_and_epoch_only():
    order = lambda seed, epoch: torch.randperm(100, generator=epoch_generator(seed, epoch))
    assert torch.equal(order(1, 5), order(1, 5))
    assert not torch.equal(order(1, 5), order(1, 6)) and not torch.equal(order(1, 5), order(2, 5))


def test_split_seeds_are_distinct():
    seeds = {data.split_seed(seed, split) for seed in range(5) for split in data.SPLITS}
    assert len(seeds) == 15 and min(seeds) > 1000
    with pytest.raises(ValueError, match="split"):
        data.split_seed(1, "training")


def test_cache_serves_reruns_and_prefixes(tmp_path):
    big = data.simulated("ss3", n=1500, seed=11, cache_dir=tmp_path, progress=False)
    path = data.cache_path(tmp_path, "ss3", 1500, 11)
    assert path.is_file()
    stamp = path.stat().st_mtime_ns
    again = data.simulated("ss3", n=1500, seed=11, cache_dir=tmp_path, progress=False)
    small = data.simulated("ss3", n=700, seed=11, cache_dir=tmp_path, progress=False)
    assert path.stat().st_mtime_ns == stamp
    assert not data.cache_path(tmp_path, "ss3", 700, 11).exists()  # served from the larger file
    fresh = data.simulated("ss3", n=700, seed=11, cache_dir=None, progress=False)
    for key in data.CACHED_KEYS:
        np.testing.assert_array_equal(again[key], big[key])
        np.testing.assert_array_equal(small[key], fresh[key])
    assert small["tpsf"].dtype == np.float32 and small["sfd"].shape == (700, 135, 3)
    assert small["dt"] == 0.09 and small["n_bins"] == 135


def test_cache_written_by_other_simulator_code_is_stale(tmp_path, monkeypatch):
    data.simulated("ss3", n=300, seed=12, cache_dir=tmp_path, progress=False)
    path = data.cache_path(tmp_path, "ss3", 300, 12)
    stamp = path.stat().st_mtime_ns
    with np.load(path) as archive:
        assert str(archive["simulator"]) == data.simulator_digest()
    monkeypatch.setattr(data, "simulator_digest", lambda: "edited-simulator")
    data.simulated("ss3", n=300, seed=12, cache_dir=tmp_path, progress=False)
    assert path.stat().st_mtime_ns != stamp  # simulated again and rewritten
    with np.load(path) as archive:
        assert str(archive["simulator"]) == "edited-simulator"


def test_torchrun_trains_with_two_processes(tmp_path, cache_dir):
    """The multi-process path (torchrun, gloo on CPU): two processes share every batch and one
    model directory comes out, as a single process would write it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    config = tiny(tmp_path, cache_dir, name="ddp", max_epochs=2)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "flirtl.nn.train",
                             *command_line(config).split()[3:], "--no-progress"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "; 2 processes" in result.stderr
    assert result.stderr.count("epoch   2") == 1  # the leader alone reports
    out = Path(config.out)
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2] and np.isfinite(history[-1]["train_loss"])
    assert QuantizedModel.load(out).spec.hidden == 8
    # half a batch each, gradients averaged: the weights one process reaches on whole batches
    single = train_student(tiny(tmp_path, cache_dir, name="single", max_epochs=2), progress=False)
    for name, value in float_weights(single).items():
        np.testing.assert_allclose(float_weights(out)[name], value, rtol=1e-4, atol=1e-6, err_msg=name)


def test_training_for_a_new_instrument(tmp_path, cache_dir):
    """--bins, --dt and a measured IRF: the data, the model's time axis and the card follow them,
    and the cache keeps them apart from the preset's data."""
    t = np.arange(64) * 0.05
    irf = np.exp(-0.5 * ((t - 0.6) / 0.08) ** 2)
    np.save(tmp_path / "irf.npy", irf)
    config = tiny(tmp_path, cache_dir, name="mine", preset="tcspc256", bins=64, dt=0.05,
                  irf=str(tmp_path / "irf.npy"))
    out = train_student(config, progress=False)
    spec = QuantizedModel.load(out).spec
    assert spec.n_bins == 64 and spec.dt == 0.05
    assert f"measured IRF `{tmp_path / 'irf.npy'}`" in (out / "model_card.md").read_text()
    # the directory carries its IRF: the instrument is recovered after the user's file is gone
    key = config.source().key
    (tmp_path / "irf.npy").unlink()
    assert data.trained_source(out).key == key and data.trained_source(out).irf.shape == (64,)
    names = [p.name for p in (cache_dir / "sim").iterdir() if p.name.startswith("tcspc256")]
    assert names and all(name.startswith("tcspc256-") and len(name.split("-")[1]) == 10 for name in names)
    # a window whose early bins the preset's IRF range would reach: refused, then placed by --irf-position
    with pytest.raises(ValueError, match="inside the 4 background bins"):
        tiny(tmp_path, cache_dir, preset="tcspc256", bins=40, dt=0.097)
    moved = tiny(tmp_path, cache_dir, preset="tcspc256", bins=40, dt=0.097, irf_position=(1.1, 1.4))
    assert moved.instrument().irf_position_range == (1.1, 1.4)
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "config.json").write_text(json.dumps({"train": dataclasses.asdict(moved)}))
    assert data.trained_source(tmp_path / "moved").key == moved.source().key
    np.save(tmp_path / "short.npy", irf[:10])
    with pytest.raises(ValueError, match="IRF file"):
        tiny(tmp_path, cache_dir, preset="tcspc256", bins=64, dt=0.05, irf=str(tmp_path / "short.npy"))
    with pytest.raises(FileNotFoundError, match="IRF file"):
        tiny(tmp_path, cache_dir, preset="tcspc256", bins=64, dt=0.05, irf=str(tmp_path / "none.npy"))
