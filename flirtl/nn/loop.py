"""The training loop: `train_student(config)` runs Adam with gradient clipping, ReduceLROnPlateau and
early stopping on the validation MSE, checkpoints after every epoch (`flirtl.nn.checkpoint`) and
resumes at the next epoch; under torchrun each process trains on its share of every batch
(`Group`). Batches are drawn from a permutation seeded by (seed, epoch), so an interrupted and
resumed run ends with the weights of one that ran through. At the end the leader writes the model
directory (`flirtl.nn.model_dir`).

The loss is a hook: `train_student(config, loss_fn=...)` takes any `loss_fn(pred, target, teacher)`
(teacher: the cached teacher SFD of the batch, or None); the default is `distillation_loss`, plus
`config.lifetime_weight` x `lifetime_loss` where that weight is set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..files import check_output_dir
from ..quant import quantize_model
from ..spec import ModelSpec
from .checkpoint import fresh_state, load_checkpoint, restore, save_checkpoint
from .config import TrainConfig
from .data import SplitTensors, split_tensors, teacher_outputs
from .model import Seq2Seq, Seq2SeqConfig, load_float_model, predict
from .model_dir import write_model_dir
from .qat import QuantSeq2Seq

#: loss_fn(pred (B, T, 3), target (B, T, 3), teacher (B, T, 3) or None) -> scalar loss tensor.
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

def distillation_loss(alpha: float) -> LossFn:
    """alpha * MSE(student, teacher) + (1 - alpha) * MSE(student, truth), over all channels and
    bins; alpha = 0 is plain supervised training."""
    def loss(pred: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor | None) -> torch.Tensor:
        supervised = nn.functional.mse_loss(pred, target)
        if not alpha:
            return supervised
        return alpha * nn.functional.mse_loss(pred, teacher) + (1 - alpha) * supervised
    return loss


def lifetime_terms(sfd: torch.Tensor, *, dt: float) -> dict[str, torch.Tensor]:
    """The lifetimes the IP reads from an SFD (B, T, 3), differentiable: per component dt * R with
    R = sum(ch) / ch[0] (R grows monotonically with tau; tau = dt*R - dt/2 while the window holds
    the decay), a = ch1[0] / (ch1[0] + ch2[0]), and tau_mean from these. R lies in [1, T] as the
    IP's ratio does; a component whose first sample is <= 0 takes the other's R (the simulator's
    mono-exponential convention, as `flirtl.fli.lifetimes_from_sfd`)."""
    components = sfd[..., 1:]
    first = components[:, 0, :]
    present = first > 0
    ratio = (components.sum(dim=1) / first.clamp_min(1e-6)).clamp(1.0, float(sfd.shape[1]))
    ratio = torch.where(present, ratio, ratio.flip(-1))
    amplitude = first.clamp_min(0.0)
    a = amplitude[:, 0] / amplitude.sum(dim=-1).clamp_min(1e-6)
    tau = dt * ratio
    return {"tau1": tau[:, 0], "tau2": tau[:, 1], "a": a, "tau_mean": a * tau[:, 0] + (1 - a) * tau[:, 1]}


def lifetime_loss(*, dt: float, beta: float = 0.1) -> LossFn:
    """The error of the lifetimes read from the predicted SFD, in ns (Huber, quadratic below `beta`
    ns so that the rare dim pixel's wild ratio does not steer the batch): tau_mean, each component's
    lifetime weighted by its true amplitude fraction (a weak component's lifetime is barely
    measurable), and the squared error of a. The SFD MSE weights the bright early bins, so a ratio
    sum/first can be off by much where the MSE is small: the lifetimes are what the user reads."""
    def loss(pred: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor | None) -> torch.Tensor:
        p, t = lifetime_terms(pred, dt=dt), lifetime_terms(target, dt=dt)
        huber = lambda name: nn.functional.huber_loss(p[name], t[name], delta=beta, reduction="none")
        weighted = t["a"] * huber("tau1") + (1 - t["a"]) * huber("tau2")
        return (huber("tau_mean") + weighted).mean() + nn.functional.mse_loss(p["a"], t["a"])
    return loss


def training_loss(config: TrainConfig) -> LossFn:
    """The loss `config` names: `distillation_loss(kd_alpha)` + lifetime_weight x `lifetime_loss`."""
    sfd_loss = distillation_loss(config.kd_alpha)
    if not config.lifetime_weight:
        return sfd_loss
    lifetimes, weight = lifetime_loss(dt=config.instrument().dt), config.lifetime_weight

    def loss(pred: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor | None) -> torch.Tensor:
        return sfd_loss(pred, target, teacher) + weight * lifetimes(pred, target, teacher)
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



def train_student(config: TrainConfig, *, loss_fn: LossFn | None = None, fresh: bool = False,
                  progress: bool = True) -> Path:
    """Train (or resume) the student of `config`, then write and return its model directory.

    loss_fn: the training loss (default `training_loss(config)`).
    fresh:   ignore an existing checkpoint and start from epoch 1.
    """
    # outputs checked before hours of training, not after
    check_output_dir(config.out, what="--out")
    check_output_dir(config.checkpoint_path.parent, what="checkpoint directory")
    check_output_dir(config.data_dir, what="--data-dir")
    loss_fn = loss_fn or training_loss(config)
    session_start = time.monotonic()
    if config.threads:
        torch.set_num_threads(config.threads)
    group, device = join_group(config)
    progress = progress and group.leader
    torch.manual_seed(config.seed)
    resume = config.checkpoint_path.is_file() and not fresh
    checkpoint = load_checkpoint(config.checkpoint_path) if resume else None  # before any work
    model = build_model(config, checkpoint).to(device)
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
    state = fresh_state(model)
    if resume:
        state = restore(config, checkpoint, learner, optimizer, scheduler)
        group.say(f"resuming {config.name} from {config.checkpoint_path} after epoch {state['epoch']}")
    first_epoch = state["epoch"] + 1
    earlier_wall_s = state["wall_s"]

    def checkpoint():
        state["wall_s"] = earlier_wall_s + time.monotonic() - session_start
        if group.leader:
            save_checkpoint(config, learner, optimizer, scheduler, state, first_epoch)

    while True:
        stop = group.agree(stop_reason(config, state))  # every process stops after the same epoch
        if stop:
            break
        epoch = state["epoch"] + 1
        started = time.monotonic()
        train_loss = train_epoch(trainer, optimizer, train, loss_fn, config, epoch, progress, group)
        # the leader's validation drives every process's schedule and early stopping
        val_mse, val_rmse0, val_lifetimes = group.agree(validate(model, val, dt=config.instrument().dt))
        # schedule and early stopping follow what the run trains for: the SFD MSE, plus the
        # lifetimes' term where it is weighted
        val_loss = val_mse + config.lifetime_weight * val_lifetimes
        scheduler.step(val_loss)
        seconds = time.monotonic() - started
        state["elapsed_s"] += seconds
        state["epoch"] = epoch
        improved = val_loss < state.get("best_val_loss", state["best_val_mse"])  # older checkpoints: MSE only
        if improved:
            state.update(best_val_loss=val_loss, best_val_mse=val_mse, best_epoch=epoch, bad_epochs=0,
                         best_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        else:
            state["bad_epochs"] += 1
        lr = optimizer.param_groups[0]["lr"]
        state["history"].append({"epoch": epoch, "train_loss": train_loss, "val_mse": val_mse,
                                 "val_rmse_ch0": val_rmse0, "val_lifetimes": val_lifetimes, "lr": lr,
                                 "seconds": seconds})
        checkpoint()
        group.say(f"epoch {epoch:3d}  train {train_loss:.3e}  val mse {val_mse:.3e}  "
                  f"val rmse ch0 {val_rmse0:.4f}  val lifetimes {val_lifetimes:.3f}  lr {lr:.1e}  {seconds:.0f} s"
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
class Group:
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


def join_group(config: TrainConfig) -> tuple[Group, torch.device]:
    """Join torchrun's process group when it started this process (WORLD_SIZE > 1): NCCL with one
    GPU per process (LOCAL_RANK), gloo on CPUs. Each process trains on its share of every batch."""
    device = config.resolved_device()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Group(), device
    if config.batch % world or config.n_train < config.batch:
        raise ValueError(f"--batch {config.batch} must divide evenly among {world} processes and "
                         f"be at most --n-train {config.n_train} (a partial batch is dropped)")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Group(torch.distributed.get_rank(), world), device


def build_model(config: TrainConfig, checkpoint: dict | None) -> nn.Module:
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
    spec = quantize_model(model.export_weights(), **config.quant_args())[0].spec
    return QuantSeq2Seq(spec, model.export_weights())



def stop_reason(config: TrainConfig, state: dict) -> str | None:
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


def train_epoch(model: nn.Module, optimizer, train: SplitTensors, loss_fn: LossFn,
                 config: TrainConfig, epoch: int, progress: bool, group: Group = Group()) -> float:
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


def validate(model: Seq2Seq, val: SplitTensors, *, dt: float) -> tuple[float, float, float]:
    """(MSE over all channels, RMSE of channel 0, `lifetime_loss`) on the validation split."""
    pred = predict(model, val.tpsf)
    error = pred - val.sfd
    lifetimes = lifetime_loss(dt=dt)(pred, val.sfd, None)
    return float(error.square().mean()), float(error[..., 0].square().mean().sqrt()), float(lifetimes)
