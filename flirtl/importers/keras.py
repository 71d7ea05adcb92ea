"""Keras 3 `.keras` and Keras 2 / QKeras `.h5` files, read with h5py (no TensorFlow, no Keras).

Both hold a functional model's configuration (JSON) and its weights. flirtl takes the Seq2Seq wiring
that maps onto the IP: Input (T, 1) -> GRU encoder whose final state starts a GRU decoder fed zeros
(a second Input the user feeds zeros), -> Dense or TimeDistributed(Dense) head of 3 units on the
decoder's sequence. Keras's kernel columns are gates [z, r, h]; reset_after=True is the PyTorch cell
(separate input and recurrent biases), reset_after=False the Keras cell (one bias; r scales h before
the recurrent kernel). QKeras QGRU / QDense weights are quantized here exactly as QKeras 0.9's
`quantized_bits(bits, integer, symmetric, alpha=1)` does: code = clip(round_half_even(x * 2**(bits
- 1 - integer)), -2**(bits - 1) + symmetric, 2**(bits - 1) - 1).
"""

from __future__ import annotations

import ast
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..spec import INPUT_SIZE, SFD_CHANNELS, QFormat
from .common import ImportedModel, ImportRefused, reorder_zrh

GRU_LAYERS = ("GRU", "QGRU")
DENSE_LAYERS = ("Dense", "QDense")
SUPPORTED = ("InputLayer", *GRU_LAYERS, *DENSE_LAYERS, "TimeDistributed", "RepeatVector")


@dataclass
class Layer:
    name: str
    kind: str
    config: dict
    inputs: list[tuple[str, int]]   # (layer, output index) of the sequence input
    state: list[tuple[str, int]]    # initial_state tensors
    weights: dict[str, np.ndarray]  # "kernel", "recurrent_kernel", "bias"


# -- reading the two file formats ---------------------------------------------------------------

def _history(obj) -> tuple[str, int] | None:
    """(layer, output index) of a serialised Keras tensor, in the Keras 3 or Keras 2 form."""
    if isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__":
        name, _node, index = obj["config"]["keras_history"]
        return name, int(index)
    if isinstance(obj, list) and len(obj) >= 3 and isinstance(obj[0], str):
        return obj[0], int(obj[2])
    return None


def _tensors(obj) -> list[tuple[str, int]]:
    found = _history(obj)
    if found:
        return [found]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _tensors(item)]
    return []


def _wiring(node) -> tuple[list, list]:
    """(sequence inputs, initial-state inputs) of one inbound node. Keras 3 writes {"args",
    "kwargs"}; Keras 2 a list of [layer, node, tensor, kwargs] whose entries after the first are
    an RNN's initial states (RNN.__call__ appends them to its inputs) or sit in kwargs."""
    if isinstance(node, dict):
        args = _tensors(node.get("args", []))
        state = _tensors(node.get("kwargs", {}).get("initial_state", []))
        return args[:1], args[1:] + state
    entries = [entry for entry in node if isinstance(entry, list)]
    state = [t for entry in entries if len(entry) > 3 and isinstance(entry[3], dict)
             for t in _tensors(entry[3].get("initial_state", []))]
    return [_history(entries[0])] if entries else [], [_history(e) for e in entries[1:]] + state


def _layers_from_config(config: dict) -> list[dict]:
    if config.get("class_name") not in ("Functional", "Model", "Sequential"):
        raise ImportRefused(f"the file holds a {config.get('class_name')!r}, not a Keras functional model")
    layers = config["config"]["layers"]
    if config["class_name"] == "Sequential":
        # a chain: each layer reads the one before (Sequential cannot pass a GRU's state on)
        chained, previous = [], None
        for layer in layers:
            nodes = [] if previous is None else [[[previous, 0, 0, {}]]]
            chained.append({**layer, "name": layer["config"]["name"], "inbound_nodes": nodes})
            previous = layer["config"]["name"]
        return chained
    return layers


