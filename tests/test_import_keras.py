"""`flirtl import` of Keras 3 `.keras` files (fixtures built here with Keras 3 on its torch backend).

The imported float model must equal Keras's own output (float32 arithmetic: within 1e-5), the
integer model must run in the golden model, its RTL must equal the golden model bit for bit, and
every wiring the IP cannot compute must be refused in one line, leaving no directory behind.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 without TensorFlow

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from flirtl.cli import main  # noqa: E402
from flirtl.golden import GoldenModel  # noqa: E402
from flirtl.importers import float_forward, read_model  # noqa: E402
from flirtl.quant import QuantizedModel  # noqa: E402
from golden_util import random_counts  # noqa: E402

#: float32 Keras against the float64 import over 2 x T steps
FLOAT_TOLERANCE = 1e-5


def seq2seq(path, *, bins=16, hidden=8, reset_after=True, gate="sigmoid", head="time_distributed",
            input_size=1, seed=1):
    """The Seq2SeqLite wiring in Keras: encoder state starts a decoder that reads a zeros input."""
    keras.utils.set_random_seed(seed)
    init = dict(reset_after=reset_after, recurrent_activation=gate, bias_initializer="random_normal")
    tpsf, zeros = keras.Input((bins, input_size), name="tpsf"), keras.Input((bins, 1), name="zeros")
    _, state = keras.layers.GRU(hidden, return_state=True, name="encoder", **init)(tpsf)
    decoded = keras.layers.GRU(hidden, return_sequences=True, name="decoder", **init)(zeros, initial_state=state)
    dense = keras.layers.Dense(3, name="head")
    sfd = keras.layers.TimeDistributed(dense, name="sfd")(decoded) if head == "time_distributed" else dense(decoded)
    model = keras.Model([tpsf, zeros], sfd)
    model.save(path)
    return model


def keras_sfd(model, tpsf):
    return np.asarray(model.predict([tpsf[..., None], np.zeros(tpsf.shape + (1,))], verbose=0), np.float64)


@pytest.mark.parametrize("reset_after, gate, head, cell, function", [
    (True, "sigmoid", "time_distributed", "pytorch", "sigmoid"),
    (False, "hard_sigmoid", "dense", "keras", "hard_sigmoid_keras3"),
    (True, "hard_sigmoid", "time_distributed", "pytorch", "hard_sigmoid_keras3"),
])
def test_float_import_equals_keras(tmp_path, reset_after, gate, head, cell, function):
    path = tmp_path / "model.keras"
    model = seq2seq(path, reset_after=reset_after, gate=gate, head=head)
    imported = read_model(path)
    assert (imported.gru, imported.gate, imported.n_bins, imported.hidden) == (cell, function, 16, 8)
    tpsf = np.random.default_rng(2).random((6, 16))
    error = np.abs(float_forward(imported, tpsf) - keras_sfd(model, tpsf)).max()
    assert error < FLOAT_TOLERANCE, error


def test_import_command_writes_a_model_directory(tmp_path, capsys):
    path, out = tmp_path / "model.keras", tmp_path / "imported"
    seq2seq(path, reset_after=False, gate="hard_sigmoid")
    assert main(["import", str(path), "--out", str(out), "--bits", "12"]) == 0
    assert "Keras 3 GRU (keras cell, hard_sigmoid_keras3 / tanh)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "model_card.md", "source_float_weights.npz", "spec.json", "weights.npz"]
    quantized = QuantizedModel.load(out)
    spec = quantized.spec
    assert (spec.bits, spec.gru, spec.activation.gate, spec.n_bins) == (12, "keras", "hard_sigmoid_keras3", 16)
    # the golden model of the import against the float model, both fed the IP's normalised input
    result = GoldenModel(quantized).run(random_counts(64, 16, seed=4))
    imported = read_model(path)
    reference = float_forward(imported, result.values()["input"])
    error = np.abs(result.values()["sfd"] - reference).max()
    print(f"12-bit golden vs float Keras-cell import: max |SFD error| {error:.4f}")
    # measured 0.011 (0.014 at 8 bits): the 10-bit activation table addresses set the floor
    assert error < 0.03
    # never overwritten
    assert main(["import", str(path), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_calibration_chooses_formats_from_data(tmp_path, capsys):
    path, out, data = tmp_path / "model.keras", tmp_path / "calibrated", tmp_path / "data.npz"
    seq2seq(path)
    np.savez(data, counts=random_counts(32, 16, seed=5))
    assert main(["import", str(path), "--out", str(out), "--calibrate", str(data)]) == 0
    spec = QuantizedModel.load(out).spec
    imported = read_model(path)
    ranges = {}
    from flirtl.golden import normalize_counts
    float_forward(imported, normalize_counts(spec, np.load(data)["counts"]) * spec.fmt("input").lsb, ranges=ranges)
    for name in ("preact", "sfd"):  # the narrowest integer part (at least 2 bits) that holds the range
        fmt = spec.fmt(name)
        assert fmt.max_value >= ranges[name] or fmt.int_bits == 2
        assert fmt.int_bits == 2 or fmt.max_value / 2 < ranges[name]
    assert "Calibrated on 32 pixels" in (out / "model_card.md").read_text()


def refused(tmp_path, capsys, path, *extra):
    out = tmp_path / "refused"
    assert main(["import", str(path), "--out", str(out), *extra]) == 2
    captured = capsys.readouterr()
    assert not out.exists() and not any(p.name.startswith(".refused") for p in tmp_path.iterdir())
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flirtl: error: "), captured.err
    return lines[0]


def seq2seq_repeat(path, *, bins=16, hidden=8, reset_after=True, gate="sigmoid", repeat=16, seed=1):
    """The RepeatVector wiring of published Keras Seq2Seq models: the decoder reads the encoder's
    final state at every step, from a zero state."""
    keras.utils.set_random_seed(seed)
    init = dict(reset_after=reset_after, recurrent_activation=gate, bias_initializer="random_normal")
    tpsf = keras.Input((bins, 1), name="tpsf")
    state = keras.layers.GRU(hidden, name="encoder", **init)(tpsf)
    repeated = keras.layers.RepeatVector(repeat, name="repeat")(state)
    decoded = keras.layers.GRU(hidden, return_sequences=True, name="decoder", **init)(repeated)
    model = keras.Model(tpsf, keras.layers.TimeDistributed(keras.layers.Dense(3, name="head"), name="sfd")(decoded))
    model.save(path)
    return model


@pytest.mark.parametrize("reset_after, gate, cell", [(True, "sigmoid", "pytorch"), (False, "hard_sigmoid", "keras")])
def test_repeat_vector_import_equals_keras(tmp_path, capsys, reset_after, gate, cell):
    path, out = tmp_path / "rv.keras", tmp_path / "imported"
    model = seq2seq_repeat(path, reset_after=reset_after, gate=gate)
    imported = read_model(path)
    assert (imported.decoder_input, imported.gru, imported.weights["dec.w_ih"].shape) == ("encoder_state", cell, (24, 8))
    tpsf = np.random.default_rng(2).random((6, 16))
    reference = np.asarray(model.predict(tpsf[..., None], verbose=0), np.float64)
    assert np.abs(float_forward(imported, tpsf) - reference).max() < FLOAT_TOLERANCE
    assert main(["import", str(path), "--out", str(out)]) == 0
    quantized = QuantizedModel.load(out)
    assert quantized.spec.decoder_input == "encoder_state" and "dec.w_ih" in quantized.codes
    result = GoldenModel(quantized).run(random_counts(64, 16, seed=4))
    error = np.abs(result.values()["sfd"] - float_forward(imported, result.values()["input"])).max()
    print(f"8-bit golden vs float RepeatVector import ({cell} cell): max |SFD error| {error:.4f}")
    assert error < 0.05  # measured 0.027 (PyTorch cell) and 0.023 (Keras cell, hard sigmoid)
    if cell == "pytorch":  # the project's own float model computes it: flirtl infer/eval load it
        from flirtl.nn.model import load_float_model
        torch = pytest.importorskip("torch")
        with torch.no_grad():
            own = load_float_model(out)(torch.as_tensor(tpsf, dtype=torch.float32)).double().numpy()
        assert np.abs(own - reference).max() < FLOAT_TOLERANCE


def test_refuses_repeat_vector_of_another_length(tmp_path, capsys):
    seq2seq_repeat(tmp_path / "rv.keras", repeat=12)
    assert "layer 'repeat' (RepeatVector) repeats 12 times; the decoder must run one step per time bin (16)" in \
        refused(tmp_path, capsys, tmp_path / "rv.keras")


def test_refuses_repeat_vector_and_initial_state_together(tmp_path, capsys):
    tpsf = keras.Input((16, 1))
    _, state = keras.layers.GRU(8, return_state=True, name="encoder")(tpsf)
    repeated = keras.layers.RepeatVector(16)(state)
    decoded = keras.layers.GRU(8, return_sequences=True, name="decoder")(repeated, initial_state=state)
    keras.Model(tpsf, keras.layers.Dense(3)(decoded)).save(tmp_path / "both.keras")
    assert "'decoder' (GRU decoder) reads a RepeatVector and starts from the encoder's state" in \
        refused(tmp_path, capsys, tmp_path / "both.keras")


def test_refuses_wrong_input_size_for_the_time_axis(tmp_path, capsys):
    seq2seq(tmp_path / "wide.keras", input_size=16)
    line = refused(tmp_path, capsys, tmp_path / "wide.keras")
    assert "'encoder' (GRU encoder) reads 16 values per time step" in line


def test_refuses_unsupported_layer_and_activation(tmp_path, capsys):
    tpsf, zeros = keras.Input((16, 1)), keras.Input((16, 1))
    _, h, c = keras.layers.LSTM(8, return_state=True, name="lstm")(tpsf)
    decoded = keras.layers.GRU(8, return_sequences=True)(zeros, initial_state=h)
    keras.Model([tpsf, zeros], keras.layers.Dense(3)(decoded)).save(tmp_path / "lstm.keras")
    assert "layer 'lstm' (LSTM) is not supported" in refused(tmp_path, capsys, tmp_path / "lstm.keras")
    tpsf, zeros = keras.Input((16, 1)), keras.Input((16, 1))
    _, state = keras.layers.GRU(8, return_state=True, activation="relu", name="encoder")(tpsf)
    decoded = keras.layers.GRU(8, return_sequences=True, activation="relu")(zeros, initial_state=state)
    keras.Model([tpsf, zeros], keras.layers.Dense(3)(decoded)).save(tmp_path / "relu.keras")
    assert "'encoder' (GRU): activation 'relu' is not supported" in refused(tmp_path, capsys, tmp_path / "relu.keras")


def test_refuses_a_file_of_the_wrong_kind(tmp_path, capsys):
    (tmp_path / "notes.keras").write_text("not a model\n")
    assert "is not an ONNX (.onnx), Keras 3 (.keras) or Keras 2" in refused(tmp_path, capsys, tmp_path / "notes.keras")


@pytest.mark.parametrize("wiring", ["zeros", "repeat"])
def test_imported_keras_cell_rtl_equals_golden(tmp_path, wiring):
    """One small imported model (Keras cell, Keras 3 hard sigmoid) of each decoder wiring through the
    cocotb regression."""
    from test_rtl import report, run_config

    path, out = tmp_path / "model.keras", tmp_path / "imported"
    (seq2seq if wiring == "zeros" else seq2seq_repeat)(path, reset_after=False, gate="hard_sigmoid")
    assert main(["import", str(path), "--out", str(out)]) == 0
    name = f"import-keras3-b8-h8-hard-{wiring}"
    build, metrics = run_config(QuantizedModel.load(out), name, n_random=8, lanes=5)
    report(name, build, metrics)


def test_input_scale_folds_into_the_encoder_input_weights(tmp_path, capsys):
    """A model trained on twice the IP's normalised TPSF: its input weights are doubled."""
    path, out = tmp_path / "model.keras", tmp_path / "scaled"
    model = seq2seq(path)
    assert main(["import", str(path), "--out", str(out), "--input-scale", "2"]) == 0
    with np.load(out / "float_weights.npz") as archive:
        stored = {name: archive[name] for name in archive.files}
    imported = read_model(path)
    imported.weights = stored
    tpsf = np.random.default_rng(3).random((4, 16))
    assert np.abs(float_forward(imported, tpsf) - keras_sfd(model, 2 * tpsf)).max() < FLOAT_TOLERANCE
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:  # argparse refuses the value before anything is read
        main(["import", str(path), "--out", str(tmp_path / "refused"), "--input-scale", "-1"])
    assert exit_.value.code == 2 and not (tmp_path / "refused").exists()
    assert "--input-scale: must be a positive number, not '-1'" in capsys.readouterr().err
