"""Checkpoints of a training run: `<checkpoint_dir>/<name>/last.pt` holds the model, optimizer and
scheduler states, the epoch, the best weights, the history and the QAT formats, saved after
every epoch. A checkpoint is read weights-only (tensors and plain metadata: a crafted file
cannot run code), and resumed only by the configuration that wrote it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from ..files import atomic_write
from .config import POST_TRAINING, RESUMABLE_CHANGES, TrainConfig
from .qat import QuantSeq2Seq


def fresh_state(model: nn.Module) -> dict:
    """The training state before epoch 1, with `model`'s weights as the best so far."""
    return {"epoch": 0, "elapsed_s": 0.0, "wall_s": 0.0, "best_val_mse": math.inf, "best_val_loss": math.inf,
            "best_epoch": 0, "bad_epochs": 0,
            "best_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "history": [], "sessions": [], "stop_reason": None,
            "spec": model.spec.dumps() if isinstance(model, QuantSeq2Seq) else None}



def save_checkpoint(config: TrainConfig, model, optimizer, scheduler, state: dict,
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


def load_checkpoint(path: Path) -> dict:
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


def restore(config: TrainConfig, payload: dict, model, optimizer, scheduler) -> dict:
    """Load a checkpoint's weights and optimizer states into the run of `config` (the same
    configuration, but for `RESUMABLE_CHANGES`); return its training state."""
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
    return {key: payload.get(key, fallback.get(key)) for key in fresh_state(model)}
