"""flirtl's golden model next to hls4ml 1.3's bit-accurate C simulation, on the same Keras 3 GRU.

One run builds a Keras 3 (torch backend) Seq2Seq with random weights, imports it with
`flirtl import` and converts it (and its encoder alone) with hls4ml, compiles hls4ml's C simulation
with g++, and prints each one's error against the float Keras model on the same normalised TPSFs,
then what each tool accepts (state output, sequence output, reset_after, hard_sigmoid), found by
trying every case. No Vivado: only what runs here.

    .venv/bin/python benchmarks/hls4ml_side_by_side.py [--bits 8] [--hidden 8] [--bins 32] [--pixels 256]

Precisions (stated, not tuned): flirtl `--bits B` is its own spec (weights B bits, biases 2B, state
B bits s1.(B-1), pre-activations B+4 bits, table activations). hls4ml gets weights and recurrent
weights ap_fixed<B,2>, biases ap_fixed<2B,4>, everything else ap_fixed<2B,6> and the layer's
result (the state) ap_fixed<B,1>.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def seq2seq(keras, *, bins, hidden, reset_after=True, gate="sigmoid", seed=1):
    keras.utils.set_random_seed(seed)
    init = dict(reset_after=reset_after, recurrent_activation=gate, bias_initializer="random_normal")
    tpsf, zeros = keras.Input((bins, 1), name="tpsf"), keras.Input((bins, 1), name="zeros")
    encoder = keras.layers.GRU(hidden, return_state=True, name="encoder", **init)
    _, state = encoder(tpsf)
    decoded = keras.layers.GRU(hidden, return_sequences=True, name="decoder", **init)(zeros, initial_state=state)
    sfd = keras.layers.TimeDistributed(keras.layers.Dense(3, name="head"), name="sfd")(decoded)
    return keras.Model([tpsf, zeros], sfd), encoder


def encoder_only(keras, encoder, *, bins, hidden, return_sequences=False):
    """The trained encoder as a model of its own (hls4ml takes no return_state): same weights."""
    cfg = encoder.get_config() | {"return_state": False, "return_sequences": return_sequences, "name": "gru"}
    tpsf = keras.Input((bins, 1))
    layer = keras.layers.GRU.from_config(cfg)
    model = keras.Model(tpsf, layer(tpsf))
    layer.set_weights(encoder.get_weights())
    return model


def hls4ml_model(hls4ml, model, bits, out_dir):
    config = hls4ml.utils.config_from_keras_model(model, granularity="name",
                                                  default_precision=f"ap_fixed<{2 * bits},6>")
    gru = config["LayerName"]["gru"]["Precision"]
    gru.update(weight=f"ap_fixed<{bits},2>", recurrent_weight=f"ap_fixed<{bits},2>",
               bias=f"ap_fixed<{2 * bits},4>", recurrent_bias=f"ap_fixed<{2 * bits},4>",
               result=f"ap_fixed<{bits},1>")
    return hls4ml.converters.convert_from_keras_model(model, hls_config=config, output_dir=str(out_dir),
                                                      backend="Vivado", io_type="io_parallel")


def compile_quietly(hls_model, log: Path) -> None:
    """hls4ml's g++ build writes pages to the terminal: send them to `log` instead."""
    sys.stdout.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as sink:
        os.dup2(sink.fileno(), 1), os.dup2(sink.fileno(), 2)
        try:
            hls_model.compile()
        finally:
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)


def errors(estimate, reference) -> str:
    diff = np.asarray(estimate, np.float64) - reference
    return f"max {np.abs(diff).max():.4f}  RMS {np.sqrt(np.mean(diff ** 2)):.4f}"


