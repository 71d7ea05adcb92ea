"""Training data for the torch models: simulated pixels, cached on disk.

`simulated(source, n=..., seed=...)` returns the arrays of `flirtl.fli.simulate` that training and
evaluation read (raw `counts`, normalised `tpsf` = model input, `sfd` = target, and the labels),
from a cache file `<cache_dir>/sim/<key>-n<n>-seed<seed>.npz` when one exists, so reruns do not
simulate again. The source is a preset name, or a `DataSource`: an instrument (a preset with
fields changed, e.g. its bin count and width) and optionally a measured IRF; the key is the preset
name, followed by a hash of the instrument and the IRF when they differ from the preset's. The simulator is prefix-stable (the first m pixels of a run of n > m are the pixels
of a run of m), so a cached larger set of the same preset and seed serves a smaller request. A cache
file whose instrument differs from the current preset, or that other simulator code wrote (a
digest of the simulator's source is stored with the pixels), is ignored and rewritten.

Each split (train, val, test) of one experiment seed draws its pixels from its own data seed,
`split_seed(seed, split)`: the splits never share a pixel, and the derived seeds (32-bit, from
`numpy.random.SeedSequence`) do not coincide with the small seeds people pick for evaluation sets.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..files import atomic_write
from ..fli import Instrument, get_instrument, simulate
from ..golden import normalize_counts
from ..spec import ModelSpec

SPLITS = ("train", "val", "test")

#: Arrays kept in the cache: model input, target, raw counts (for the golden model) and labels.
CACHED_KEYS = ("counts", "tpsf", "sfd", "tau1", "tau2", "a", "tau_mean", "photons", "background")

_CACHE_NAME = re.compile(r"^(?P<key>[A-Za-z0-9_.-]+)-n(?P<n>\d+)-seed(?P<seed>\d+)\.npz$")


@dataclass(frozen=True, eq=False)
class DataSource:
    """What the simulator is asked for: an instrument and, for a user's instrument, its measured
    IRF (T,), used for every pixel instead of the preset's IRF family."""

    instrument: Instrument
    irf: np.ndarray | None = None

    @property
    def key(self) -> str:
        """The cache name stem: the preset's name, plus a hash of anything that differs from it."""
        instrument = self.instrument
        if self.irf is None and instrument.to_json() == get_instrument(instrument.name).to_json():
            return instrument.name
        digest = hashlib.sha256(instrument.to_json().encode())
        if self.irf is not None:
            digest.update(np.ascontiguousarray(self.irf, np.float64).tobytes())
        return f"{instrument.name}-{digest.hexdigest()[:10]}"


def data_source(source: "str | DataSource") -> DataSource:
    return source if isinstance(source, DataSource) else DataSource(get_instrument(source))


def instrument_changes(train: dict) -> dict:
    """The preset fields a training configuration (TrainConfig as a dict) replaces."""
    changes = {"n_bins": train.get("bins"), "dt": train.get("dt"),
               "irf_position_range": tuple(train["irf_position"]) if train.get("irf_position") else None,
               "background": train.get("background"),
               "photons_range": tuple(train["photons"]) if train.get("photons") else None,
               "resolve_ratio": train.get("resolve_ratio"), "resolve_fraction": train.get("resolve_fraction"),
               "resolve_sigma": train.get("resolve_sigma"),
               "irf_measured": True if train.get("irf") else None}
    return {name: value for name, value in changes.items() if value is not None}


