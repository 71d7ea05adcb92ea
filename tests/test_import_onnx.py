"""`flirtl import` of ONNX graphs: torch.onnx.export of the project's own Seq2Seq (PyTorch cell,
linear_before_reset=1) and a hand-built graph of the Keras cell (linear_before_reset=0, Keras 2's
HardSigmoid), both run under onnxruntime as the reference."""

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from flirtl.cli import main
from flirtl.importers import float_forward, read_model
from flirtl.nn.model import Seq2Seq, Seq2SeqConfig
from flirtl.quant import QuantizedModel, quantize_model
from test_import_keras import FLOAT_TOLERANCE, refused

BINS, HIDDEN = 16, 8


@pytest.fixture
def exported(tmp_path):
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(hidden=HIDDEN, n_bins=BINS)).eval()
    path = tmp_path / "seq2seq.onnx"
    torch.onnx.export(model, (torch.rand(4, BINS),), path, input_names=["tpsf"], output_names=["sfd"],
                      dynamo=True, verbose=False)
    return model, path


def test_torch_export_imports_as_the_same_model(exported, tmp_path):
    model, path = exported
    imported = read_model(path)
    assert (imported.gru, imported.gate, imported.n_bins) == ("pytorch", "sigmoid", BINS)
    tpsf = np.random.default_rng(1).random((5, BINS))
    with torch.no_grad():
        reference = model(torch.as_tensor(tpsf, dtype=torch.float32)).double().numpy()
    assert np.abs(float_forward(imported, tpsf) - reference).max() < FLOAT_TOLERANCE
    # gate order and layout mapped exactly: the same codes as quantizing the torch weights directly
    assert main(["import", str(path), "--out", str(tmp_path / "m")]) == 0
    own, _ = quantize_model(model.export_weights(), 8, n_bins=BINS)
    codes = QuantizedModel.load(tmp_path / "m").codes
    for name, code in own.codes.items():
        np.testing.assert_array_equal(codes[name], code, err_msg=name)
    # the PyTorch cell with sigmoid is the project's own float model: flirtl infer/eval load it
    assert (tmp_path / "m" / "float_weights.npz").is_file()


