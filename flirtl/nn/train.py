"""Train the teacher and the Seq2SeqLite students on simulated data; write model directories.

    python -m flirtl.nn.train student --hidden 32 --n-train 50000 --epochs 100 --max-minutes 31 \\
        --out models/seq2seqlite-32x32-float --seed 1 --threads 1
    python -m flirtl.nn.train student --qat --bits 8 --init models/seq2seqlite-32x32-float \\
        --teacher models/teacher --kd-alpha 0.6 --out models/seq2seqlite-32x32
    python -m flirtl.nn.train teacher --out models/teacher

`train_student(config)` runs Adam with gradient clipping, ReduceLROnPlateau and early stopping on the
validation MSE, and checkpoints after every epoch to `<checkpoint_dir>/<name>/last.pt` (model,
optimizer, scheduler, epoch, best weights, history, QAT formats): running the same command again
resumes at the next epoch. Batches are drawn from a permutation seeded by (seed, epoch), so an
interrupted and resumed run ends with the same weights as one that ran through (in one process;
under torchrun the last partial batch of an epoch is dropped). At the end it writes the model
directory:

    float_weights.npz  the best epoch's float weights (QAT: the float64 master weights)
    config.json        TrainConfig, Seq2SeqConfig, data seeds, the command
    spec.json, weights.npz   the quantized model: QAT codes, or post-training quantization
    history.json       per-epoch losses, learning rate and time
    metrics.json       float (validation, test) and golden-model (test) accuracy
    model_card.md      command, data, wall time, accuracy, quantization report

The loss is a hook: `train_student(config, loss_fn=...)` takes any `loss_fn(pred, target, teacher)`
(teacher: the cached teacher SFD of the batch, or None); the default is `distillation_loss`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import math
import os
import shlex
import sys
import time
import typing
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..files import atomic_write, check_output_dir
from ..fli import check_measured_irf, get_instrument, lifetimes_from_sfd, load_irf
from ..golden import GoldenModel
from ..quant import QuantizedModel, dump_json, quantize_model
from ..spec import ModelSpec
from .data import (DataSource, SplitTensors, instrument_changes, model_input, simulated, split_seed, split_tensors,
                   teacher_outputs, trained_source)
from .metrics import lifetime_scores, sfd_summary
from .model import Seq2Seq, Seq2SeqConfig, float_state, load_float_model
from .qat import QuantSeq2Seq

#: loss_fn(pred (B, T, 3), target (B, T, 3), teacher (B, T, 3) or None) -> scalar loss tensor.
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

CHECKPOINT = "last.pt"
#: Published channel-0 RMSE of the reference work (Erbas, Pandey, et al. 2024), for the model card.
REFERENCE_RMSE = {"teacher (float)": 0.0139, "8-bit 32-unit KD student": 0.0162}


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


def distillation_loss(alpha: float) -> LossFn:
    """alpha * MSE(student, teacher) + (1 - alpha) * MSE(student, truth), over all channels and
    bins; alpha = 0 is plain supervised training."""
    def loss(pred: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor | None) -> torch.Tensor:
        supervised = nn.functional.mse_loss(pred, target)
        if not alpha:
            return supervised
        return alpha * nn.functional.mse_loss(pred, teacher) + (1 - alpha) * supervised
    return loss


class Hinted(nn.Module):
    """A student with a hint regressor (FitNets): a linear map of the student encoder's final state
    onto the teacher's, trained beside it; forward gives (SFD, mapped state). Only the student is
    written out: the map exists for the loss."""

    def __init__(self, student: nn.Module, teacher_hidden: int):
        super().__init__()
        self.student = student
        hidden = student.spec.hidden if isinstance(student, QuantSeq2Seq) else student.config.hidden
        self.hint = nn.Linear(hidden, teacher_hidden)

    def forward(self, tpsf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sfd, state = self.student(tpsf, with_state=True)
        return sfd, self.hint(state)


# -- training -----------------------------------------------------------------------------------

def train_student(config: TrainConfig, *, loss_fn: LossFn | None = None, fresh: bool = False,
                  progress: bool = True) -> Path:
    """Train (or resume) the student of `config`, then write and return its model directory.

    loss_fn: the training loss (default `distillation_loss(config.kd_alpha)`).
    fresh:   ignore an existing checkpoint and start from epoch 1.
    """
    # outputs checked before hours of training, not after
    check_output_dir(config.out, what="--out")
    check_output_dir(config.checkpoint_path.parent, what="checkpoint directory")
    check_output_dir(config.data_dir, what="--data-dir")
    loss_fn = loss_fn or distillation_loss(config.kd_alpha)
    session_start = time.monotonic()
    if config.threads:
        torch.set_num_threads(config.threads)
    group, device = _join_group(config)
    progress = progress and group.leader
    torch.manual_seed(config.seed)
    resume = config.checkpoint_path.is_file() and not fresh
    checkpoint = _load_checkpoint(config.checkpoint_path) if resume else None  # before any work
    model = _build_model(config, checkpoint).to(device)
    spec = getattr(model, "spec", None)  # a quantization-aware model reads the IP's input
    data_args = dict(cache_dir=config.data_dir, workers=config.threads, progress=progress, spec=spec)
    source = config.source()
    with group.leader_first():  # one process simulates and runs the teacher; the rest read its caches
        train = split_tensors(source, n=config.n_train, seed=config.seed, split="train", **data_args)
        val = split_tensors(source, n=config.n_val, seed=config.seed, split="val", **data_args)
        if config.kd_alpha or config.kd_hidden:
            sfd, state = teacher_outputs(config.teacher, source, n=config.n_train, seed=train.seed,
                                         cache_dir=config.data_dir, device=device, progress=progress)
            train.teacher = sfd if config.kd_alpha else None
            train.teacher_state = state if config.kd_hidden else None
    train, val = train.to(device), val.to(device)
    # the hint regressor trains with the student and is dropped with the training loop
    learner = Hinted(model, train.teacher_state.shape[1]).to(device) if config.kd_hidden else model
    # every process holds the same weights; DDP averages the gradients of their shares of a batch
    trainer = learner if group.world == 1 else nn.parallel.DistributedDataParallel(learner)

    optimizer = torch.optim.Adam(learner.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience,
        min_lr=config.min_lr)
    state = _fresh_state(model)
    if resume:
        state = _resume(config, checkpoint, learner, optimizer, scheduler)
        group.say(f"resuming {config.name} from {config.checkpoint_path} after epoch {state['epoch']}")
    first_epoch = state["epoch"] + 1
    earlier_wall_s = state["wall_s"]

    def checkpoint():
        state["wall_s"] = earlier_wall_s + time.monotonic() - session_start
        if group.leader:
            _save_checkpoint(config, learner, optimizer, scheduler, state, first_epoch)

    while True:
        stop = group.agree(_stop_reason(config, state))  # every process stops after the same epoch
        if stop:
            break
        epoch = state["epoch"] + 1
        started = time.monotonic()
        train_loss = _train_epoch(trainer, optimizer, train, loss_fn, config, epoch, progress, group)
        # the leader's validation drives every process's schedule and early stopping
        val_mse, val_rmse0 = group.agree(_validate(model, val))
        scheduler.step(val_mse)
        seconds = time.monotonic() - started
        state["elapsed_s"] += seconds
        state["epoch"] = epoch
        improved = val_mse < state["best_val_mse"]
        if improved:
            state.update(best_val_mse=val_mse, best_epoch=epoch, bad_epochs=0,
                         best_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        else:
            state["bad_epochs"] += 1
        lr = optimizer.param_groups[0]["lr"]
        state["history"].append({"epoch": epoch, "train_loss": train_loss, "val_mse": val_mse,
                                 "val_rmse_ch0": val_rmse0, "lr": lr, "seconds": seconds})
        checkpoint()
        group.say(f"epoch {epoch:3d}  train {train_loss:.3e}  val mse {val_mse:.3e}  "
                  f"val rmse ch0 {val_rmse0:.4f}  lr {lr:.1e}  {seconds:.0f} s"
                  f"{'  *' if improved else ''}")
    state["stop_reason"] = stop
    checkpoint()
    best = next((row for row in state["history"] if row["epoch"] == state["best_epoch"]), None)
    reached = f" (validation MSE {best['val_mse']:.3e}, ch0 RMSE {best['val_rmse_ch0']:.4f})" if best else ""
    budget = (f"; the time budget allowed {state['epoch']} of --epochs {config.max_epochs}: a longer "
              f"--max-minutes trains further (the same command resumes)" if stop.startswith("time budget") else "")
    group.say(f"stopped after epoch {state['epoch']}: {stop}; best epoch {state['best_epoch']}{reached}{budget}"
              + (f"; {group.world} processes" if group.world > 1 else ""))

    model.load_state_dict(state["best_state"])
    # leave the group before the leader's evaluation, which may outlast a collective's timeout;
    # the DDP wrapper goes first (its reducer tearing down after its process group aborts the process)
    del trainer, learner
    group.leave()
    if not group.leader:
        return Path(config.out)
    return write_model_dir(config, model, state, progress=progress,
                           wall_s=lambda: earlier_wall_s + time.monotonic() - session_start)


@dataclass
class _Group:
    """This process's place among the training processes (one, unless started by torchrun)."""

    rank: int = 0
    world: int = 1

    @property
    def leader(self) -> bool:
        """Rank 0 prints, checkpoints and writes the model directory."""
        return self.rank == 0

    def agree(self, value):
        """The leader's `value`, in every process."""
        if self.world == 1:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    @contextlib.contextmanager
    def leader_first(self):
        """The leader runs the block first (filling the data caches), then the others run it."""
        if self.world > 1 and not self.leader:
            torch.distributed.barrier()
        yield
        if self.world > 1 and self.leader:
            torch.distributed.barrier()

    def say(self, message: str) -> None:
        if self.leader:
            print(message, file=sys.stderr)

    def leave(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def _join_group(config: TrainConfig) -> tuple[_Group, torch.device]:
    """Join torchrun's process group when it started this process (WORLD_SIZE > 1): NCCL with one
    GPU per process (LOCAL_RANK), gloo on CPUs. Each process trains on its share of every batch."""
    device = config.resolved_device()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return _Group(), device
    if config.batch % world or config.n_train < config.batch:
        raise ValueError(f"--batch {config.batch} must divide evenly among {world} processes and "
                         f"be at most --n-train {config.n_train} (a partial batch is dropped)")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Group(torch.distributed.get_rank(), world), device


def _build_model(config: TrainConfig, checkpoint: dict | None) -> nn.Module:
    """The float Seq2Seq, or for --qat the model on the IP's datapath, whose formats are fixed
    here from the starting weights (--init, else a fresh initialisation) and kept to the end.
    A resumed run rebuilds the formats its checkpoint was trained in."""
    instrument = config.instrument()
    model_config = Seq2SeqConfig(hidden=config.hidden, layers=config.layers, n_bins=instrument.n_bins)
    model = Seq2Seq(model_config)
    if config.init:
        start = load_float_model(config.init)
        # the weights do not depend on the bin count (one input per step): any window may start
        if dataclasses.replace(start.config, n_bins=model_config.n_bins) != model_config:
            raise ValueError(f"--init {config.init!r} holds a {start.config}, this run trains a {model_config}")
        model = start
    if not config.qat:
        return model
    if checkpoint is not None and checkpoint.get("spec"):
        return QuantSeq2Seq(ModelSpec.loads(checkpoint["spec"]), model.export_weights())
    spec = quantize_model(model.export_weights(), **_quant_args(config))[0].spec
    return QuantSeq2Seq(spec, model.export_weights())


def _quant_args(config: TrainConfig) -> dict:
    instrument = config.instrument()
    return dict(bits=config.bits, hidden_bits=config.hidden_bits, n_bins=instrument.n_bins,
                dt=instrument.dt, bg_bins=instrument.bg_bins,
                background=instrument.background)


def _fresh_state(model: nn.Module) -> dict:
    return {"epoch": 0, "elapsed_s": 0.0, "wall_s": 0.0, "best_val_mse": math.inf, "best_epoch": 0,
            "bad_epochs": 0, "best_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "history": [], "sessions": [], "stop_reason": None,
            "spec": model.spec.dumps() if isinstance(model, QuantSeq2Seq) else None}


def _stop_reason(config: TrainConfig, state: dict) -> str | None:
    if state["epoch"] >= config.max_epochs:
        return f"reached max_epochs={config.max_epochs}"
    if state["bad_epochs"] >= config.patience:
        return f"early stopping: no better validation MSE for {config.patience} epochs"
    if config.max_minutes is not None and state["history"]:
        # stop before an epoch that would end past the budget (epochs take about the same time)
        mean_epoch = state["elapsed_s"] / len(state["history"])
        if state["elapsed_s"] + mean_epoch > 60 * config.max_minutes:
            return f"time budget: max_minutes={config.max_minutes:g}"
    return None


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of epoch `epoch`'s batch order: depends on (seed, epoch) only, so a resumed
    run draws the batches an uninterrupted one would."""
    entropy = np.random.SeedSequence([seed, epoch]).generate_state(2)
    return torch.Generator().manual_seed(int(entropy[0]) << 32 | int(entropy[1]))


def photon_floor(config: TrainConfig, epoch: int) -> float:
    """The fewest photons a training pixel of `epoch` may have: under a curriculum of N epochs the
    floor falls log-linearly from the top of the preset's photon range, so epoch 1 trains on the
    brightest 1/N of the (log-uniform) range and epoch N and later on every pixel."""
    lo, hi = config.instrument().photons_range
    if epoch >= config.curriculum:
        return 0.0
    return float(hi * (lo / hi) ** (epoch / config.curriculum))


def epoch_order(train: SplitTensors, config: TrainConfig, epoch: int) -> torch.Tensor:
    """The training pixels of `epoch` in the order they are batched: a permutation seeded by
    (seed, epoch), less the pixels under the curriculum's photon floor; with a photon weight, as
    many draws (with replacement) at probabilities ~ photons ** weight, which weights the loss
    towards the bright pixels, where the Cramer-Rao bound is small."""
    generator = epoch_generator(config.seed, epoch)
    if config.photon_weight:
        chance = train.photons.double() ** config.photon_weight
        order = torch.multinomial(chance, len(train), replacement=True, generator=generator)
    else:
        order = torch.randperm(len(train), generator=generator)
    floor = photon_floor(config, epoch)
    if floor:
        order = order[train.photons[order] >= floor]
    return order


def _train_epoch(model: nn.Module, optimizer, train: SplitTensors, loss_fn: LossFn,
                 config: TrainConfig, epoch: int, progress: bool, group: _Group = _Group()) -> float:
    """One pass over the training split in batches of `config.batch` pixels (each of `group.world`
    processes takes every world-th pixel of a batch; several processes skip the last, partial
    batch so that none runs empty); returns the mean training loss."""
    model.train()
    order = epoch_order(train, config, epoch)
    stop = len(order) if group.world == 1 else len(order) // config.batch * config.batch
    total, seen = 0.0, 0
    with tqdm(total=stop, unit="px", desc=f"epoch {epoch}", leave=False,
              disable=not progress, mininterval=1.0) as bar:
        for start in range(0, stop, config.batch):
            index = order[start:start + config.batch][group.rank::group.world].to(train.tpsf.device)
            teacher = None if train.teacher is None else train.teacher[index]
            if train.teacher_state is None:
                loss = loss_fn(model(train.tpsf[index]), train.sfd[index], teacher)
            else:
                pred, hint = model(train.tpsf[index])
                loss = (loss_fn(pred, train.sfd[index], teacher)
                        + config.kd_hidden * nn.functional.mse_loss(hint, train.teacher_state[index]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            total += loss.item() * len(index)
            seen += len(index)
            bar.update(len(index) * group.world)
            bar.set_postfix(loss=f"{total / seen:.3e}", refresh=False)
    if group.world > 1:
        sums = torch.tensor([total, seen], dtype=torch.float64, device=train.tpsf.device)
        torch.distributed.all_reduce(sums)
        total, seen = sums.tolist()
    return total / seen


@torch.no_grad()
def predict(model: Seq2Seq, tpsf: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """(N, T) -> (N, T, 3) SFD in evaluation mode, in batches."""
    model.eval()
    return torch.cat([model(tpsf[start:start + batch]) for start in range(0, tpsf.shape[0], batch)])


def _validate(model: Seq2Seq, val: SplitTensors) -> tuple[float, float]:
    """(MSE over all channels, RMSE of channel 0) on the validation split."""
    error = predict(model, val.tpsf) - val.sfd
    return float(error.square().mean()), float(error[..., 0].square().mean().sqrt())


# -- checkpoints --------------------------------------------------------------------------------

def _save_checkpoint(config: TrainConfig, model, optimizer, scheduler, state: dict,
                     first_epoch: int) -> None:
    sessions = [s for s in state["sessions"] if s["first_epoch"] != first_epoch]
    if state["epoch"] >= first_epoch:
        sessions.append({"first_epoch": first_epoch, "last_epoch": state["epoch"],
                         "device": str(config.resolved_device()), "threads": torch.get_num_threads()})
    state["sessions"] = sessions
    payload = {"config": asdict(config), "model": model.state_dict(),
               "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), **state}
    path = config.checkpoint_path
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda file: torch.save(payload, file))


def _load_checkpoint(path: Path) -> dict:
    """A checkpoint's tensors and plain metadata (weights_only: a crafted file cannot run code)."""
    try:
        with warnings.catch_warnings():  # torch warns about a foreign file's pickle protocol first
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch fails on a damaged or foreign file in many ways
        raise ValueError(f"checkpoint {str(path)!r} is not a readable flirtl checkpoint "
                         f"({type(error).__name__}); pass --fresh to start over") from None
    if not (isinstance(payload, dict) and isinstance(payload.get("config"), dict) and "model" in payload):
        raise ValueError(f"checkpoint {str(path)!r} is not a flirtl checkpoint; pass --fresh to start over")
    return payload


def _resume(config: TrainConfig, payload: dict, model, optimizer, scheduler) -> dict:
    saved = payload["config"]
    defaults = asdict(TrainConfig())
    # a field newer than the checkpoint matches when it holds its default
    free = RESUMABLE_CHANGES | (POST_TRAINING if not config.qat else frozenset())
    changed = sorted(name for name, value in asdict(config).items()
                     if name not in free and saved.get(name, defaults[name]) != value)
    if changed:
        details = ", ".join(f"{name}: {saved.get(name)!r} -> {getattr(config, name)!r}" for name in changed)
        raise ValueError(
            f"checkpoint {str(config.checkpoint_path)!r} was trained with a different configuration "
            f"({details}); pass --fresh (fresh=True) to start over, or another --out")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    # checkpoints from before wall_s existed recorded only the training loop's time
    fallback = {"wall_s": payload["elapsed_s"], "spec": None}
    return {key: payload.get(key, fallback.get(key)) for key in _fresh_state(model)}


# -- the model directory ------------------------------------------------------------------------

def write_model_dir(config: TrainConfig, model: nn.Module, state: dict, *, wall_s: Callable[[], float], progress: bool = True) -> Path:
    """Write float weights, config, quantized model, history and model card to `config.out`.

    wall_s() is the wall time of every run of the command so far, this one included."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    qat = model if isinstance(model, QuantSeq2Seq) else None
    float_model = _float_twin(model) if qat else model
    # QAT: the float64 masters, which quantize to exactly the shipped codes
    weights = qat.export_weights() if qat else float_state(float_model)
    atomic_write(out / "float_weights.npz", lambda file: np.savez(file, **weights))
    command = command_line(config)
    data = {split: {"preset": config.preset, "n": n, "seed": split_seed(config.seed, split)}
            for split, n in (("train", config.n_train), ("val", config.n_val), ("test", config.n_test))}
    dump_json(out / "config.json", {"train": asdict(config), "model": float_model.config.to_json(),
                                    "data": data, "command": command})
    dump_json(out / "history.json", state["history"])
    if config.irf is not None:  # the directory carries its IRF, wherever the model is used later
        atomic_write(out / "irf.npy", lambda file: np.save(file, config.source().irf))

    quantized = report = None
    if qat is not None:
        quantized, report = qat.quantized()  # the formats it trained in
    elif config.layers == 1:
        quantized, report = quantize_model(weights, **_quant_args(config))
    if quantized is not None:
        quantized.save(out)

    metrics = evaluate(config, float_model, quantized, qat=qat, progress=progress)
    card = model_card(config, float_model, state, data=data, metrics=metrics, quantized=quantized,
                      report=report, command=command, wall_s=wall_s())
    atomic_write(out / "model_card.md", card.encode())
    dump_json(out / "metrics.json", metrics)
    summary = f"float test RMSE ch0 {metrics['float_test']['rmse_ch0']:.4f}"
    if quantized is not None:
        summary += f", {config.bits}-bit golden {metrics['golden_test']['rmse_ch0']:.4f}"
    print(f"wrote {out}: {summary}", file=sys.stderr)
    return out


def _float_twin(model: QuantSeq2Seq) -> Seq2Seq:
    """The float Seq2SeqLite with a quantization-aware model's master weights."""
    spec = model.spec
    twin = Seq2Seq(Seq2SeqConfig(hidden=spec.hidden, layers=1, n_bins=spec.n_bins))
    twin.load_weights(model.export_weights())
    return twin.to(next(model.parameters()).device)


def _tau_mean_error(estimate: dict, truth: dict) -> dict[str, float]:
    """The card's lifetime figure: `metrics.lifetime_scores` of tau_mean."""
    score = lifetime_scores(estimate, truth, names=("tau_mean",))["tau_mean"]
    return {"tau_mean_mae_ns": score["mae"], "tau_mean_nonfinite": score["nonfinite"]}


def evaluate(config: TrainConfig, model: Seq2Seq, quantized: QuantizedModel | None, *,
             qat: QuantSeq2Seq | None = None, progress: bool = True) -> dict[str, dict]:
    """Float model on the validation and test splits; the integer golden model on the test split's
    raw counts (its own normalisation, as the IP does it); and for a quantization-aware model, how
    many of its output beats equal the golden model's (all of them, by construction)."""
    data_args = dict(cache_dir=config.data_dir, workers=config.threads, progress=progress)
    source = config.source()
    val = simulated(source, n=config.n_val, seed=split_seed(config.seed, "val"), **data_args)
    test = simulated(source, n=config.n_test, seed=split_seed(config.seed, "test"), **data_args)
    device = next(model.parameters()).device
    as_input = lambda data, spec=None: torch.from_numpy(model_input(data, spec)).to(device)
    val_pred = predict(model, as_input(val)).cpu().numpy()
    float_pred = predict(model, as_input(test)).cpu().numpy()
    metrics = {
        "float_val": sfd_summary(val_pred, val["sfd"]),
        "float_test": {**sfd_summary(float_pred, test["sfd"]), **_tau_mean_error(
            lifetimes_from_sfd(float_pred, dt=test["dt"]), test)},
    }
    golden = None
    if quantized is not None:
        started = time.monotonic()
        result = GoldenModel(quantized).run(test["counts"], threads=config.threads, progress=progress)
        golden_s = time.monotonic() - started
        golden = result.values()
        metrics["golden_test"] = {**sfd_summary(golden["sfd"], test["sfd"]), **_tau_mean_error(golden, test),
                                  "pixels_per_s": config.n_test / golden_s}
    if qat is not None:
        lsb = quantized.spec.fmt("sfd").lsb
        codes = predict(qat, as_input(test, quantized.spec)).double().cpu().numpy() / lsb
        metrics["qat_vs_golden"] = {"beats": int(codes.shape[0] * codes.shape[1]),
                                    "identical_beats": int((codes == result.sfd).all(axis=-1).sum())}
    # channel-0 RMSE in four log-spaced photon bins spanning the preset's range
    lo, hi = config.instrument().photons_range
    edges = np.geomspace(lo, hi, 5)
    by_photons = []
    for low, high in zip(edges[:-1], edges[1:]):
        rows = (test["photons"] >= low) & (test["photons"] <= high)
        if rows.any():
            row = {"photons": [float(low), float(high)], "pixels": int(rows.sum()),
                   "float_rmse_ch0": sfd_summary(float_pred[rows], test["sfd"][rows])["rmse_ch0"]}
            if golden is not None:
                row["golden_rmse_ch0"] = sfd_summary(golden["sfd"][rows], test["sfd"][rows])["rmse_ch0"]
            by_photons.append(row)
    metrics["test_by_photons"] = by_photons
    return metrics


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
    table = ["| model | data | RMSE ch0 | R2 ch0 (per pixel, as flirtl eval) | RMSE all ch | tau_mean MAE (ns) |",
             "|---|---|---|---|---|---|"]
    for name, where, m in rows:
        tau = f"{m['tau_mean_mae_ns']:.3f}" if "tau_mean_mae_ns" in m else "-"
        if m.get("tau_mean_nonfinite"):
            tau += f" ({m['tau_mean_nonfinite']} non-finite left out)"
        table.append(f"| {name} | {where} | {m['rmse_ch0']:.4f} | {m['r2_ch0']:.4f} | "
                     f"{m['rmse_all']:.4f} | {tau} |")
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
set's mean (`flirtl eval` reports the reference's per-pixel R2 instead). tau_mean from `lifetimes_from_sfd` (float) or the golden model's lifetime outputs.
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


