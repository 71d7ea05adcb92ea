"""GRU Seq2Seq in torch: the teacher (2 x GRU(128)) and the Seq2SeqLite students (1 x GRU(H)).

The encoder reads the normalised TPSF (input size 1); the decoder starts from the encoder's final
state(s) and reads T all-zero inputs (or, `decoder_input` 'encoder_state', an imported model's
RepeatVector wiring: it starts from zero and reads the encoder's final state at every step); a linear
head maps every decoder output to the 3 SFD channels (total, short component, long component).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..spec import INPUT_SIZE, SFD_CHANNELS, weight_shapes


@dataclass
class Seq2SeqConfig:
    hidden: int = 32
    layers: int = 1
    n_bins: int = 135
    decoder_input: str = "zeros"  # flirtl.spec.DECODER_INPUTS

    def to_json(self) -> dict:
        return asdict(self)


class Seq2Seq(nn.Module):
    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config
        self.encoder = nn.GRU(INPUT_SIZE, config.hidden, config.layers, batch_first=True)
        self.repeat = config.decoder_input == "encoder_state"
        self.decoder = nn.GRU(config.hidden if self.repeat else INPUT_SIZE, config.hidden, config.layers,
                              batch_first=True)
        self.head = nn.Linear(config.hidden, SFD_CHANNELS)

    def forward(self, tpsf: torch.Tensor, *, with_state: bool = False):
        """(N, T) normalised TPSF -> (N, T, 3) SFD; with_state: also the encoder's final state
        (N, hidden) of its top layer, all the decoder knows of the pixel (distillation hints)."""
        _, state = self.encoder(tpsf.unsqueeze(-1))
        if self.repeat:
            repeated = state[-1][:, None, :].expand(-1, self.config.n_bins, -1)
            decoded, _ = self.decoder(repeated, torch.zeros_like(state))
        else:
            zeros = tpsf.new_zeros(tpsf.shape[0], self.config.n_bins, INPUT_SIZE)
            decoded, _ = self.decoder(zeros, state)
        sfd = self.head(decoded)
        return (sfd, state[-1]) if with_state else sfd

    def export_weights(self) -> dict:
        """Float weights of a one-layer model in the names of `flirtl.spec.WEIGHT_NAMES`."""
        if self.config.layers != 1:
            raise ValueError(f"only a one-layer (Seq2SeqLite) model maps to the IP, not {self.config.layers} layers")
        get = lambda p: p.detach().cpu().double().numpy().copy()
        names = weight_shapes(self.config.hidden, self.config.decoder_input)
        return {name: get(self._parameter(name)) for name in names}

    def _parameter(self, name: str) -> nn.Parameter:
        """The torch parameter behind a `flirtl.spec.WEIGHT_NAMES` name."""
        layer, tensor = name.split(".")
        if layer == "head":
            return self.head.weight if tensor == "w" else self.head.bias
        kind, source = tensor.split("_")
        return getattr(self.encoder if layer == "enc" else self.decoder,
                       f"{'weight' if kind == 'w' else 'bias'}_{source}_l0")

    def load_weights(self, weights: dict) -> None:
        """Set a one-layer model from `export_weights`-style arrays (a decoder that reads zeros has
        its W_ih zeroed: it never matters)."""
        with torch.no_grad():
            self.decoder.weight_ih_l0.zero_()
            for name in weight_shapes(self.config.hidden, self.config.decoder_input):
                parameter = self._parameter(name)
                parameter.copy_(torch.as_tensor(weights[name], dtype=parameter.dtype))


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
