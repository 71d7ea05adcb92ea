"""GRU Seq2Seq in torch: the teacher (2 x GRU(128)) and the Seq2SeqLite students (1 x GRU(H)).

The encoder reads the normalised TPSF (input size 1); the decoder starts from the encoder's final
state(s) and reads T all-zero inputs; a linear head maps every decoder output to the 3 SFD channels
(total, short component, long component).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..spec import INPUT_SIZE, SFD_CHANNELS


@dataclass
class Seq2SeqConfig:
    hidden: int = 32
    layers: int = 1
    n_bins: int = 135

    def to_json(self) -> dict:
        return asdict(self)


class Seq2Seq(nn.Module):
    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config
        self.encoder = nn.GRU(INPUT_SIZE, config.hidden, config.layers, batch_first=True)
        self.decoder = nn.GRU(INPUT_SIZE, config.hidden, config.layers, batch_first=True)
        self.head = nn.Linear(config.hidden, SFD_CHANNELS)

    def forward(self, tpsf: torch.Tensor, *, with_state: bool = False):
        """(N, T) normalised TPSF -> (N, T, 3) SFD; with_state: also the encoder's final state
        (N, hidden) of its top layer, all the decoder knows of the pixel (distillation hints)."""
        _, state = self.encoder(tpsf.unsqueeze(-1))
        zeros = tpsf.new_zeros(tpsf.shape[0], self.config.n_bins, INPUT_SIZE)
        decoded, _ = self.decoder(zeros, state)
        sfd = self.head(decoded)
        return (sfd, state[-1]) if with_state else sfd

    def export_weights(self) -> dict:
        """Float weights of a one-layer model in the names of `flirtl.spec.WEIGHT_NAMES`."""
        if self.config.layers != 1:
            raise ValueError(f"only a one-layer (Seq2SeqLite) model maps to the IP, not {self.config.layers} layers")
        get = lambda p: p.detach().cpu().double().numpy().copy()
        return {
            "enc.w_ih": get(self.encoder.weight_ih_l0), "enc.w_hh": get(self.encoder.weight_hh_l0),
            "enc.b_ih": get(self.encoder.bias_ih_l0), "enc.b_hh": get(self.encoder.bias_hh_l0),
            "dec.w_hh": get(self.decoder.weight_hh_l0),
            "dec.b_ih": get(self.decoder.bias_ih_l0), "dec.b_hh": get(self.decoder.bias_hh_l0),
            "head.w": get(self.head.weight), "head.b": get(self.head.bias),
        }

    def load_weights(self, weights: dict) -> None:
        """Set a one-layer model from `export_weights`-style arrays (the decoder's W_ih is zeroed:
        its input is all zeros, so it never matters)."""
        to = lambda name: torch.as_tensor(weights[name], dtype=torch.float32)
        with torch.no_grad():
            self.encoder.weight_ih_l0.copy_(to("enc.w_ih")); self.encoder.weight_hh_l0.copy_(to("enc.w_hh"))
            self.encoder.bias_ih_l0.copy_(to("enc.b_ih")); self.encoder.bias_hh_l0.copy_(to("enc.b_hh"))
            self.decoder.weight_ih_l0.zero_(); self.decoder.weight_hh_l0.copy_(to("dec.w_hh"))
            self.decoder.bias_ih_l0.copy_(to("dec.b_ih")); self.decoder.bias_hh_l0.copy_(to("dec.b_hh"))
            self.head.weight.copy_(to("head.w")); self.head.bias.copy_(to("head.b"))


@torch.no_grad()
def predict(model: Seq2Seq, tpsf: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """(N, T) -> (N, T, 3) SFD in evaluation mode, in batches."""
    model.eval()
    return torch.cat([model(tpsf[start:start + batch]) for start in range(0, tpsf.shape[0], batch)])


def float_state(model: Seq2Seq) -> dict[str, np.ndarray]:
    """The float weights a model directory stores: `export_weights` names for a one-layer model
    (what the quantizer reads), torch state_dict names for a deeper one (the teacher)."""
    if model.config.layers == 1:
        return model.export_weights()
    return {name: value.detach().cpu().numpy().copy() for name, value in model.state_dict().items()}


def load_float_model(directory) -> Seq2Seq:
    """The float Seq2Seq of a model directory (its config.json and float_weights.npz)."""
    directory = Path(directory)
    for name in ("config.json", "float_weights.npz"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"model directory {str(directory)!r} has no {name}")
    config = Seq2SeqConfig(**json.loads((directory / "config.json").read_text())["model"])
    model = Seq2Seq(config)
    with np.load(directory / "float_weights.npz") as archive:
        weights = {name: archive[name] for name in archive.files}
    if config.layers == 1:
        model.load_weights(weights)
    else:
        model.load_state_dict({name: torch.as_tensor(value) for name, value in weights.items()})
    return model.eval()
