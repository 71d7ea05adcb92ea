"""The configuration of a training run (`TrainConfig`) and its command-line spelling.

`OPTIONS` is the one table of flags for `flirtl train`'s parser and for `command_line`, the
command written into every model directory.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..fli import check_measured_irf, get_instrument, load_irf
from .data import DataSource, instrument_changes, trained_source

CHECKPOINT = "last.pt"


@dataclass
class TrainConfig:
    """Everything that defines a student training run (and nothing about how it is watched)."""

    hidden: int = 32
    layers: int = 1              # GRU layers of the encoder and the decoder (teacher: 2)
    preset: str = "ss3"
    bins: int | None = None      # the instrument's time bins, when not the preset's
    dt: float | None = None      # its bin width in ns, when not the preset's
    irf: str | None = None       # a measured IRF (.npy / .csv, `bins` samples) instead of the preset's
    irf_position: tuple[float, float] | None = None  # where the preset's IRF peaks (ns), when not its range
    background: str | None = None  # background rule ('head' / 'ends'), when not the preset's
    photons: tuple[float, float] | None = None  # photons per pixel (log-uniform), when not the preset's
    resolve_ratio: float | None = None  # label components closer than tau2/tau1 < this as one
    resolve_fraction: float | None = None  # ... and components weaker than this amplitude fraction
    resolve_sigma: float | None = None  # ... and lifetimes fewer Cramer-Rao deviations apart than this
    n_train: int = 40_000
    n_val: int = 4_000
    n_test: int = 4_096          # held-out pixels for the float and golden-model evaluation
    seed: int = 1                # weight init, batch order, and (through split_seed) the data
    batch: int = 256
    lr: float = 1e-3             # Adam
    clip: float = 1.0            # gradient norm
    patience: int = 10           # epochs without a better validation MSE before stopping
    lr_patience: int = 3         # ReduceLROnPlateau: epochs without improvement before a cut
    lr_factor: float = 0.5
    min_lr: float = 1e-5
    max_epochs: int = 100
    max_minutes: float | None = None  # wall-clock budget of the training loop, over all resumes
    bits: int = 8                # quantization width of weights, activations and input
    hidden_bits: int | None = None  # recurrent state width of the quantized model (default: bits)
    qat: bool = False            # train on the IP's fixed-point datapath (quantization-aware)
    init: str | None = None      # model directory whose float weights start the run
    teacher: str | None = None   # teacher model directory (distillation, kd_alpha > 0)
    kd_alpha: float = 0.0        # weight of the teacher term in the loss
    kd_hidden: float = 0.0       # weight of the hint term: MSE(P h_student, h_teacher), encoder final states
    lifetime_weight: float = 0.0  # weight of the lifetime-space term beside the SFD MSE (0 = off)
    curriculum: int = 0          # photon curriculum: epochs over which dimmer pixels join (0 = off)
    photon_weight: float = 0.0   # draw training pixels with probability ~ photons ** photon_weight
    out: str = "models/seq2seqlite-32x32"
    checkpoint_dir: str = "checkpoints"
    data_dir: str = "data"
    device: str = "auto"         # 'auto' = cuda if available, else cpu
    threads: int | None = None   # torch (and simulator, golden model) threads; None = default

    def __post_init__(self):
        for name in ("hidden", "layers", "n_train", "n_val", "n_test", "batch", "patience", "lr_patience",
                     "max_epochs", "bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be an int >= 1, not {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"TrainConfig.seed must be an int >= 0, not {self.seed!r}")
        for name in ("lr", "clip", "min_lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"TrainConfig.{name} must be a number > 0, not {value!r}")
        if not 0 < self.lr_factor < 1:
            raise ValueError(f"TrainConfig.lr_factor must lie in (0, 1), not {self.lr_factor!r}")
        if not isinstance(self.curriculum, int) or isinstance(self.curriculum, bool) or self.curriculum < 0:
            raise ValueError(f"TrainConfig.curriculum must be an int >= 0, not {self.curriculum!r}")
        if not (isinstance(self.photon_weight, (int, float)) and 0 <= self.photon_weight <= 2):
            raise ValueError(f"TrainConfig.photon_weight must lie in [0, 2], not {self.photon_weight!r}")
        if not (isinstance(self.lifetime_weight, (int, float)) and 0 <= self.lifetime_weight <= 10):
            raise ValueError(f"TrainConfig.lifetime_weight must lie in [0, 10], not {self.lifetime_weight!r}")
        if not 0 <= self.kd_alpha <= 1:
            raise ValueError(f"TrainConfig.kd_alpha must lie in [0, 1], not {self.kd_alpha!r}")
        if not (isinstance(self.kd_hidden, (int, float)) and 0 <= self.kd_hidden <= 100):
            raise ValueError(f"TrainConfig.kd_hidden must lie in [0, 100], not {self.kd_hidden!r}")
        for name in ("kd_alpha", "kd_hidden"):
            if getattr(self, name) and not self.teacher:
                raise ValueError(f"{name}={getattr(self, name)!r} distils from a teacher: pass --teacher DIR")
        if self.layers > 1 and (self.qat or self.kd_alpha or self.kd_hidden):
            raise ValueError("a multi-layer model (the teacher) trains in float without a teacher: "
                             "--qat, --kd-alpha and --kd-hidden are for one-layer students")
        for name in ("init", "teacher"):
            path = getattr(self, name)
            if path is not None and not (Path(path) / "float_weights.npz").is_file():
                raise ValueError(f"--{name} {path!r} is not a model directory (no float_weights.npz)")
            # --init may come from another instrument (transfer learning: fine-tuning the shipped
            # weights for a user's); a teacher's outputs are targets, so its instrument must be ours
            if name == "teacher" and path is not None and trained_source(path).key != self.source().key:
                raise ValueError(f"--{name} {path!r} was trained for another instrument "
                                 f"({trained_source(path).key}, this run: {self.source().key})")
        if self.hidden_bits is not None and (not isinstance(self.hidden_bits, int) or self.hidden_bits < 2):
            raise ValueError(f"TrainConfig.hidden_bits must be an int >= 2 or None, not {self.hidden_bits!r}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"TrainConfig.max_minutes must be > 0 or None, not {self.max_minutes!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"TrainConfig.threads must be an int >= 1 or None, not {self.threads!r}")
        if self.device != "auto" and not self.device.startswith(("cpu", "cuda")):
            raise ValueError(f"TrainConfig.device must be 'auto', 'cpu' or 'cuda[:n]', not {self.device!r}")
        self.source()  # raises on an unknown preset, a bad bin count or width, an unreadable IRF

    def instrument(self):
        """The preset with this run's bin count and width."""
        return get_instrument(self.preset, **instrument_changes(asdict(self)))

    def source(self) -> DataSource:
        """What the simulator draws the data from: the instrument and the measured IRF, if any."""
        instrument = self.instrument()
        irf = None if self.irf is None else load_irf(self.irf, n_bins=instrument.n_bins)
        if irf is not None:
            check_measured_irf(instrument, irf, source=f"IRF file {self.irf!r}")
        return DataSource(instrument, irf)

    @property
    def name(self) -> str:
        """The run's name: the output directory's, and its checkpoint directory's."""
        return Path(self.out).name

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint_dir) / self.name / CHECKPOINT

    def quant_args(self) -> dict:
        """`quantize_model`'s arguments for this run's bit widths and instrument."""
        instrument = self.instrument()
        return dict(bits=self.bits, hidden_bits=self.hidden_bits, n_bins=instrument.n_bins,
                    dt=instrument.dt, bg_bins=instrument.bg_bins, background=instrument.background)

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


