"""The model card (model_card.md) of a trained model directory: how it was made, on what data,
and how accurate it is (the figures of metrics.json, `flirtl.nn.metrics`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..quant import QuantizedModel
from .config import TrainConfig
from .model import Seq2Seq

#: Published channel-0 RMSE of the reference work (Erbas, Pandey, et al. 2024), for the model card.
REFERENCE_RMSE = {"teacher (float)": 0.0139, "8-bit 32-unit KD student": 0.0162}


def _method(config: TrainConfig, quantized: QuantizedModel | None) -> tuple[str, str]:
    """(title, one paragraph on how the model was made)."""
    h = config.hidden
    if config.layers > 1:
        return (f"Teacher: {config.layers} x GRU({h}) encoder-decoder, float",
                "Float training on simulated data. Not for the IP (several layers): students "
                "distil from it (`flirtl train student --teacher ... --kd-alpha ...`).")
    spec = quantized.spec
    kd = "No knowledge distillation (kd_alpha = 0)."
    if config.kd_alpha or config.kd_hidden:
        # the teacher directory may be retrained later: name the weights this student learnt from
        digest = hashlib.sha256((Path(config.teacher) / "float_weights.npz").read_bytes()).hexdigest()[:16]
        kd = f"Knowledge distillation from `{config.teacher}` (float_weights.npz sha256 {digest}...):"
        if config.kd_alpha:
            kd += (f" loss = {config.kd_alpha:g} x MSE(student, teacher) + {1 - config.kd_alpha:g} x "
                   f"MSE(student, truth), teacher outputs cached.")
        if config.kd_hidden:
            kd += (f" Hint term: + {config.kd_hidden:g} x MSE(P h_student, h_teacher) on the encoders' "
                   f"final states, P a linear map trained with the student and then dropped.")
    start = f" starting from the float weights of `{config.init}`" if config.init else ""
    if config.qat:
        how = (f"Quantization-aware training (QAT) on the IP's fixed-point datapath{start}: the forward "
               f"pass is the golden model's, code for code (`flirtl.nn.qat`), with straight-through "
               f"gradients; the formats were fixed before training.")
    else:
        how = (f"Float training{start}, then {config.bits}-bit post-training quantization (PTQ) "
               f"of the weights with per-tensor power-of-two scales.")
    formats = (f"Weights {config.bits} bits, biases {spec.fmt('enc.b_ih').width} bits, gates "
               f"{spec.fmt('gate')}, recurrent state {spec.fmt('hidden')}, SFD {spec.fmt('sfd')} "
               f"(every format in `spec.json`).")
    title = f"Seq2SeqLite {h}x{h}, {config.bits}-bit {'QAT' if config.qat else 'PTQ'}"
    return title + (" + KD" if config.kd_alpha else "") + (" + hint" if config.kd_hidden else ""), f"{how} {kd}\n{formats}"


def _session_text(session: dict, history: list[dict]) -> str:
    """'epochs 11-60: 2.9 s per epoch on cuda' (checkpoints older than the device field omit it)."""
    first, last = session["first_epoch"], session["last_epoch"]
    seconds = [row["seconds"] for row in history if first <= row["epoch"] <= last]
    text = f"epochs {first}-{last}"
    if seconds:
        text += f": {sum(seconds) / len(seconds):.1f} s per epoch"
    if "device" in session:
        text += f" on {session['device']}, {session['threads']} thread(s)"
    return text


def accuracy_table(rows: list[tuple[str, str, dict]]) -> list[str]:
    """The card's accuracy table: one line per (model, data, `card_sfd_scores` + tau_mean fields)."""
    table = ["| model | data | RMSE ch0 | R2 ch0 (pooled) | RMSE all ch | tau_mean MAE (ns) |",
             "|---|---|---|---|---|---|"]
    for name, where, m in rows:
        tau = f"{m['tau_mean_mae_ns']:.3f}" if "tau_mean_mae_ns" in m else "-"
        if m.get("tau_mean_nonfinite"):
            tau += f" ({m['tau_mean_nonfinite']} non-finite left out)"
        table.append(f"| {name} | {where} | {m['rmse_ch0']:.4f} | {m['r2_ch0']:.4f} | "
                     f"{m['rmse_all']:.4f} | {tau} |")
    return table


