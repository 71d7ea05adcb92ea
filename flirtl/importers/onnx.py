"""ONNX files with two `GRU` operators (encoder, decoder) and a per-step linear head.

Read with the `onnx` package, checked with `onnxruntime`. ONNX stacks a GRU's gates [z; r; h]
(mapped to flirtl's [r; z; n]); `linear_before_reset=1` is the PyTorch cell (what torch.onnx.export
writes for nn.GRU), 0 the Keras cell (what tf2onnx writes for reset_after=False). The graph around
the operators (transposes, reshapes, the zeros the decoder reads, the slice of the encoder's state)
differs between exporters, so the wiring is not pattern-matched op by op: flirtl reads the weights,
rebuilds the float encoder-decoder and runs both it and the file under onnxruntime on the same
random TPSFs; a file whose outputs differ is refused. Weights stored as integers behind a
DequantizeLinear with a power-of-two scale and zero point 0 (a quantized ONNX) import as those codes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..spec import INPUT_SIZE, SFD_CHANNELS, QFormat
from .common import ImportedModel, ImportRefused, float_forward, reorder_zrh

#: Operators of the glue exporters write around the GRUs and the head.
GLUE = {"Transpose", "Unsqueeze", "Squeeze", "Reshape", "Slice", "Gather", "Shape", "ConstantOfShape",
        "Constant", "Concat", "Expand", "Tile", "Cast", "Identity", "Flatten", "DequantizeLinear"}
HEAD = {"MatMul", "Gemm", "Add"}
#: ONNX HardSigmoid(alpha, beta) = clip(alpha x + beta, 0, 1) of the three Keras definitions.
_HARD_SIGMOIDS = {(0.2, 0.5): "hard_sigmoid_keras2", (round(1 / 6, 6), 0.5): "hard_sigmoid_keras3",
                  (0.5, 0.5): "hard_sigmoid_qkeras"}
#: Largest |difference| between onnxruntime and the rebuilt float model (float32 arithmetic in
#: onnxruntime over T steps; a wrong wiring differs by orders of magnitude more).
CHECK_TOLERANCE = 1e-4


def _attributes(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _functions(node, name: str) -> tuple[str, str]:
    attrs = _attributes(node)
    acts = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])]
    gate, candidate = (acts + ["Sigmoid", "Tanh"])[:2] if acts else ("Sigmoid", "Tanh")
    if len(acts) not in (0, 2):
        raise ImportRefused(f"node {name!r} (GRU): activations {acts} are not supported")
    if gate == "Sigmoid":
        gate_fn = "sigmoid"
    elif gate == "HardSigmoid":
        alphas, betas = attrs.get("activation_alpha", [0.2]), attrs.get("activation_beta", [0.5])
        gate_fn = _HARD_SIGMOIDS.get((round(float(alphas[0]), 6), round(float(betas[0]), 6)))
        if gate_fn is None:
            raise ImportRefused(f"node {name!r} (GRU): HardSigmoid(alpha={alphas[0]}, beta={betas[0]}) is "
                                f"none of Keras 2, Keras 3 or QKeras's hard sigmoid")
    else:
        raise ImportRefused(f"node {name!r} (GRU): gate activation {gate!r} is not supported (Sigmoid, HardSigmoid)")
    if candidate != "Tanh":
        raise ImportRefused(f"node {name!r} (GRU): candidate activation {candidate!r} is not supported (Tanh)")
    return gate_fn, "tanh"


def read_onnx(path, *, n_bins: int | None = None) -> ImportedModel:
    """An ImportedModel from an ONNX file, checked against onnxruntime."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError and friends, not one base class
        raise ImportRefused(f"{str(path)!r} is not a readable ONNX model: {str(error).splitlines()[0]}") from None
    graph = proto.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(_attributes(node)["value"])
    dequantized = _dequantize(graph, constants)
    for node in graph.node:
        if node.op_type not in GLUE | HEAD | {"GRU"}:
            raise ImportRefused(f"node {node.name or node.output[0]!r} ({node.op_type}) is not supported: "
                                f"flirtl imports a GRU encoder, a GRU decoder and a linear head")
    grus = [node for node in graph.node if node.op_type == "GRU"]
    if len(grus) != 2:
        raise ImportRefused(f"the graph has {len(grus)} GRU node(s): flirtl imports one GRU encoder and "
                            f"one GRU decoder")
    producers = {out: node for node in graph.node for out in node.output}

    def origins(name: str, seen=None) -> set[str]:
        """The graph inputs, GRU outputs and constants a tensor derives from."""
        seen = seen if seen is not None else set()
        if name in seen or not name:
            return set()
        seen.add(name)
        node = producers.get(name)
        if node is None or node.op_type == "GRU" or name in constants:
            return {name}
        return set().union(*(origins(i, seen) for i in node.input)) if node.input else {name}

    def value(name: str, node, what: str) -> np.ndarray:
        if name not in constants:
            raise ImportRefused(f"node {node.name!r} (GRU): {what} {name!r} is not a constant weight")
        return np.asarray(constants[name], np.float64)

    def from_gru(name: str) -> bool:
        """Whether a tensor derives from a GRU node's output."""
        return bool(name) and any(producers.get(o) is not None and producers[o].op_type == "GRU"
                                  for o in origins(name))

    # The decoder starts from the encoder's state and reads zeros, or (RepeatVector wiring) reads
    # the encoder's output from a zero state.
    encoder = decoder = None
    repeat = False
    for node in grus:
        from_state = from_gru(node.input[5] if len(node.input) > 5 else "")
        from_input = from_gru(node.input[0])
        if from_state and from_input:
            raise ImportRefused(f"node {node.name or node.output[0]!r} (GRU decoder) reads the encoder's output "
                                f"and starts from its state: the IP's decoder does one or the other")
        if from_state or from_input:
            decoder, repeat = node, from_input
        else:
            encoder = node
    if encoder is None or decoder is None:
        raise ImportRefused("no GRU node starts from the other's final state or reads its output: flirtl "
                            "imports a decoder fed by the encoder")
    read = {}
    for node, prefix in ((encoder, "enc"), (decoder, "dec")):
        name = node.name or node.output[0]
        attrs = _attributes(node)
        if attrs.get("direction", b"forward") not in (b"forward", "forward"):
            raise ImportRefused(f"node {name!r} (GRU): direction {attrs['direction']!r} is not supported")
        if attrs.get("layout", 0) != 0 or "clip" in attrs:
            raise ImportRefused(f"node {name!r} (GRU): layout=1 and clip are not supported")
        if len(node.input) > 4 and node.input[4]:
            raise ImportRefused(f"node {name!r} (GRU): sequence_lens is not supported")
        for index, what in ((1, "W"), (2, "R")):
            if len(node.input) <= index or not node.input[index]:
                raise ImportRefused(f"node {name!r} (GRU): missing weight {what}")
        w, r = value(node.input[1], node, "W"), value(node.input[2], node, "R")
        hidden = int(attrs.get("hidden_size", r.shape[-1]))
        bias = (value(node.input[3], node, "B") if len(node.input) > 3 and node.input[3]
                else np.zeros((1, 6 * hidden)))
        if w.shape[0] != 1 or r.shape != (1, 3 * hidden, hidden) or bias.shape != (1, 6 * hidden):
            raise ImportRefused(f"node {name!r} (GRU): weights W{w.shape} R{r.shape} B{bias.shape} do not "
                                f"form one forward layer of {hidden} units")
        read[prefix] = dict(w=w[0], r=r[0], b=bias[0], hidden=hidden, lbr=int(attrs.get("linear_before_reset", 0)),
                            functions=_functions(node, name), name=name,
                            sources={"w_ih": node.input[1], "w_hh": node.input[2],
                                     "b_ih": node.input[3] if len(node.input) > 3 else "",
                                     "b_hh": node.input[3] if len(node.input) > 3 else ""})
    enc, dec = read["enc"], read["dec"]
    hidden = enc["hidden"]
    if enc["w"].shape[1] != INPUT_SIZE:
        raise ImportRefused(f"node {enc['name']!r} (GRU encoder) reads {enc['w'].shape[1]} values per time "
                            f"step; the IP feeds {INPUT_SIZE} normalised sample per time bin (is the time "
                            f"axis first?)")
    if dec["hidden"] != hidden:
        raise ImportRefused(f"encoder has {hidden} units, decoder {dec['hidden']}: they must match")
    if enc["lbr"] != dec["lbr"]:
        raise ImportRefused("the GRU nodes differ in linear_before_reset: the IP has one GRU cell")
    if enc["functions"] != dec["functions"]:
        raise ImportRefused("the GRU nodes differ in their activations: the IP has one sigmoid and one tanh")
    if repeat and dec["w"].shape[1] != hidden:
        raise ImportRefused(f"node {dec['name']!r} (GRU decoder) reads {dec['w'].shape[1]} values per step, "
                            f"not the encoder's {hidden}-unit state (RepeatVector wiring)")
    weights = {}
    for prefix, part in (("enc", enc), ("dec", dec)):
        H = hidden
        weights[f"{prefix}.w_ih"] = reorder_zrh(part["w"], H)
        weights[f"{prefix}.w_hh"] = reorder_zrh(part["r"], H)
        weights[f"{prefix}.b_ih"] = reorder_zrh(part["b"][:3 * H], H)
        weights[f"{prefix}.b_hh"] = reorder_zrh(part["b"][3 * H:], H)
    if not repeat:
        del weights["dec.w_ih"]  # the decoder reads zeros
    head, head_sources = _head(graph, constants, hidden)
    weights.update(head)
    sources = {f"{prefix}.{k}": v for prefix in ("enc", "dec") for k, v in read[prefix]["sources"].items()}
    sources.update(head_sources)
    file_bins = _input_bins(graph)
    if n_bins is not None and file_bins is not None and n_bins != file_bins:
        raise ImportRefused(f"the file fixes {file_bins} time steps; --bins {n_bins} disagrees")
    model = ImportedModel(
        "ONNX", weights, gru="pytorch" if enc["lbr"] else "keras", gate=enc["functions"][0],
        candidate=enc["functions"][1], n_bins=file_bins, decoder_input="encoder_state" if repeat else "zeros",
        layers=[f"{enc['name']}: GRU({hidden}) encoder, linear_before_reset={enc['lbr']}, "
                f"gates {enc['functions'][0]} / {enc['functions'][1]}",
                f"{dec['name']}: GRU({hidden}) decoder "
                + ("from a zero state, reading the encoder's state at every step (RepeatVector)" if repeat
                   else "from the encoder's state, reading zeros"),
                "MatMul/Gemm + Add: linear head to 3 SFD channels on every decoder step"])
    model.check_shapes()
    _quantized_in_file(model, {name: dequantized.get(sources.get(name, "")) for name in model.weight_shapes()})
    error = _check_with_onnxruntime(path, graph, model, n_bins or file_bins)
    model.layers.append(f"checked with onnxruntime on random TPSFs: max |difference| {error:.2g}")
    return model