def keras_cell_graph(path, *, repeat=False, extra_op=None, drop_r=False, quantized=False, scale_bits=6,
                     zeros_input=False, hidden=HIDDEN, seed=3):
    """An encoder-decoder as tf2onnx writes one for Keras reset_after=False: GRU nodes with
    linear_before_reset=0 and HardSigmoid(0.2, 0.5), a zeros decoder input, MatMul + Add head.
    quantized: every weight an int8 (biases int16) initializer behind a DequantizeLinear of scale
    2**-scale_bits (biases 2**-12). zeros_input: the decoder reads a second graph input (the zeros a
    Keras two-input model is fed), as tf2onnx converts one."""
    rng = np.random.default_rng(seed)
    H = hidden
    dequantize = []

    def init(name, shape, scale=0.5):
        values = rng.normal(0, scale, shape)
        if not quantized:
            return numpy_helper.from_array(values.astype(np.float32), name)
        dtype, frac = (np.int16, 12) if "_B" in name else (np.int8, scale_bits)
        limit = np.iinfo(dtype)
        codes = np.clip(np.round(values * 2.0 ** frac), limit.min, limit.max).astype(dtype)
        dequantize.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_scale"], [name]))
        extra.append(numpy_helper.from_array(np.array(2.0 ** -frac, np.float32), f"{name}_scale"))
        return numpy_helper.from_array(codes, f"{name}_q")

    extra = []

    inits = [init("enc_W", (1, 3 * H, 1)), init("enc_R", (1, 3 * H, H)), init("enc_B", (1, 6 * H)),
             init("dec_W", (1, 3 * H, H if repeat else 1)), init("dec_R", (1, 3 * H, H)), init("dec_B", (1, 6 * H)),
             init("head_W", (H, 3)), init("head_B", (3,), 0.1),
             numpy_helper.from_array(np.array([2], np.int64), "axis2"),
             numpy_helper.from_array(np.array([BINS, 1, 1], np.int64), "zeros_shape"),
             numpy_helper.from_array(np.array([BINS, 1, 1], np.int64), "repeat_shape")]
    gru = dict(hidden_size=H, linear_before_reset=0, activations=["HardSigmoid", "Tanh"],
               activation_alpha=[0.2], activation_beta=[0.5])
    nodes = [helper.make_node("Unsqueeze", ["tpsf", "axis2"], ["x3"]),
             helper.make_node("Transpose", ["x3"], ["x_tn"], perm=[1, 0, 2]),
             helper.make_node("GRU", ["x_tn", "enc_W", "dec_R" if drop_r else "enc_R", "enc_B"],
                              ["enc_Y", "enc_h"], name="encoder", **gru)]
    if drop_r:
        nodes[-1].input[2] = ""
    if repeat:  # RepeatVector as torch.onnx.export (Expand) or tf2onnx (Tile) writes it
        nodes.append(helper.make_node("Tile" if repeat == "tile" else "Expand", ["enc_h", "repeat_shape"], ["dec_x"]))
    elif zeros_input:
        nodes.append(helper.make_node("Transpose", ["zeros"], ["dec_x"], perm=[1, 0, 2]))
    else:
        nodes.append(helper.make_node("ConstantOfShape", ["zeros_shape"], ["dec_x"]))
    # the RepeatVector wiring starts the decoder from zero; `repeat="both"` also from the encoder's state
    initial = ["", "enc_h"] if repeat in (False, "both") else []
    nodes += [helper.make_node("GRU", ["dec_x", "dec_W", "dec_R", "dec_B", *initial], ["dec_Y"],
                               name="decoder", **gru),
              helper.make_node("Reshape", ["dec_Y", "seq_shape"], ["dec_seq"]),
              helper.make_node("Transpose", ["dec_seq"], ["dec_nt"], perm=[1, 0, 2]),
              helper.make_node("MatMul", ["dec_nt", "head_W"], ["head_mm"]),
              helper.make_node("Add", ["head_mm", "head_B"], ["sfd"])]
    inits += [numpy_helper.from_array(np.array([BINS, -1, H], np.int64), "seq_shape"), *extra]
    nodes = dequantize + nodes
    if extra_op:
        nodes.insert(-1, helper.make_node(extra_op, ["head_mm"], ["head_act"], name="activation"))
        nodes[-1].input[0] = "head_act"
    inputs = [helper.make_tensor_value_info("tpsf", TensorProto.FLOAT, [1, BINS])]
    if zeros_input:
        inputs.append(helper.make_tensor_value_info("zeros", TensorProto.FLOAT, [1, BINS, 1]))
    graph = helper.make_graph(nodes, "seq2seq", inputs,
                              [helper.make_tensor_value_info("sfd", TensorProto.FLOAT, [1, BINS, 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21 if quantized else 17)]), path)
    return path


@pytest.mark.parametrize("zeros_input", [False, True])
def test_keras_cell_graph_imports_and_matches_onnxruntime(tmp_path, zeros_input):
    path = keras_cell_graph(tmp_path / "keras_cell.onnx", zeros_input=zeros_input)
    imported = read_model(path)
    assert (imported.gru, imported.gate) == ("keras", "hard_sigmoid_keras2")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tpsf = np.random.default_rng(7).random((1, BINS)).astype(np.float32)
    feed = {"tpsf": tpsf, **({"zeros": np.zeros((1, BINS, 1), np.float32)} if zeros_input else {})}
    reference = session.run(None, feed)[0].astype(np.float64)
    assert np.abs(float_forward(imported, tpsf.astype(np.float64)) - reference).max() < FLOAT_TOLERANCE


@pytest.mark.parametrize("repeat", [True, "tile"])
def test_repeat_vector_graph_imports_and_matches_onnxruntime(tmp_path, repeat):
    path = keras_cell_graph(tmp_path / "repeat.onnx", repeat=repeat)
    imported = read_model(path)
    assert imported.decoder_input == "encoder_state" and imported.weights["dec.w_ih"].shape == (3 * HIDDEN, HIDDEN)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tpsf = np.random.default_rng(7).random((1, BINS)).astype(np.float32)
    reference = session.run(None, {"tpsf": tpsf})[0].astype(np.float64)
    assert np.abs(float_forward(imported, tpsf.astype(np.float64)) - reference).max() < FLOAT_TOLERANCE