def _read_keras3(path: Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    import h5py

    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if "config.json" not in names or "model.weights.h5" not in names:
            raise ImportRefused(f"{str(path)!r} is a zip file without config.json and model.weights.h5: "
                                f"not a Keras 3 .keras file")
        config = json.loads(archive.read("config.json"))
        with archive.open("model.weights.h5") as raw, h5py.File(raw, "r") as weights:
            found, seen = {}, {}
            for layer in _layers_from_config(config):
                # Keras 3 files a layer's variables under its class in snake case, numbered from
                # the second of a class on (gru, gru_1, ...), not under the layer's name
                key = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", layer["class_name"])
                key = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower()
                seen[key] = seen.get(key, -1) + 1
                group = weights.get(f"layers/{key}" + (f"_{seen[key]}" if seen[key] else ""))
                found[layer["config"]["name"]] = _keras3_vars(group) if group is not None else {}
    return config, found


def _keras3_vars(group) -> dict[str, np.ndarray]:
    """Keras 3 stores variables by position: a GRU cell's kernel, recurrent kernel, bias; a Dense
    layer's kernel, bias (inside `layer/` for TimeDistributed)."""
    for sub in ("cell/vars", "layer/vars", "vars"):
        if sub in group and len(group[sub]):
            variables = group[sub]
            break
    else:
        return {}
    names = ("kernel", "recurrent_kernel", "bias") if "cell" in sub else ("kernel", "bias")
    return {names[int(i)]: np.asarray(variables[i]) for i in variables if int(i) < len(names)}


def _read_keras2(path: Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    import h5py

    with h5py.File(path, "r") as file:
        raw = file.attrs.get("model_config")
        if raw is None:
            raise ImportRefused(f"{str(path)!r} holds no model configuration (saved with "
                                f"save_weights?): save the whole model")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        root = file["model_weights"] if "model_weights" in file else file
        found = {}
        for layer in _layers_from_config(config):
            name = layer["config"]["name"]
            found[name] = {}
            if name not in root:
                continue
            group = root[name]
            for weight_name in group.attrs.get("weight_names", []):
                weight_name = weight_name.decode() if isinstance(weight_name, bytes) else weight_name
                short = weight_name.rsplit("/", 1)[-1].split(":")[0]
                found[name][short] = np.asarray(group[weight_name])
    return config, found


# -- QKeras quantizers --------------------------------------------------------------------------

def _quantizer(spec, where: str) -> tuple[int, int, int] | None:
    """(bits, integer, symmetric) of a QKeras quantized_bits quantizer (string or serialised)."""
    if spec is None:
        return None
    if isinstance(spec, dict):
        name, args = spec.get("class_name"), dict(spec.get("config", {}))
        positional = []
    else:
        match = re.fullmatch(r"\s*(\w+)\s*(?:\((.*)\))?\s*", str(spec))
        if not match:
            raise ImportRefused(f"{where}: cannot read the quantizer {spec!r}")
        name = match.group(1)
        call = ast.parse(f"f({match.group(2) or ''})", mode="eval").body
        positional = [ast.literal_eval(a) for a in call.args]
        args = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    if name != "quantized_bits":
        raise ImportRefused(f"{where}: quantizer {name!r} is not supported (only quantized_bits)")
    values = dict(zip(("bits", "integer", "symmetric", "keep_negative", "alpha"), positional))
    values.update(args)
    bits, integer = int(values.get("bits", 8)), int(values.get("integer", 0))
    symmetric = int(bool(values.get("symmetric", 0)))
    alpha = values.get("alpha")
    if alpha not in (None, 1, 1.0, "1"):
        raise ImportRefused(f"{where}: quantized_bits alpha={alpha!r} is not supported (alpha=1 or none)")
    if not values.get("keep_negative", True) or values.get("use_stochastic_rounding", False):
        raise ImportRefused(f"{where}: quantized_bits needs keep_negative=1 and no stochastic rounding")
    if integer > bits - 1 or integer < 0:
        raise ImportRefused(f"{where}: quantized_bits({bits}, {integer}) has no fractional bits")
    return bits, integer, symmetric


def qkeras_codes(values: np.ndarray, quantizer: tuple[int, int, int]) -> tuple[np.ndarray, QFormat]:
    """QKeras 0.9 quantized_bits: codes (round half to even, as tf.round) and their format."""
    bits, integer, symmetric = quantizer
    fmt = QFormat(integer + 1, bits - 1 - integer, True)
    codes = np.clip(np.round(np.asarray(values, np.float64) * 2.0 ** fmt.frac_bits),
                    fmt.min_code + symmetric, fmt.max_code)
    return codes.astype(np.int64), fmt


# -- the Seq2Seq graph ----------------------------------------------------------------------------

_HARD_SIGMOID = {"Keras 3": "hard_sigmoid_keras3", "Keras 2": "hard_sigmoid_keras2",
                 "QKeras": "hard_sigmoid_qkeras"}


def _activation_name(value) -> str:
    if isinstance(value, dict):  # serialised quantizer or function
        name = value.get("class_name", "")
        args = ",".join(f"{k}={v!r}" for k, v in value.get("config", {}).items())
        return f"{name}({args})" if args else name
    return str(value)


def _functions(layer: Layer, source: str) -> tuple[str, str, int | None]:
    """(gate function, candidate function, candidate bits fixed by a quantized_tanh)."""
    cfg = layer.config
    gate = _activation_name(cfg.get("recurrent_activation", "sigmoid"))
    if gate == "hard_sigmoid":
        gate = _HARD_SIGMOID[source]
    elif gate != "sigmoid":
        raise ImportRefused(f"layer {layer.name!r} ({layer.kind}): recurrent_activation {gate!r} is not "
                            f"supported (sigmoid or hard_sigmoid)")
    act = _activation_name(cfg.get("activation", "tanh"))
    if act == "tanh":
        return gate, "tanh", None
    match = re.fullmatch(r"quantized_tanh(?:\((.*)\))?", act)
    if layer.kind == "QGRU" and match:
        call = ast.parse(f"f({match.group(1) or ''})", mode="eval").body
        args = dict(zip(("bits", "use_stochastic_rounding", "symmetric", "use_real_tanh"),
                        [ast.literal_eval(a) for a in call.args]))
        args.update({k.arg: ast.literal_eval(k.value) for k in call.keywords})
        if args.get("use_stochastic_rounding") or args.get("symmetric"):
            raise ImportRefused(f"layer {layer.name!r}: {act} with stochastic rounding or symmetric "
                                f"range is not supported")
        # QKeras's default tanh is 2 * hard_sigmoid(x) - 1 = clip(x, -1, 1)
        return gate, "tanh" if args.get("use_real_tanh") else "hard_tanh", int(args.get("bits", 8))
    raise ImportRefused(f"layer {layer.name!r} ({layer.kind}): activation {act!r} is not supported "
                        f"(tanh{', quantized_tanh(bits)' if layer.kind == 'QGRU' else ''})")


def _check_gru(layer: Layer, role: str) -> None:
    cfg = layer.config
    for key, bad in (("go_backwards", True), ("stateful", True)):
        if cfg.get(key, False) == bad:
            raise ImportRefused(f"layer {layer.name!r} (GRU {role}): {key}=True is not supported")
    for key in ("kernel", "recurrent_kernel"):
        if key not in layer.weights:
            raise ImportRefused(f"layer {layer.name!r} (GRU {role}): missing weight {key!r}")
    if cfg.get("use_bias", True) and "bias" not in layer.weights:
        raise ImportRefused(f"layer {layer.name!r} (GRU {role}): missing weight 'bias'")


def _gru_weights(layer: Layer, prefix: str, hidden: int) -> tuple[dict, bool]:
    """PyTorch-layout weights of a Keras GRU, and its reset_after."""
    w = layer.weights
    reset_after = bool(layer.config.get("reset_after", True))
    bias = np.asarray(w.get("bias", np.zeros((2, 3 * hidden) if reset_after else 3 * hidden)), np.float64)
    if reset_after:
        if bias.shape != (2, 3 * hidden):
            raise ImportRefused(f"layer {layer.name!r}: reset_after bias has shape {bias.shape}, "
                                f"expected (2, {3 * hidden})")
        b_ih, b_hh = bias[0], bias[1]
    else:
        if bias.shape != (3 * hidden,):
            raise ImportRefused(f"layer {layer.name!r}: bias has shape {bias.shape}, expected ({3 * hidden},)")
        b_ih, b_hh = bias, np.zeros(3 * hidden)
    out = {f"{prefix}.w_ih": reorder_zrh(np.asarray(w["kernel"], np.float64).T, hidden),
           f"{prefix}.w_hh": reorder_zrh(np.asarray(w["recurrent_kernel"], np.float64).T, hidden),
           f"{prefix}.b_ih": reorder_zrh(b_ih, hidden), f"{prefix}.b_hh": reorder_zrh(b_hh, hidden)}
    return out, reset_after


def read_keras(path, kind: str) -> ImportedModel:
    """An ImportedModel from a Keras 3 (.keras, kind "keras3") or Keras 2 / QKeras (.h5) file."""
    path = Path(path)
    try:
        config, weights = (_read_keras3 if kind == "keras3" else _read_keras2)(path)
    except (OSError, KeyError, json.JSONDecodeError, zipfile.BadZipFile) as error:
        raise ImportRefused(f"{str(path)!r} is not a readable Keras file: {error}") from None
    layers = {}
    for raw in _layers_from_config(config):
        cls, cfg = raw["class_name"], raw["config"]
        name = cfg.get("name", raw.get("name"))
        if cls not in SUPPORTED:
            raise ImportRefused(f"layer {name!r} ({cls}) is not supported: flirtl imports a GRU encoder, "
                                f"a GRU decoder and a Dense head")
        nodes = raw.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ImportRefused(f"layer {name!r} ({cls}) is called {len(nodes)} times; shared layers are not supported")
        inputs, state = _wiring(nodes[0]) if nodes else ([], [])
        if cls == "TimeDistributed":
            inner = cfg["layer"]
            if inner["class_name"] not in DENSE_LAYERS:
                raise ImportRefused(f"layer {name!r} (TimeDistributed of {inner['class_name']}) is not "
                                    f"supported: only TimeDistributed(Dense)")
            cls, cfg = inner["class_name"], {**inner["config"], "name": name}
        layers[name] = Layer(name, cls, cfg, inputs, state, weights.get(name, {}))
    source = "Keras 3" if kind == "keras3" else "Keras 2"
    if any(layer.kind in ("QGRU", "QDense") for layer in layers.values()):
        source = "QKeras"
    if kind == "keras3" and source == "QKeras":
        raise ImportRefused("QKeras layers in a Keras 3 file: QKeras writes Keras 2 .h5 files")
    return _seq2seq(layers, config, source)


def _seq2seq(layers: dict[str, Layer], config: dict, source: str) -> ImportedModel:
    grus = [layer for layer in layers.values() if layer.kind in GRU_LAYERS]
    heads = [layer for layer in layers.values() if layer.kind in DENSE_LAYERS]
    if len(grus) != 2:
        raise ImportRefused(f"the model has {len(grus)} GRU layer(s): flirtl imports one GRU encoder "
                            f"and one GRU decoder")
    # The decoder starts from the encoder's state and reads zeros, or reads a RepeatVector of the
    # encoder's state from a zero state.
    repeats = {g.name: layers[g.inputs[0][0]] for g in grus
               if g.inputs and layers[g.inputs[0][0]].kind == "RepeatVector"}
    decoder = next((g for g in grus if g.state or g.name in repeats), None)
    if decoder is None:
        raise ImportRefused("no GRU takes the other's final state as initial_state or reads a RepeatVector "
                            "of it: flirtl imports a decoder fed by the encoder")
    encoder = next(g for g in grus if g is not decoder)
    repeat = repeats.get(decoder.name)
    if repeat is not None and decoder.state:
        raise ImportRefused(f"layer {decoder.name!r} (GRU decoder) reads a RepeatVector and starts from the "
                            f"encoder's state: the IP's decoder does one or the other")
    feed = repeat.inputs if repeat is not None else decoder.state
    what = f"reads a RepeatVector ({repeat.name!r}) of" if repeat is not None else "starts from"
    if {name for name, _ in feed} != {encoder.name}:
        raise ImportRefused(f"layer {decoder.name!r} (GRU decoder) {what} {feed}, not the encoder "
                            f"{encoder.name!r}'s final state")
    # the encoder's output 0 is its final state unless it returns sequences; 1.. are states
    if feed[0][1] == 0 and encoder.config.get("return_sequences", False):
        raise ImportRefused(f"layer {decoder.name!r} {what} the encoder's output sequence, not its state")
    for gru, role in ((encoder, "encoder"), (decoder, "decoder")):
        _check_gru(gru, role)
    enc_in = encoder.inputs[0][0] if encoder.inputs else None
    dec_in = decoder.inputs[0][0] if decoder.inputs else None
    if enc_in is None or layers[enc_in].kind != "InputLayer":
        raise ImportRefused(f"layer {encoder.name!r} (GRU encoder) must read the model's input directly")
    if repeat is None and (dec_in is None or layers[dec_in].kind != "InputLayer" or dec_in == enc_in):
        raise ImportRefused(f"layer {decoder.name!r} (GRU decoder) must read its own input (all zeros), "
                            f"not {dec_in!r}")
    if not decoder.config.get("return_sequences", False):
        raise ImportRefused(f"layer {decoder.name!r} (GRU decoder): return_sequences must be True "
                            f"(the head reads every step)")
    hidden = int(np.shape(encoder.weights["recurrent_kernel"])[0])
    input_size = int(np.shape(encoder.weights["kernel"])[0])
    shape = layers[enc_in].config.get("batch_shape") or layers[enc_in].config.get("batch_input_shape")
    n_bins = int(shape[1]) if shape and len(shape) == 3 and shape[1] else None
    if input_size != INPUT_SIZE:
        raise ImportRefused(
            f"layer {encoder.name!r} (GRU encoder) reads {input_size} values per time step; the IP feeds "
            f"{INPUT_SIZE} normalised sample per time bin (input shape {shape}: is the time axis first?)")
    if repeat is not None:
        steps = repeat.config.get("n")
        if n_bins is not None and steps != n_bins:
            raise ImportRefused(f"layer {repeat.name!r} (RepeatVector) repeats {steps} times; the decoder "
                                f"must run one step per time bin ({n_bins})")
        n_bins = n_bins or steps
    dec_hidden = int(np.shape(decoder.weights["recurrent_kernel"])[0])
    if dec_hidden != hidden:
        raise ImportRefused(f"encoder {encoder.name!r} has {hidden} units, decoder {decoder.name!r} {dec_hidden}: "
                            f"the decoder starts from the encoder's state, so they must match")
    consumers = [h for h in heads if h.inputs and h.inputs[0][0] == decoder.name]
    if len(heads) != 1 or len(consumers) != 1:
        raise ImportRefused(f"the model needs one Dense (or TimeDistributed(Dense)) head on the decoder's "
                            f"sequence; found {[h.name for h in heads]}")
    head = heads[0]
    if _activation_name(head.config.get("activation", "linear")) not in ("linear", "None"):
        raise ImportRefused(f"layer {head.name!r} (Dense head): activation "
                            f"{_activation_name(head.config['activation'])!r} is not supported (linear only)")
    if "kernel" not in head.weights or (head.config.get("use_bias", True) and "bias" not in head.weights):
        raise ImportRefused(f"layer {head.name!r} (Dense head): missing weight "
                            f"{'kernel' if 'kernel' not in head.weights else 'bias'!r}")
    if np.shape(head.weights["kernel"]) != (hidden, SFD_CHANNELS):
        raise ImportRefused(f"layer {head.name!r} (Dense head) maps {np.shape(head.weights['kernel'])}: "
                            f"expected ({hidden}, {SFD_CHANNELS}) (3 SFD channels)")

    enc_w, enc_reset_after = _gru_weights(encoder, "enc", hidden)
    dec_w, dec_reset_after = _gru_weights(decoder, "dec", hidden)
    if enc_reset_after != dec_reset_after:
        raise ImportRefused(f"encoder reset_after={enc_reset_after} but decoder reset_after={dec_reset_after}: "
                            f"the IP has one GRU cell")
    enc_fn, dec_fn = _functions(encoder, source), _functions(decoder, source)
    if enc_fn != dec_fn:
        raise ImportRefused(f"encoder activations {enc_fn[:2]} differ from the decoder's {dec_fn[:2]}: "
                            f"the IP has one sigmoid and one tanh")
    weights = {**enc_w, **{k: v for k, v in dec_w.items() if k != "dec.w_ih" or repeat is not None},
               "head.w": np.asarray(head.weights["kernel"], np.float64).T,
               "head.b": np.asarray(head.weights.get("bias", np.zeros(SFD_CHANNELS)), np.float64)}
    gate, candidate, candidate_bits = enc_fn
    described = [
        f"{encoder.name}: {encoder.kind}({hidden}) encoder, reset_after={enc_reset_after}, "
        f"recurrent_activation -> {gate}, activation -> {candidate}",
        f"{decoder.name}: {decoder.kind}({hidden}) decoder "
        + (f"from a zero state, reading the encoder's state repeated ({repeat.name!r})" if repeat is not None
           else f"from the encoder's state, reading zeros (input {dec_in!r}; its kernel is not used)"),
        f"{head.name}: {head.kind}({SFD_CHANNELS}) head on every decoder step"]
    model = ImportedModel(source, weights, gru="pytorch" if enc_reset_after else "keras", gate=gate,
                          candidate=candidate, n_bins=n_bins, layers=described,
                          decoder_input="zeros" if repeat is None else "encoder_state")
    if source == "QKeras":
        _quantized_in_file(model, encoder, decoder, head, candidate_bits)
    return model


def _quantized_in_file(model: ImportedModel, encoder: Layer, decoder: Layer, head: Layer,
                       candidate_bits: int | None) -> None:
    """Codes and formats of QGRU / QDense weights, as QKeras computes them."""
    codes, formats = {}, {}
    roles = [(encoder, "enc", ("w_ih", "kernel_quantizer"), ("w_hh", "recurrent_quantizer"),
              ("b_ih", "bias_quantizer"), ("b_hh", "bias_quantizer")),
             (decoder, "dec", *([("w_ih", "kernel_quantizer")] if "dec.w_ih" in model.weights else []),
              ("w_hh", "recurrent_quantizer"), ("b_ih", "bias_quantizer"), ("b_hh", "bias_quantizer")),
             (head, "head", ("w", "kernel_quantizer"), ("b", "bias_quantizer"))]
    for layer, prefix, *tensors in roles:
        for tensor, key in tensors:
            name = f"{prefix}.{tensor}"
            quantizer = _quantizer(layer.config.get(key), f"layer {layer.name!r} {key}")
            if quantizer is None:
                raise ImportRefused(f"layer {layer.name!r} ({layer.kind}) has no {key}: flirtl imports a "
                                    f"QKeras model with every weight quantized")
            codes[name], formats[name] = qkeras_codes(model.weights[name], quantizer)
    if encoder.config.get("state_quantizer") or decoder.config.get("state_quantizer"):
        raise ImportRefused(f"layer {encoder.name!r}/{decoder.name!r}: state_quantizer is not supported "
                            f"(the IP's state format follows --bits)")
    weight_bits = {fmt.width for name, fmt in formats.items() if ".w" in name}
    if len(weight_bits) != 1:
        raise ImportRefused(f"QKeras weights use several widths {sorted(weight_bits)}: the IP's MAC lanes "
                            f"take one weight width")
    model.bits = weight_bits.pop()
    if candidate_bits is not None:
        formats["candidate"] = QFormat(1, candidate_bits - 1, True)
    model.codes, model.formats = codes, formats
    model.weights = {**model.weights, **{k: c * formats[k].lsb for k, c in codes.items()}}