#: Fields that may change between a run and its resumption: limits and where things go, not what
#: is trained.
RESUMABLE_CHANGES = frozenset({"patience", "max_epochs", "max_minutes", "n_test", "out",
                               "checkpoint_dir", "data_dir", "device", "threads"})
#: ... and `bits` / `hidden_bits` too for a float model, which quantizes them only at the end.
POST_TRAINING = frozenset({"bits", "hidden_bits"})


#: (flag, TrainConfig field, help): one table for the parser and for `command_line`.
OPTIONS = (
    ("--hidden", "hidden", "GRU units of the encoder and the decoder"),
    ("--layers", "layers", "GRU layers of the encoder and the decoder"),
    ("--preset", "preset", "instrument preset of the simulated data"),
    ("--bins", "bins", "time bins of your instrument (default: the preset's)"),
    ("--dt", "dt", "bin width of your instrument in ns (default: the preset's)"),
    ("--irf", "irf", "measured IRF of your instrument (.npy or .csv, one value per bin)"),
    ("--irf-position", "irf_position", "range of the IRF peak in ns (default: the preset's); a window "
     "shorter or shifted against the preset's may need it, a measured IRF only has to pass its check"),
    ("--background", "background", "background bins of the model input: 'head' (the first ones; the decay "
     "must rise after them) or 'ends' (the lesser of the first and the last: the decay may start "
     "anywhere in the window); default: the preset's"),
    ("--photons", "photons", "range of photons per pixel (log-uniform; default: the preset's)"),
    ("--resolve-ratio", "resolve_ratio", "label a pixel whose lifetimes differ by less than this ratio "
     "(tau2 / tau1) as one component, a = 1 (default: the preset's, 1 = off)"),
    ("--resolve-fraction", "resolve_fraction", "label a pixel one of whose components has less than this "
     "amplitude fraction as one component, a = 1 (default: the preset's, 0 = off)"),
    ("--resolve-sigma", "resolve_sigma", "label a pixel whose lifetimes lie fewer than this many Cramer-Rao "
     "standard deviations apart (at its own photons, background and IRF) as one component, a = 1 "
     "(default: the preset's, 0 = off)"),
    ("--n-train", "n_train", "training pixels"),
    ("--n-val", "n_val", "validation pixels (early stopping, LR schedule)"),
    ("--n-test", "n_test", "held-out test pixels for the float and golden-model evaluation"),
    ("--seed", "seed", "seed of weight init, batch order and data"),
    ("--batch", "batch", "batch size"),
    ("--lr", "lr", "Adam learning rate"),
    ("--clip", "clip", "gradient-norm clip"),
    ("--patience", "patience", "early stopping: epochs without a better validation MSE"),
    ("--lr-patience", "lr_patience", "ReduceLROnPlateau patience (epochs)"),
    ("--lr-factor", "lr_factor", "ReduceLROnPlateau factor"),
    ("--min-lr", "min_lr", "lowest learning rate"),
    ("--epochs", "max_epochs", "most epochs"),
    ("--max-minutes", "max_minutes", "wall-clock budget of the training loop, over all resumes"),
    ("--bits", "bits", "quantization width (weights, activations, input)"),
    ("--hidden-bits", "hidden_bits", "recurrent state width (default: --bits)"),
    ("--qat", "qat", "quantization-aware training on the IP's fixed-point datapath"),
    ("--init", "init", "start from the float weights of this model directory"),
    ("--teacher", "teacher", "teacher model directory to distil from"),
    ("--kd-alpha", "kd_alpha", "weight of the teacher term in the loss (0: no distillation)"),
    ("--kd-hidden", "kd_hidden", "weight of the hint term: MSE between a learnt linear map of the student "
                                 "encoder's final state and the teacher's (0: off)"),
    ("--lifetime-loss", "lifetime_weight", "weight of a loss on the lifetimes read from the SFD (tau_mean, "
     "tau1, tau2 in ns, a) beside the SFD MSE (0: off; at 0.04 the term equals a fine-tuned 32x32 model's MSE; 0.1 and 1 are "
     "measured by benchmarks/lifetime_loss.py)"),
    ("--photon-weight", "photon_weight", "draw training pixels with probability ~ photons ** this "
                                         "(0: uniform; 0.5 leans towards the bright pixels)"),
    ("--curriculum", "curriculum", "photon curriculum: the brightest pixels first, every pixel from this "
                                   "epoch on (0: off)"),
    ("--out", "out", "model directory to write"),
    ("--checkpoint-dir", "checkpoint_dir", "checkpoints go to <dir>/<name of --out>/last.pt"),
    ("--data-dir", "data_dir", "simulation cache directory"),
    ("--device", "device", "'auto' (cuda if available), 'cpu' or 'cuda'"),
    ("--threads", "threads", "torch threads (1 leaves the other cores to other jobs)"),
)


#: The two subcommands: what each trains and the defaults that differ from TrainConfig's.
MODEL_KINDS = {
    "student": ("train a float Seq2SeqLite student, quantize it, write a model directory", {}),
    "teacher": ("train the float 2 x GRU(128) teacher that students distil from",
                dict(hidden=128, layers=2, n_train=100_000, out="models/teacher")),
}



def command_line(config: TrainConfig) -> str:
    """The command that trains `config`, every option spelled out."""
    words = ["python", "-m", "flirtl.nn.train", "teacher" if config.layers > 1 else "student"]
    for flag, name, _help in OPTIONS:
        value = getattr(config, name)
        if isinstance(value, bool):
            words += [flag] if value else []
        elif isinstance(value, tuple):
            words += [flag, *(repr(v) for v in value)]
        elif value is not None:
            words += [flag, repr(value) if isinstance(value, float) else str(value)]
    return " ".join(shlex.quote(word) for word in words)
