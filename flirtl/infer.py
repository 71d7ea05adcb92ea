"""`flirtl infer`: lifetime maps from a FLIM file (or raw counts) with a model directory.

Engines: `golden` is the integer model, i.e. exactly what the FPGA emits; `rtl` runs the generated
Verilog itself under Verilator (`flow/harness.py`; the IP with its SFD stream, so `sfd` comes from
the hardware too), bit-exact with `golden`, to check a build on real frames; `float` is the trained
float model (torch) with float normalisation and lifetime extraction, for comparison.

`infer_file` reads the file (`flirtl.readers`: .sdt, .ptu, TIFF, .npy), puts it on the model's time
axis, and runs the engine over blocks of image rows, so a frame larger than memory goes through
in pieces: a .npy is memory-mapped, the maps are small, and the SFD (T x 3 floats per pixel, the
largest output by far) is streamed into the .npz block by block (or left out with sfd=False). Two
limits: a file whose bins must be summed to the model's width is summed whole in memory
(`readers.match_time_axis`), and `np.load` reads the streamed `sfd` member whole.
Beside the .npz it writes a PNG page of maps and a one-page Markdown summary.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .extras import available, install_hint, require
from .files import atomic_write, check_output_file
from .fli import lifetimes_from_sfd, normalize_tpsf, validate_counts
from .maps import plot_maps, signal_photons, summary
from .modeldir import check_model_dir, load_for_rtl
from .quant import QuantizedModel
from .readers import match_time_axis, read_decay

ENGINES = ("float", "golden", "rtl")
OUTPUTS = ("tau1", "tau2", "a", "tau_mean")
#: Pixels per block: the golden engine holds about 10 kB per pixel of a 32-unit, T=135 model
#: (its codes, their float copies and the SFD; measured), some 160 MB for a block.
BLOCK_PIXELS = 2 ** 14


class Engine:
    """One engine bound to one model: (n, T) counts -> tau1, tau2, a, tau_mean (n,), sfd (n, T, 3)."""

    def __init__(self, engine: str, model: QuantizedModel, model_dir: Path, *, progress: bool = False):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
        self.name, self.model, self.spec = engine, model, model.spec
        if engine == "golden":
            from .golden import GoldenModel

            golden = GoldenModel(model)
            self._run = lambda counts: golden.run(counts.astype(np.int64)).values()
        elif engine == "rtl":
            from .flow.harness import build_harness

            harness = build_harness(model, sfd_stream=True)
            self._run = lambda counts: harness.run(counts, progress=progress).values()
        else:
            self._run = _float_engine(model_dir, self.spec)

    def __call__(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        values = self._run(counts)
        out = {name: np.asarray(values[name], np.float32) for name in OUTPUTS}
        out["sfd"] = np.asarray(values["sfd"], np.float32)
        return out


def infer(counts: np.ndarray, model_dir, *, engine: str = "golden", bits: int = 8,
          progress: bool = False) -> dict[str, np.ndarray]:
    """In memory: tau1, tau2, a, tau_mean (shape counts.shape[:-1]) and sfd (counts.shape + (3,))."""
    model, _ = load_for_rtl(model_dir, bits=bits)
    spec = model.spec
    counts = validate_counts(counts, n_bins=spec.n_bins)
    if counts.ndim not in (2, 3):
        raise ValueError(f"counts must have shape (N, T) or (H, W, T), not {counts.shape}")
    image = counts.shape[:-1]
    values = Engine(engine, model, Path(model_dir), progress=progress)(counts.reshape(-1, spec.n_bins))
    out = {name: values[name].reshape(image) for name in OUTPUTS}
    out["sfd"] = values["sfd"].reshape(image + (spec.n_bins, 3))
    return out


#: Head bins above the lesser end by this fraction of the decay's height: signal in the background bins.
BACKGROUND_SIGNAL = 0.05


def warn_signal_in_background(counts: np.ndarray, spec, source: str) -> None:
    """Warn when a model that takes its background from the head bins meets a decay that has
    already risen there (the summed decay's head above its tail by BACKGROUND_SIGNAL of its peak):
    the IP would subtract signal as background and the lifetimes come out wrong."""
    if spec.background != "head":
        return
    bins = counts.shape[-1]
    summed = np.zeros(bins)
    flat = counts.reshape(-1, bins)
    for first in range(0, flat.shape[0], 65536):  # blocks: a memory-mapped frame stays on disk
        summed += flat[first:first + 65536].sum(axis=0, dtype=np.float64)
    head, tail = summed[:spec.bg_bins].mean(), summed[-spec.bg_bins:].mean()
    if head == 0 < summed.max():
        warnings.warn(f"{source}: the first {spec.bg_bins} bins, which this model takes as background, hold no "
                      f"count in any pixel (a TCSPC window narrower than the file's?): the background "
                      f"estimate is 0 and the lifetimes come out biased; --peak-bin aligns the decay and "
                      f"fills empty bins with each pixel's background level", stacklevel=2)
    elif head - tail > BACKGROUND_SIGNAL * (summed.max() - tail):
        warnings.warn(f"{source}: the decay has risen in the first {spec.bg_bins} bins, which this model "
                      f"takes as background ({(head - tail) / max(summed.max() - tail, 1e-12):.0%} of its "
                      f"height above the last bins): lifetimes will be wrong; align with --peak-bin, or use "
                      f"a model with the background rule 'ends' (models/seq2seqlite-32x32-anywhere, "
                      f"flirtl calibrate)", stacklevel=2)


def infer_file(path, model_dir, output, *, engine: str = "golden", bits: int = 8, dt: float | str | None = None,
               channel: int | None = None, frame: int | None = None, time_axis: int | None = None,
               peak_bin: int | None = None, sfd: bool = True, pictures: bool = True,
               block_pixels: int = BLOCK_PIXELS, progress: bool = False) -> dict:
    """Maps of a FLIM file into `output` (.npz: tau1, tau2, a, tau_mean, intensity and, unless
    sfd=False, sfd), plus `<output>.png` and `<output>.md` (the output's name with those
    extensions) when `pictures`. Returns what was done (pixels, seconds, source, files). The .npz
    is written atomically, the pictures after it: a failed run leaves no partial file."""
    if not (isinstance(block_pixels, int) and block_pixels >= 1):
        raise ValueError(f"block_pixels must be an int >= 1, not {block_pixels!r}")
    # every output checked before any work: never over the counts file, never into the model
    output = Path(output)
    beside = lambda extension: output.with_name(output.stem + extension)  # maps.golden.npz -> maps.golden.png
    keep = [path, check_model_dir(model_dir)]
    check_output_file(output, suffix=".npz", what="output", keep=keep)
    png = pictures and available("matplotlib")
    if pictures and not png:  # the core install infers; the picture is the plots extra's
        warnings.warn(f"no {beside('.png').name}: matplotlib is not installed, {install_hint('matplotlib')}; "
                      f"the maps are in the .npz, the summary in the .md")
    if pictures:
        for extension in (".png", ".md") if png else (".md",):
            check_output_file(beside(extension), what="output", keep=keep)
    model, note = load_for_rtl(model_dir, bits=bits)
    spec = model.spec
    if dt == "model":  # the user confirms that the file's bins are the model's
        dt = spec.dt
    decay = read_decay(path, channel=channel, frame=frame, dt=dt, time_axis=time_axis)
    decay = match_time_axis(decay, spec.n_bins, spec.dt, peak_bin=peak_bin, bg_bins=spec.bg_bins)
    warn_signal_in_background(decay.counts, spec, decay.source)
    counts = decay.counts
    port = spec.fmt("counts")
    run = Engine(engine, model, Path(model_dir))
    image = counts.shape[:-1]
    # blocks of whole rows (of pixels for an (N, T) list): slicing the leading axis keeps a
    # memory-mapped file mapped, and each block is one contiguous piece of the streamed SFD
    row_pixels = int(np.prod(image[1:])) if len(image) > 1 else 1
    rows_per_block = max(1, block_pixels // row_pixels)
    maps = {name: np.empty(image, np.float32) for name in (*OUTPUTS, "intensity")}
    started = time.monotonic()

    def write(file) -> None:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as archive, tqdm(
                total=int(np.prod(image)), unit="px", desc=f"{engine} engine", disable=not progress) as bar:
            # the SFD member stays open while the blocks stream in; it closes before the archive
            with (archive.open("sfd.npy", "w", force_zip64=True) if sfd else contextlib.nullcontext()) as sfd_out:
                if sfd_out is not None:
                    np.lib.format.write_array_header_2_0(sfd_out, {
                        "descr": np.dtype(np.float32).str, "fortran_order": False,
                        "shape": image + (spec.n_bins, 3)})
                for first in range(0, image[0], rows_per_block):
                    block = np.asarray(counts[first:first + rows_per_block])
                    flat = validate_counts(block.reshape(-1, spec.n_bins), n_bins=spec.n_bins)
                    if flat.size and flat.max() > port.max_code:
                        most = flat.max()
                        most = f"{int(most):,}" if most < 1e15 else f"{float(most):.3g}"
                        raise ValueError(f"{decay.source}: a bin holds {most} counts, beyond "
                                         f"the IP's {port.width}-bit input (max {port.max_code})")
                    values = run(flat)
                    for name in OUTPUTS:
                        maps[name][first:first + rows_per_block] = values[name].reshape(block.shape[:-1])
                    maps["intensity"][first:first + rows_per_block] = signal_photons(block, spec.bg_bins, spec.background)
                    if sfd_out is not None:
                        sfd_out.write(np.ascontiguousarray(values["sfd"]).tobytes())
                    _release_mapped(counts)
                    bar.update(flat.shape[0])
            for name, array in maps.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array)

    atomic_write(output, write)
    seconds = time.monotonic() - started
    files = [output]
    if pictures:
        title = f"{Path(path).name}: {Path(model_dir).name}, {engine} engine"
        if png:
            files.append(plot_maps(maps, maps["intensity"], beside(".png"), title=title))
        page = summary(maps, maps["intensity"], source=decay.source, model=str(model_dir),
                       engine=engine, seconds=seconds)
        if note:
            page += f"\nNote: {note}.\n"
        atomic_write(beside(".md"), page.encode())
        files.append(beside(".md"))
    return {"pixels": int(np.prod(image)), "shape": image, "seconds": seconds, "source": decay.source,
            "files": files, "tau_mean": maps["tau_mean"], "intensity": maps["intensity"]}


def _release_mapped(counts: np.ndarray) -> None:
    """Drop the pages of a memory-mapped counts file that a block has read from this process's
    resident memory (they stay in the page cache): without it the mapped pages read so far count
    in the process's memory until the end, a file's size in all."""
    mapping = getattr(counts, "_mmap", None)  # np.memmap and its slices keep the mapping here
    if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def _float_engine(model_dir: Path, spec):
    """The float model of the directory as an (n, T) counts -> values function."""
    torch = require("torch", "--engine float")

    from .nn.model import Seq2Seq, Seq2SeqConfig, load_float_model

    path = model_dir / "float_weights.npz"
    if not path.is_file():
        raise FileNotFoundError(f"model directory {str(model_dir)!r} has no float_weights.npz for --engine float")
    if (model_dir / "config.json").is_file():
        net = load_float_model(model_dir)
        if json.loads((model_dir / "config.json").read_text()).get("train", {}).get("qat"):
            warnings.warn(f"{model_dir.name} was trained quantization-aware: --engine float runs its float "
                          "master weights, which it was not trained to use on their own (less accurate); "
                          "--engine golden computes what the IP computes", stacklevel=3)
    else:  # a hand-assembled directory: one-layer weights in export names, shaped by the spec
        net = Seq2Seq(Seq2SeqConfig(hidden=spec.hidden, n_bins=spec.n_bins))
        with np.load(path) as archive:
            net.load_weights({name: archive[name] for name in archive.files})
        net.eval()

    def run(counts: np.ndarray) -> dict[str, np.ndarray]:
        tpsf = normalize_tpsf(counts, bg_bins=spec.bg_bins, background=spec.background)
        with torch.no_grad():
            sfd = np.concatenate([net(torch.as_tensor(tpsf[i:i + 4096])).numpy()
                                  for i in range(0, len(tpsf), 4096)] or [np.zeros((0, spec.n_bins, 3), np.float32)])
        return {**lifetimes_from_sfd(sfd, dt=spec.dt), "sfd": sfd}

    return run