def _input_bins(graph) -> int | None:
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim] if inputs else []
    return int(dims[1]) if len(dims) >= 2 and dims[1] > 0 else None


def _dequantize(graph, constants: dict) -> dict[str, QFormat]:
    """Weights stored as integers behind a DequantizeLinear (a quantized ONNX): their values join
    `constants`, their formats are returned. flirtl's formats are binary points, so the scale must be
    a power of two and the zero point 0."""
    formats = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        name = node.name or node.output[0]
        if node.input[0] not in constants or node.input[1] not in constants:
            raise ImportRefused(f"node {name!r} (DequantizeLinear) dequantizes a computed tensor: only "
                                f"quantized weights are supported, not quantized activations")
        codes, scale = np.asarray(constants[node.input[0]]), np.asarray(constants[node.input[1]], np.float64)
        zero = np.asarray(constants.get(node.input[2], 0)) if len(node.input) > 2 and node.input[2] else 0
        if codes.dtype.kind != "i" or np.any(zero != 0) or scale.size != 1:
            raise ImportRefused(f"node {name!r} (DequantizeLinear): only signed integer weights with one "
                                f"scale and zero point 0 are supported ({codes.dtype}, zero point {zero}, "
                                f"{scale.size} scales)")
        frac = -np.log2(float(scale))
        width = codes.dtype.itemsize * 8
        if frac != round(frac) or not 0 <= frac <= width:
            raise ImportRefused(f"node {name!r} (DequantizeLinear): scale {float(scale):.6g} is not a power of "
                                f"two 2**-k, 0 <= k <= {width}: the IP's formats are binary points")
        constants[node.output[0]] = codes.astype(np.float64) * float(scale)
        formats[node.output[0]] = QFormat(width - int(frac), int(frac), True)
    return formats


