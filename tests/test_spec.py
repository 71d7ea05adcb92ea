"""The fixed-point specification: formats, JSON round trip, and refusal of impossible specs."""

import json

import pytest

from flirtl.spec import ActivationSpec, ModelSpec, QFormat, SpecError


def test_qformat_ranges():
    fmt = QFormat(1, 7, True)
    assert (fmt.width, fmt.min_code, fmt.max_code) == (8, -128, 127)
    assert fmt.min_value == -1.0 and fmt.max_value == 127 / 128
    unsigned = QFormat(1, 7, False)
    assert (unsigned.min_code, unsigned.max_code) == (0, 255)
    assert str(fmt) == "s1.7" and QFormat.parse("u4.12") == QFormat(4, 12, False)


def test_qformat_is_hashable_and_json():
    fmt = QFormat(3, 5, False)
    assert {fmt: 1}[QFormat(3, 5, False)] == 1
    assert QFormat.from_json(json.loads(json.dumps(fmt.to_json()))) == fmt


@pytest.mark.parametrize("bits", [4, 8, 12, 16])
def test_spec_json_round_trip(bits):
    spec = ModelSpec.build(bits, hidden=16, hidden_bits=bits + 2)
    again = ModelSpec.loads(spec.dumps())
    assert again == spec and hash(again) == hash(spec)
    assert spec.fmt("hidden").width == bits + 2 and spec.fmt("enc.w_hh").width == bits


def test_hidden_width_is_independent_of_weights():
    spec = ModelSpec.build(8, hidden_bits=12)
    assert spec.fmt("enc.w_hh").width == 8 and spec.fmt("hidden").width == 12
    # the accumulator follows the wider operand
    assert spec.fmt("enc.acc_h").frac_bits == spec.fmt("enc.w_hh").frac_bits + 11


def test_accumulators_hold_the_worst_dot_product():
    spec = ModelSpec.build(8, hidden=32)
    w, h = spec.fmt("enc.w_hh"), spec.fmt("hidden")
    worst = 32 * abs(w.min_code) * abs(h.min_code)
    assert spec.fmt("enc.acc_h").max_code >= worst


@pytest.mark.parametrize("bits", [1, 33, 0, -3, 8.0, True])
def test_refuses_impossible_bits(bits):
    with pytest.raises(SpecError, match=rf"bits must be an int in 2\.\.32, not {bits!r}"):
        ModelSpec.build(bits)


def test_refuses_fractional_bits_beyond_width():
    with pytest.raises(SpecError, match="fractional bits, beyond its width"):
        QFormat(-1, 9)
    with pytest.raises(SpecError, match=r"tensor 'enc.w_hh': 9 integer bits exceed its width 8"):
        ModelSpec.build(8, weight_int_bits={"enc.w_hh": 9})


def test_refuses_narrow_accumulator():
    with pytest.raises(SpecError, match=r"accumulator 'enc.acc_h' is 16 bits \(s3.13\) but its dot product needs 21 bits"):
        ModelSpec.build(8, overrides={"enc.acc_h": "s3.13"})


def test_refuses_wide_tensor_and_names_it():
    with pytest.raises(SpecError, match=r"tensor 'gate' is 40 bits wide"):
        ModelSpec.build(8, overrides={"gate": "u1.39"})


def test_refuses_unknown_names_and_modes():
    with pytest.raises(SpecError, match="unknown tensor"):
        ModelSpec.build(8, overrides={"gates": "u1.7"})
    with pytest.raises(SpecError, match="rounding mode 'nearest'"):
        ModelSpec.build(8, rounding="nearest")
    with pytest.raises(SpecError, match="overflow mode 'clip'"):
        ModelSpec.build(8, overflow="clip")
    with pytest.raises(SpecError, match="gru variant 'lstm'"):
        ModelSpec.build(8, gru="lstm")
    with pytest.raises(SpecError, match="activation method 'cordic'"):
        ActivationSpec(method="cordic")
    with pytest.raises(SpecError, match="sigmoid_range must be a power of two"):
        ActivationSpec(sigmoid_range=6)
    with pytest.raises(SpecError, match="bg_bins"):
        ModelSpec.build(8, bg_bins=3)


def test_spec_json_refuses_foreign_json():
    with pytest.raises(SpecError, match="not a flirtl spec"):
        ModelSpec.loads('{"bits": 8}')


def test_repeat_vector_decoder_adds_its_input_product():
    """decoder_input 'encoder_state': the decoder's W_ih (3H x H) and its accumulator join the spec,
    sized like the recurrent product; specs written before the field read as 'zeros'."""
    spec = ModelSpec.build(8, hidden=16, decoder_input="encoder_state")
    assert spec.weight_shapes()["dec.w_ih"] == (48, 16)
    assert spec.fmt("dec.acc_x") == spec.fmt("dec.acc_h")  # same operand, same weight format
    assert ModelSpec.loads(spec.dumps()) == spec
    old = json.loads(ModelSpec.build(8).dumps())
    del old["decoder_input"]
    assert ModelSpec.from_json(old).decoder_input == "zeros"
    assert "dec.w_ih" not in ModelSpec.from_json(old).weight_names
    with pytest.raises(SpecError, match=r"decoder input must be one of \('zeros', 'encoder_state'\), not 'repeat'"):
        ModelSpec.build(8, decoder_input="repeat")
    formats = tuple((name, fmt) for name, fmt in spec.formats if name != "dec.w_ih")
    with pytest.raises(SpecError, match=r"spec has no format for tensor\(s\) dec.w_ih"):
        spec.replace(formats=formats)