def model_card(config: TrainConfig, model: Seq2Seq, state: dict, *, data: dict, metrics: dict,
               quantized: QuantizedModel | None, report, command: str, wall_s: float) -> str:
    instrument = config.instrument()
    params = sum(p.numel() for p in model.parameters())
    sessions = "; ".join(_session_text(s, state["history"]) for s in state["sessions"])
    h, golden = config.hidden, metrics.get("golden_test")
    title, method = _method(config, quantized)
    rows = [("float", f"validation ({config.n_val} px)", metrics["float_val"]),
            ("float", f"test ({config.n_test} px)", metrics["float_test"])]
    if golden:
        rows.append((f"{config.bits}-bit golden model", f"test ({config.n_test} px, raw counts)", golden))
    table = accuracy_table(rows)
    data_rows = ["| split | preset | pixels | simulator seed |", "|---|---|---|---|"]
    data_rows += [f"| {split} | {d['preset']} | {d['n']} | {d['seed']} |" for split, d in data.items()]
    photon_rows = ["| photons | pixels | float |" + (" golden |" if golden else ""),
                   "|---|---|---|" + ("---|" if golden else "")]
    photon_rows += [f"| {b['photons'][0]:.0f}..{b['photons'][1]:.0f} | {b['pixels']} | "
                    f"{b['float_rmse_ch0']:.4f} |" + (f" {b['golden_rmse_ch0']:.4f} |" if golden else "")
                    for b in metrics["test_by_photons"]]
    reference = "; ".join(f"{name} {value}" for name, value in REFERENCE_RMSE.items())
    network = (f"{config.layers} x GRU({h}) encoder, {config.layers} x GRU({h}) decoder on zero inputs"
               if config.layers > 1 else f"Seq2SeqLite: GRU({h}) encoder, GRU({h}) decoder on zero inputs")
    loss = ("loss: MSE over all channels to the true SFD" if not config.kd_alpha else
            f"loss: {config.kd_alpha:g} x MSE to the teacher's SFD + {1 - config.kd_alpha:g} x MSE to the true SFD")
    if config.kd_hidden:
        loss += f" + {config.kd_hidden:g} x MSE(P h_student, h_teacher) of the encoders' final states (hint)"
    if config.lifetime_weight:
        loss += (f" + {config.lifetime_weight:g} x the lifetimes' error read from the SFD (Huber on tau_mean and "
                 f"the amplitude-weighted tau1, tau2 in ns, plus MSE of a)")
    if config.photon_weight:
        loss += (f"; pixels drawn with probability ~ photons^{config.photon_weight:g} "
                 f"(with replacement, one training set's worth per epoch)")
    if config.curriculum:
        loss += (f"; photon curriculum: epoch e < {config.curriculum} trains on the pixels with at least "
                 f"{instrument.photons_range[1]:g} x ({instrument.photons_range[0]:g} / "
                 f"{instrument.photons_range[1]:g})^(e / {config.curriculum}) photons, later epochs on all")
    check = metrics.get("qat_vs_golden")
    check_line = (f"\nThe QAT model's torch forward pass and the golden model agree on "
                  f"{check['identical_beats']} of {check['beats']} test output beats (all 3 channels).\n"
                  if check else "")
    golden_speed = f"\nGolden model speed here: {golden['pixels_per_s']:.0f} pixels/s.\n" if golden else ""
    quant_section = "" if quantized is None else f"""
## Quantization

{'Formats fixed from the starting weights before QAT' if config.qat else f'`flirtl.quant.quantize_model(weights, bits={config.bits}, n_bins={instrument.n_bins}, dt={instrument.dt:g})`'}:
per-tensor power-of-two scales; {report.total_saturated} weight/bias code(s) saturated.

```
{report}
```
"""
    files = ["- `float_weights.npz`: float weights of the best epoch"
             + (" (torch state_dict names)" if config.layers > 1 else " (`Seq2Seq.export_weights` names)"),
             "- `config.json`: TrainConfig, Seq2SeqConfig, data seeds, command"]
    if quantized is not None:
        files.append("- `spec.json`, `weights.npz`: the quantized model (`QuantizedModel.load`)")
    files += ["- `history.json`: per-epoch train loss, validation MSE and channel-0 RMSE, learning rate, seconds",
              "- `metrics.json`: the accuracy figures above"]
    if config.irf is not None:
        files.append("- `irf.npy`: the measured IRF it was trained with (unit sum), read by `flirtl eval`")
    return f"""# {title}

{method}

## Command

```
{command}
```

Rerunning it resumes from `{config.checkpoint_path}` when that exists;
without the checkpoint it retrains from scratch and, on the same thread count and device, reproduces
these weights{_reproduce_note(config, state)}.

## Data

Simulated with `flirtl.fli.simulate`, preset `{instrument.name}`: {instrument.n_bins} bins x
{instrument.dt:g} ns, {_irf_line(config, instrument)},
tau {_span(instrument.tau_range)} ns, {instrument.mono_fraction:.0%} mono-exponential, photons
{_span(instrument.photons_range)} (log-uniform), background {_span(instrument.background_range)}
counts/bin, {instrument.counting} counting. Simulator seeds are `flirtl.nn.data.split_seed(
{config.seed}, split)`. Model input: {'the IP normalisation of the raw counts (`flirtl.golden.normalize_counts`)' if config.qat else '`normalize_tpsf` (float)'}; target: the 3-channel SFD.

{chr(10).join(data_rows)}

## Training

- {network}, linear head to 3 channels; {params} torch parameters.
- Adam lr {config.lr:g}, batch {config.batch}, gradient clip {config.clip:g}, ReduceLROnPlateau
  (factor {config.lr_factor:g}, patience {config.lr_patience}, min {config.min_lr:g}), early stopping
  patience {config.patience}; {loss}.
- Epochs: {state['epoch']} ({sessions or 'none'}); stopped: {state['stop_reason']}.
  Best epoch {state['best_epoch']} (validation MSE {state['best_val_mse']:.4g}); its weights are
  the ones shipped. Final learning rate {state['history'][-1]['lr'] if state['history'] else config.lr:g}.
- Wall time: {wall_s / 60:.1f} min over every run of the command (data, training, export and
  evaluation), {state['elapsed_s'] / 60:.1f} min of it in the training loop. Directory written on
  `{config.resolved_device()}`, {config.threads or torch.get_num_threads()} torch thread(s), torch {torch.__version__}.

## Accuracy

SFD channel 0 (total decay); RMSE and R2 over every pixel and bin of the set, R2 pooled against the
set's mean (`flirtl.nn.metrics.pooled_r2`; `flirtl eval` reports the reference's per-pixel R2
instead). tau_mean from `lifetimes_from_sfd` (float) or the golden model's lifetime outputs.
The golden model normalises the raw counts itself, in integers, as the IP will.

{chr(10).join(table)}
{check_line}
By photon count (test set, channel-0 RMSE):

{chr(10).join(photon_rows)}

Reference (Erbas, Pandey, et al. 2024, their test set): {reference}.
{golden_speed}{quant_section}
## Files

{chr(10).join(files)}
"""


def _reproduce_note(config: TrainConfig, state: dict) -> str:
    if config.max_minutes is None or not str(state["stop_reason"]).startswith("time budget"):
        return ""
    return (f" if it runs the same {state['epoch']} epochs: the time budget ended this run, so for an "
            f"exact rerun pass `--epochs {state['epoch']}` without `--max-minutes`")


def _irf_line(config: TrainConfig, instrument) -> str:
    if config.irf:
        return f"measured IRF `{config.irf}` for every pixel"
    return (f"IRF `{instrument.irf_kind}` (gate width {_span(instrument.gate_width_range)} ns,\n"
            f"edge jitter {_span(instrument.jitter_range)} ns, t0 {_span(instrument.irf_position_range)} ns)")


def _span(pair) -> str:
    return f"{pair[0]:g}..{pair[1]:g}" if pair else "-"