def trained_source(model_dir) -> DataSource:
    """The instrument (and measured IRF, from the directory's irf.npy) a model directory was trained
    on, from its config.json; a directory without one is taken as trained on the default preset."""
    from ..fli import load_irf

    path = Path(model_dir) / "config.json"
    train = json.loads(path.read_text()).get("train", {}) if path.is_file() else {}
    instrument = get_instrument(train.get("preset", "ss3"), **instrument_changes(train))
    irf = None
    if train.get("irf"):
        # the copy training wrote into the directory; older directories name the file only
        copy = Path(model_dir) / "irf.npy"
        if not copy.is_file():
            irf = load_irf(train["irf"], n_bins=instrument.n_bins)
        elif (irf := np.load(copy)).shape != (instrument.n_bins,):
            raise ValueError(f"{str(copy)!r} holds an IRF of shape {irf.shape}, not ({instrument.n_bins},)")
    return DataSource(instrument, irf)


def split_seed(seed: int, split: str) -> int:
    """The simulator seed of `split` ('train', 'val' or 'test') for experiment seed `seed`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, not {seed!r}")
    return int(np.random.SeedSequence([seed, SPLITS.index(split)]).generate_state(1)[0])


@functools.cache
def simulator_digest() -> str:
    """A digest of the simulator's source (sampling, forward model, presets, IRFs, normalisation):
    pixels cached by other simulator code are stale, even under the same preset and seed."""
    digest = hashlib.sha256()
    for name in ("simulate", "forward", "instrument", "irf_io", "preprocess"):
        digest.update(Path(importlib.import_module(f"flirtl.fli.{name}").__file__).read_bytes())
    return digest.hexdigest()[:16]


def cache_path(cache_dir, source: "str | DataSource", n: int, seed: int) -> Path:
    return Path(cache_dir) / "sim" / f"{data_source(source).key}-n{n}-seed{seed}.npz"


def simulated(source: "str | DataSource", *, n: int, seed: int, cache_dir="data",
              workers: int | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """`n` simulated pixels of `source` (a preset name or a DataSource) with simulator seed `seed`
    (cached).

    Returns the `CACHED_KEYS` arrays plus `dt` (float) and `n_bins` (int). `cache_dir` None
    simulates without touching the disk.
    """
    source = data_source(source)
    instrument = source.instrument
    if cache_dir is not None:
        cached = _load_cached(Path(cache_dir), source, n, seed)
        if cached is not None:
            return cached
    data = simulate(instrument, n=n, seed=seed, irf=source.irf, workers=workers, progress=progress)
    out = {key: data[key] for key in CACHED_KEYS}
    out["instrument"] = np.array(instrument.to_json())
    out["simulator"] = np.array(simulator_digest())
    if cache_dir is not None:
        path = cache_path(cache_dir, source, n, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda file: np.savez(file, **out))
    return _finish(out, instrument, n)


@dataclass
class SplitTensors:
    """Model input (N, T) float32 and SFD target (N, T, 3) float32 of one split, each pixel's
    signal photons (N,) (the photon curriculum's key), and the teacher's SFD and final encoder state
    for the same pixels when a student distils."""

    tpsf: torch.Tensor
    sfd: torch.Tensor
    photons: torch.Tensor
    seed: int  # the simulator seed the split was drawn with
    teacher: torch.Tensor | None = None
    teacher_state: torch.Tensor | None = None  # the teacher encoder's final state (hint distillation)

    def __len__(self) -> int:
        return self.tpsf.shape[0]

    def to(self, device) -> "SplitTensors":
        """The tensors the model reads on `device`; the photon counts stay where the batch order is drawn."""
        move = lambda tensor: None if tensor is None else tensor.to(device)
        return SplitTensors(self.tpsf.to(device), self.sfd.to(device), self.photons, self.seed,
                            move(self.teacher), move(self.teacher_state))


def model_input(data: dict, spec: ModelSpec | None) -> np.ndarray:
    """What a model reads: the float normalised TPSF, or, for a model on the IP's datapath
    (`spec`), the IP's own integer normalisation of the raw counts as values."""
    if spec is None:
        return np.ascontiguousarray(data["tpsf"], np.float32)
    codes = normalize_counts(spec, data["counts"])
    return (codes * spec.fmt("input").lsb).astype(np.float32)  # input codes are narrow: exact


def split_tensors(source: "str | DataSource", *, n: int, seed: int, split: str, cache_dir="data",
                  workers: int | None = None, progress: bool = True,
                  spec: ModelSpec | None = None) -> SplitTensors:
    """The (input, sfd) tensors of `split` for experiment seed `seed` (input: `model_input`)."""
    data_seed = split_seed(seed, split)
    data = simulated(source, n=n, seed=data_seed, cache_dir=cache_dir, workers=workers,
                     progress=progress)
    return SplitTensors(torch.from_numpy(model_input(data, spec)),
                        torch.from_numpy(np.ascontiguousarray(data["sfd"], np.float32)),
                        torch.from_numpy(np.asarray(data["photons"], np.float32)), data_seed)


def teacher_outputs(teacher_dir, source: "str | DataSource", *, n: int, seed: int, cache_dir="data",
                    device="cpu", progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's SFD (N, T, 3) and its encoder's final top-layer state (N, hidden) on the float
    input of `n` pixels of simulator seed `seed`, cached in `<cache_dir>/teacher/` under a hash of
    the teacher's weights: distillation runs the teacher once per data set, not once per epoch."""
    from .model import load_float_model

    teacher_dir = Path(teacher_dir)
    model = load_float_model(teacher_dir)
    digest = hashlib.sha256((teacher_dir / "float_weights.npz").read_bytes()).hexdigest()[:16]
    key = data_source(source).key
    path = Path(cache_dir) / "teacher" / f"{digest}-{key}-n{n}-seed{seed}.npz" if cache_dir else None
    if path is not None and path.is_file():
        with np.load(path) as archive:
            return torch.from_numpy(archive["sfd"]), torch.from_numpy(archive["state"])
    tpsf = torch.from_numpy(model_input(simulated(source, n=n, seed=seed, cache_dir=cache_dir,
                                                  progress=progress), None))
    model = model.to(device)
    batch = 1024
    with torch.no_grad(), tqdm(total=n, unit="px", desc="teacher outputs", disable=not progress,
                               leave=False) as bar:
        sfd, state = [], []
        for start in range(0, n, batch):
            out, final = model(tpsf[start:start + batch].to(device), with_state=True)
            sfd.append(out.cpu())
            state.append(final.cpu())
            bar.update(len(out))
    sfd = torch.cat(sfd) if sfd else torch.zeros(0, tpsf.shape[1], 3)
    state = torch.cat(state) if state else torch.zeros(0, model.config.hidden)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda file: np.savez(file, sfd=sfd.numpy(), state=state.numpy()))
    return sfd, state


# -- cache files --------------------------------------------------------------------------------

def _load_cached(cache_dir: Path, source: DataSource, n: int, seed: int) -> dict | None:
    """The smallest usable cache file of (source, seed) holding at least n pixels, sliced to n."""
    instrument = source.instrument
    directory = cache_dir / "sim"
    if not directory.is_dir():
        return None
    candidates = []
    for path in directory.iterdir():
        match = _CACHE_NAME.match(path.name)
        if (match and match["key"] == source.key and int(match["seed"]) == seed
                and int(match["n"]) >= n):
            candidates.append((int(match["n"]), path))
    for _size, path in sorted(candidates):
        try:
            with np.load(path, allow_pickle=False) as archive:
                if (str(archive["instrument"]) != instrument.to_json()
                        or str(archive["simulator"]) != simulator_digest()):
                    continue  # the preset or the simulator changed since this file was written
                out = {key: archive[key][:n] for key in CACHED_KEYS}
        except (OSError, KeyError, ValueError):
            continue  # unreadable or from an older layout: simulate again
        return _finish(out, instrument, n)
    return None


def _finish(out: dict, instrument, n: int) -> dict:
    out = {key: out[key][:n] for key in CACHED_KEYS}
    out["dt"] = float(instrument.dt)
    out["n_bins"] = int(instrument.n_bins)
    return out