def test_torch_repeat_vector_export_imports_as_the_same_model(tmp_path):
    """torch.onnx.export of the project's Seq2Seq with the RepeatVector wiring (Expand of h_enc)."""
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(hidden=HIDDEN, n_bins=BINS, decoder_input="encoder_state")).eval()
    path = tmp_path / "repeat.onnx"
    torch.onnx.export(model, (torch.rand(4, BINS),), path, input_names=["tpsf"], output_names=["sfd"],
                      dynamo=True, verbose=False)
    assert main(["import", str(path), "--out", str(tmp_path / "m")]) == 0
    own, _ = quantize_model(model.export_weights(), 8, n_bins=BINS, decoder_input="encoder_state")
    imported = QuantizedModel.load(tmp_path / "m")
    assert imported.spec == own.spec
    for name, code in own.codes.items():
        np.testing.assert_array_equal(imported.codes[name], code, err_msg=name)


def test_refuses_decoder_fed_both_ways(tmp_path, capsys):
    path = keras_cell_graph(tmp_path / "both.onnx", repeat="both")
    assert "'decoder' (GRU decoder) reads the encoder's output and starts from its state" in \
        refused(tmp_path, capsys, path)


def test_refuses_unsupported_operator(tmp_path, capsys):
    path = keras_cell_graph(tmp_path / "relu.onnx", extra_op="Relu")
    assert "node 'activation' (Relu) is not supported" in refused(tmp_path, capsys, path)


def test_refuses_missing_weight(tmp_path, capsys):
    path = keras_cell_graph(tmp_path / "no_r.onnx", drop_r=True)
    assert "node 'encoder' (GRU): missing weight R" in refused(tmp_path, capsys, path)


def test_refuses_wrong_file_kind(tmp_path, capsys):
    (tmp_path / "model.onnx").write_bytes(b"\x00\x01garbage")
    assert "is not a readable ONNX model" in refused(tmp_path, capsys, tmp_path / "model.onnx")


def test_quantized_onnx_imports_as_its_codes(tmp_path, capsys):
    path = keras_cell_graph(tmp_path / "qdq.onnx", quantized=True)
    assert main(["import", str(path), "--out", str(tmp_path / "m")]) == 0
    assert "codes as quantized in the file" in capsys.readouterr().out
    quantized = QuantizedModel.load(tmp_path / "m")
    spec = quantized.spec
    assert (spec.bits, str(spec.fmt("enc.w_hh")), str(spec.fmt("dec.b_ih")), str(spec.fmt("head.w"))) == \
        (8, "s2.6", "s4.12", "s2.6")
    graph = onnx.load(str(path)).graph
    stored = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    H = HIDDEN
    zrh = lambda m: np.concatenate([m[H:2 * H], m[:H], m[2 * H:]])  # noqa: E731  ONNX z, r, h -> r, z, n
    np.testing.assert_array_equal(quantized.codes["enc.w_hh"], zrh(stored["enc_R_q"][0]))
    np.testing.assert_array_equal(quantized.codes["dec.b_hh"], zrh(stored["dec_B_q"][0][3 * H:]))
    np.testing.assert_array_equal(quantized.codes["head.w"], stored["head_W_q"].T)


def test_refuses_quantization_scale_that_is_no_power_of_two(tmp_path, capsys):
    path = keras_cell_graph(tmp_path / "qdq.onnx", quantized=True)
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name == "enc_W_scale":
            init.CopyFrom(numpy_helper.from_array(np.array(0.013, np.float32), "enc_W_scale"))
    onnx.save(model, path)
    assert "scale 0.013 is not a power of two" in refused(tmp_path, capsys, path)


def test_refuses_wrong_input_size_for_the_time_axis(tmp_path, capsys):
    path = keras_cell_graph(tmp_path / "wide.onnx")
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name == "enc_W":
            init.CopyFrom(numpy_helper.from_array(np.zeros((1, 3 * HIDDEN, BINS), np.float32), "enc_W"))
    onnx.save(model, path)
    assert "(GRU encoder) reads 16 values per time step" in refused(tmp_path, capsys, path)