# -- command line -------------------------------------------------------------------------------

#: (flag, TrainConfig field, help): one table for the parser and for `command_line`.
_OPTIONS = (
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


def add_train_parser(subparsers) -> None:
    """Register the `student` and `teacher` subcommands (they set `func=main_train`)."""
    hints = typing.get_type_hints(TrainConfig)
    for kind, (help_line, changes) in MODEL_KINDS.items():
        parser = subparsers.add_parser(
            kind, help=help_line, description=__doc__.split("\n\n")[0],
            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        defaults = TrainConfig(**changes)
        for flag, name, help_text in _OPTIONS:
            # `int | None` fields take an int on the command line
            kind_type = next(t for t in (typing.get_args(hints[name]) or (hints[name],))
                             if t is not type(None))
            if kind_type is bool:
                parser.add_argument(flag, dest=name, action="store_true", help=help_text)
            elif typing.get_origin(kind_type) is tuple:
                parser.add_argument(flag, dest=name, type=float, nargs=2, metavar=("LO", "HI"),
                                    default=getattr(defaults, name), help=help_text)
            else:
                parser.add_argument(flag, dest=name, type=kind_type, default=getattr(defaults, name),
                                    help=help_text)
        parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
        parser.add_argument("--no-progress", dest="progress", action="store_false",
                            help="no progress bars (epoch summaries still print)")
        parser.set_defaults(func=main_train)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {name: getattr(args, name) for _flag, name, _help in _OPTIONS}
    return TrainConfig(**{name: tuple(value) if isinstance(value, list) else value for name, value in values.items()})


def command_line(config: TrainConfig) -> str:
    """The command that trains `config`, every option spelled out."""
    words = ["python", "-m", "flirtl.nn.train", "teacher" if config.layers > 1 else "student"]
    for flag, name, _help in _OPTIONS:
        value = getattr(config, name)
        if isinstance(value, bool):
            words += [flag] if value else []
        elif isinstance(value, tuple):
            words += [flag, *(repr(v) for v in value)]
        elif value is not None:
            words += [flag, repr(value) if isinstance(value, float) else str(value)]
    return " ".join(shlex.quote(word) for word in words)


def main_train(args: argparse.Namespace) -> int:
    path = train_student(config_from_args(args), fresh=args.fresh, progress=args.progress)
    print(path)
    return 0


def main(argv=None) -> int:
    from ..args import Parser

    parser = Parser(prog="flirtl train", description="Train flirtl's torch models.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_train_parser(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # through the CLI, for its error reporting (message, exit 2)
    from ..cli import main as cli_main

    sys.exit(cli_main(["train", *sys.argv[1:]]))