def _quantized_in_file(model: ImportedModel, formats: dict[str, QFormat | None]) -> None:
    """Codes and formats of weights that were quantized in the file (all of them, or none)."""
    quantized = [name for name, fmt in formats.items() if fmt is not None]
    if not quantized:
        return
    if len(quantized) != len(formats):
        missing = [name for name, fmt in formats.items() if fmt is None]
        raise ImportRefused(f"only some weights are quantized in the file (DequantizeLinear); {missing} are "
                            f"float: quantize all of them or none")
    widths = {formats[name].width for name in formats if ".w" in name}
    if len(widths) != 1:
        raise ImportRefused(f"the quantized weights use several widths {sorted(widths)}: the IP's MAC lanes "
                            f"take one weight width")
    model.codes = {name: np.round(model.weights[name] * 2.0 ** fmt.frac_bits).astype(np.int64)
                   for name, fmt in formats.items()}
    model.formats, model.bits = dict(formats), widths.pop()
    model.layers.append(f"weights quantized in the file (DequantizeLinear): {model.bits}-bit codes, "
                        + ", ".join(f"{name} {fmt}" for name, fmt in formats.items()))


def _head(graph, constants: dict, hidden: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Weight (3, H) and bias (3,) of the linear head: the one MatMul / Gemm with a constant
    H x 3 operand, and its bias (Gemm's C or the Add that follows); and their tensors' names."""
    found = None
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        for operand in node.input[1:2]:
            if operand in constants:
                matrix = np.asarray(constants[operand], np.float64)
                attrs = _attributes(node)
                if node.op_type == "Gemm" and attrs.get("transB", 0):
                    matrix = matrix.T
                if matrix.shape == (hidden, SFD_CHANNELS):
                    if found is not None:
                        raise ImportRefused("the graph has several linear heads")
                    found = (node, matrix.T, operand)
    if found is None:
        raise ImportRefused(f"the graph has no linear head: a MatMul or Gemm with a {hidden} x {SFD_CHANNELS} "
                            f"weight (3 SFD channels) on the decoder's output")
    node, weight, weight_name = found
    bias, bias_name = None, ""
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2] in constants:
        bias, bias_name = constants[node.input[2]], node.input[2]
    for other in graph.node:
        if other.op_type == "Add" and node.output[0] in other.input:
            bias_name = next((i for i in other.input if i in constants), bias_name)
            bias = constants[bias_name] if bias_name else bias
    bias = np.zeros(SFD_CHANNELS) if bias is None else np.asarray(bias, np.float64).reshape(-1)
    if bias.shape != (SFD_CHANNELS,):
        raise ImportRefused(f"the linear head's bias has shape {bias.shape}, expected ({SFD_CHANNELS},)")
    return {"head.w": weight, "head.b": bias}, {"head.w": weight_name, "head.b": bias_name}


def _check_with_onnxruntime(path: Path, graph, model: ImportedModel, n_bins: int | None) -> float:
    """Run the file and the rebuilt float model on the same TPSFs; refuse the file if they differ."""
    import onnxruntime

    if n_bins is None:
        raise ImportRefused("the file leaves the number of time bins open: give it with --bins")
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's errors carry no common base class
        raise ImportRefused(f"onnxruntime cannot load the file: {str(error).splitlines()[0]}") from None
    inputs = session.get_inputs()
    # as many pixels as a fixed batch dimension says, else 8
    batch = inputs[0].shape[0] if isinstance(inputs[0].shape[0], int) and inputs[0].shape[0] > 0 else 8
    tpsf = np.random.default_rng(0).random((batch, n_bins)).astype(np.float32)
    feed = {}
    for index, spec in enumerate(inputs):
        rank = len(spec.shape)
        if index == 0:
            feed[spec.name] = tpsf.reshape((batch, n_bins) + (1,) * (rank - 2))
        else:  # a second input is the decoder's: the user feeds zeros
            shape = [batch if i == 0 else (n_bins if i == 1 else (d if isinstance(d, int) else 1))
                     for i, d in enumerate(spec.shape)]
            feed[spec.name] = np.zeros(shape, np.float32)
    try:
        out = session.run(None, feed)[0]
    except Exception as error:  # onnxruntime's errors carry no common base class
        raise ImportRefused(f"onnxruntime cannot run the file on ({batch}, {n_bins}) TPSFs: "
                            f"{str(error).splitlines()[0]}") from None
    expected = float_forward(model, tpsf.astype(np.float64))
    if out.size != expected.size:
        raise ImportRefused(f"the file's output has shape {out.shape}, not (N, {n_bins}, {SFD_CHANNELS}): "
                            f"its wiring is not a GRU encoder-decoder with a per-step head")
    error = float(np.max(np.abs(out.reshape(expected.shape) - expected)))
    if not error <= CHECK_TOLERANCE:
        raise ImportRefused(f"the file's outputs differ from the GRU encoder-decoder read from it by up to "
                            f"{error:.3g} under onnxruntime: its wiring is not one flirtl maps")
    return error