def attempt(action) -> str:
    try:
        action()
        return "yes"
    except Exception as error:  # each tool refuses in its own exception type
        return "no: " + str(error).splitlines()[0].split(" for <")[0][:60]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--bins", type=int, default=32)
    parser.add_argument("--pixels", type=int, default=256)
    args = parser.parse_args(argv)

    import hls4ml
    import keras

    from flirtl.golden import GoldenModel
    from flirtl.importers import import_model, read_model
    from flirtl.quant import QuantizedModel
    from golden_util import random_counts

    bits, H, T = args.bits, args.hidden, args.bins
    work = Path(tempfile.mkdtemp(prefix="hls4ml-side-by-side-"))
    print(f"Keras 3 Seq2Seq GRU({H}) encoder -> GRU({H}) decoder -> Dense(3), T={T}, {bits} bits, "
          f"{args.pixels} pixels; work in {work}")
    model, encoder = seq2seq(keras, bins=T, hidden=H)
    model.save(work / "seq2seq.keras")

    # the same normalised TPSFs for everyone: the IP's own normalisation of simulated counts
    import_model(work / "seq2seq.keras", work / "flirtl", bits=bits)
    quantized = QuantizedModel.load(work / "flirtl")
    golden = GoldenModel(quantized)
    result = golden.run(random_counts(args.pixels, T, seed=11))
    tpsf = result.values()["input"]
    float_sfd = np.asarray(model.predict([tpsf[..., None], np.zeros((len(tpsf), T, 1))], verbose=0), np.float64)

    encoder_model = encoder_only(keras, encoder, bins=T, hidden=H)
    float_state = np.asarray(encoder_model.predict(tpsf[..., None], verbose=0), np.float64)
    golden_state = golden.encode(result.input) * quantized.spec.fmt("hidden").lsb

    hls_enc = hls4ml_model(hls4ml, encoder_model, bits, work / "hls4ml_encoder")
    compile_quietly(hls_enc, work / "g++.log")
    hls_state = np.asarray(hls_enc.predict(np.ascontiguousarray(tpsf[..., None], np.float32)), np.float64).reshape(float_state.shape)

    print("\nError against the float Keras model (same inputs):")
    print(f"  {'what':<44} {'flirtl golden':<28} hls4ml C simulation")
    print(f"  {'encoder final state (GRU, reset_after=True)':<44} {errors(golden_state, float_state):<28} "
          f"{errors(hls_state, float_state)}")
    hls_full = attempt(lambda: hls4ml_model(hls4ml, model, bits, work / "hls4ml_seq2seq"))
    print(f"  {'whole Seq2Seq SFD (3 channels x T)':<44} {errors(result.values()['sfd'], float_sfd):<28} "
          f"{'converted' if hls_full == 'yes' else 'not converted (' + hls_full[4:] + ')'}")

    # hard_sigmoid: Keras 3's relu6(x + 3) / 6; does each tool compute that one?
    hard, hard_encoder = seq2seq(keras, bins=T, hidden=H, gate="hard_sigmoid", seed=2)
    hard.save(work / "hard.keras")
    import_model(work / "hard.keras", work / "flirtl_hard", bits=bits)
    hard_golden = GoldenModel(QuantizedModel.load(work / "flirtl_hard"))
    hard_state_float = np.asarray(encoder_only(keras, hard_encoder, bins=T, hidden=H).predict(tpsf[..., None], verbose=0), np.float64)
    hard_state_golden = hard_golden.encode(result.input) * quantized.spec.fmt("hidden").lsb
    hls_hard = hls4ml_model(hls4ml, encoder_only(keras, hard_encoder, bins=T, hidden=H), bits, work / "hls4ml_hard")
    hls_hard_compiles = attempt(lambda: compile_quietly(hls_hard, work / "g++.log"))
    if hls_hard_compiles == "yes":
        hls_hard_state = np.asarray(hls_hard.predict(np.ascontiguousarray(tpsf[..., None], np.float32)),
                                    np.float64).reshape(hard_state_float.shape)
        hls_hard_text = errors(hls_hard_state, hard_state_float)
        hls_hard_support = f"converts; max state error {np.abs(hls_hard_state - hard_state_float).max():.3f}"
    else:
        hls_hard_text = "converts, C simulation does not compile"
        hls_hard_support = "no: " + hls_hard_text
    print(f"  {'encoder final state, hard_sigmoid (Keras 3)':<44} {errors(hard_state_golden, hard_state_float):<28} "
          f"{hls_hard_text}")

    # what each accepts, found by trying
    probes = {}
    before, before_enc = seq2seq(keras, bins=T, hidden=H, reset_after=False)
    before.save(work / "before.keras")
    sequences = encoder_only(keras, encoder, bins=T, hidden=H, return_sequences=True)
    probes["state output (encoder state -> decoder)"] = (
        attempt(lambda: read_model(work / "seq2seq.keras")),
        attempt(lambda: hls4ml_model(hls4ml, model, bits, work / "p1")))
    probes["sequence output (return_sequences)"] = (
        "decoder's, as the SFD stream",
        attempt(lambda: hls4ml_model(hls4ml, sequences, bits, work / "p2")))
    probes["reset_after=False (Keras cell)"] = (
        attempt(lambda: read_model(work / "before.keras")),
        attempt(lambda: hls4ml_model(hls4ml, encoder_only(keras, before_enc, bins=T, hidden=H), bits, work / "p3")))
    probes["hard_sigmoid (Keras 3 definition)"] = (
        f"yes (max state error {np.abs(hard_state_golden - hard_state_float).max():.3f})",
        hls_hard_support)
    print("\nSupport (each entry tried here):")
    print(f"  {'feature':<42} {'flirtl import':<36} hls4ml 1.3")
    for name, (ours, theirs) in probes.items():
        print(f"  {name:<42} {ours:<36} {theirs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
