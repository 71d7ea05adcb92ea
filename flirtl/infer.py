"""`flirtl infer`: lifetime maps from raw photon counts with a model directory.

Engines: `golden` is the integer model, i.e. exactly what the FPGA emits; `rtl` runs the generated
Verilog itself under Verilator (`flow/harness.py`; the IP with its SFD stream, so `sfd` comes from
the hardware too), bit-exact with `golden`, to check a build on real frames; `float` is the trained
float model (torch) with float normalisation and lifetime extraction, for comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fli import lifetimes_from_sfd, normalize_tpsf, validate_counts
from .files import atomic_write
from .modeldir import load_for_rtl

ENGINES = ("float", "golden", "rtl")
OUTPUTS = ("tau1", "tau2", "a", "tau_mean")


def load_counts(path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"counts file {str(path)!r} does not exist")
    if path.suffix != ".npy":
        raise ValueError(f"counts file {str(path)!r} must be a .npy array of shape (N, T) or (H, W, T)")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"counts file {str(path)!r} could not be read: {error}") from None


def infer(counts: np.ndarray, model_dir, *, engine: str = "golden", bits: int = 8,
          progress: bool = False) -> dict[str, np.ndarray]:
    """tau1, tau2, a, tau_mean (shape counts.shape[:-1]) and sfd (counts.shape + (3,))."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    model, _ = load_for_rtl(model_dir, bits=bits)
    spec = model.spec
    counts = validate_counts(counts, n_bins=spec.n_bins)
    if counts.ndim not in (2, 3):
        raise ValueError(f"counts must have shape (N, T) or (H, W, T), not {counts.shape}")
    image = counts.shape[:-1]
    flat = counts.reshape(-1, spec.n_bins)
    if engine == "golden":
        from .golden import GoldenModel

        values = GoldenModel(model).run(flat.astype(np.int64), progress=progress).values()
    elif engine == "rtl":
        from .flow.harness import run_rtl

        values = run_rtl(flat, model, sfd_stream=True, progress=progress).values()
    else:
        values = _float_engine(flat, Path(model_dir), spec)
    out = {name: np.asarray(values[name]).reshape(image) for name in OUTPUTS}
    out["sfd"] = np.asarray(values["sfd"], np.float32).reshape(image + (spec.n_bins, 3))
    return out


def _float_engine(counts: np.ndarray, model_dir: Path, spec) -> dict[str, np.ndarray]:
    import torch

    from .nn.model import Seq2Seq, Seq2SeqConfig

    path = model_dir / "float_weights.npz"
    if not path.is_file():
        raise FileNotFoundError(f"model directory {str(model_dir)!r} has no float_weights.npz for --engine float")
    with np.load(path) as archive:
        weights = {name: archive[name] for name in archive.files}
    net = Seq2Seq(Seq2SeqConfig(hidden=spec.hidden, n_bins=spec.n_bins))
    net.load_weights(weights)
    net.eval()
    tpsf = normalize_tpsf(counts, bg_bins=spec.bg_bins)
    with torch.no_grad():
        sfd = np.concatenate([net(torch.as_tensor(tpsf[i:i + 4096])).numpy()
                              for i in range(0, len(tpsf), 4096)] or [np.zeros((0, spec.n_bins, 3), np.float32)])
    return {**lifetimes_from_sfd(sfd, dt=spec.dt), "sfd": sfd}


def write_result(path, result: dict[str, np.ndarray]) -> None:
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"output must be a .npz file, not {str(path)!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output directory {str(path.parent)!r} does not exist")
    atomic_write(path, lambda file: np.savez(file, **result))
