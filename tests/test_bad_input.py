"""Bad input through the real command line, as a new user would type it.

Every case runs `python -m flirtl ...` (or `make -n ...`) in a fresh directory holding a small
model and a few counts files, and must: exit non-zero, print exactly one line on stderr that
names the problem, print no traceback, and leave every file as it was (nothing created, nothing
changed: not an input, not the model directory). Ctrl-C and SIGTERM in the middle of the work
are cases too: the temporary output goes, one line is printed.
"""

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from flirtl.quant import quantize_model
from golden_util import random_counts, random_weights

ROOT = Path(__file__).resolve().parents[1]
T = 135
COMMAND = [sys.executable, "-m", "flirtl"]


# -- the files a case starts from ------------------------------------------------------------------

def write_model(directory: Path, hidden: int = 8) -> None:
    """A small one-layer model directory: codes at 8 bits, float weights, config."""
    weights = random_weights(hidden, seed=3)
    quantize_model(weights, 8, n_bins=T)[0].save(directory)
    np.savez(directory / "float_weights.npz", **weights)
    (directory / "config.json").write_text(json.dumps({"model": {"hidden": hidden, "layers": 1, "n_bins": T}}))


def edit_npz(path: Path, change) -> None:
    with np.load(path) as archive:
        arrays = dict(archive)
    change(arrays)
    np.savez(path, **arrays)


def with_codes(change):
    def setup(tmp):
        edit_npz(tmp / "m" / "weights.npz", change)
    return setup


def float_codes(value):
    def change(arrays):
        code = arrays["enc.w_hh"].astype(np.float64)
        code[0, 0] = value
        arrays["enc.w_hh"] = code
    return with_codes(change)


def write(name: str, content):
    """Setup that writes `content` (bytes, str, or an array for .npy) to `name`."""
    def setup(tmp):
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, np.ndarray):
            np.save(path, content, allow_pickle=True)
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


def mkdir(name: str):
    def setup(tmp):
        (tmp / name).mkdir(parents=True)
    return setup


def truncate(name: str, keep: int = 400):
    def setup(tmp):
        path = tmp / name
        path.write_bytes(path.read_bytes()[:keep])
    return setup


def counts(shape=(4, T), dtype=np.uint16, set_value=None, at=0):
    array = np.resize(random_counts(4, T, seed=1), shape).astype(dtype) if np.prod(shape) else np.zeros(shape, dtype)
    if set_value is not None:
        array.flat[at] = set_value
    return array


GOOD = "c.npy"  # every case directory has the model `m` and this counts file


def infer(*changes, counts_file=GOOD, **replace):
    argv = ["infer", counts_file, "--model", replace.get("model", "m"), "-o", replace.get("o", "out.npz"), "--quiet"]
    return argv + list(changes)


def sim(*changes, out="s.npz"):
    return ["simulate", "--n", "50", "--seed", "1", "--out", out, "--quiet", *changes]


def rtl(*changes, model="m"):
    return ["rtl", "--model", model, "--out", "build", *changes]


# (id, argv, words the error line must hold, setup)
CASES = [
    # -- simulate
    ("sim-n-zero", ["simulate", "--n", "0", "--seed", "1", "--out", "s.npz"], "--n: must be >= 1", None),
    ("sim-n-negative", ["simulate", "--n", "-5", "--seed", "1", "--out", "s.npz"], "--n", None),
    ("sim-n-word", ["simulate", "--n", "many", "--seed", "1", "--out", "s.npz"], "whole number", None),
    ("sim-n-float", ["simulate", "--n", "1e6", "--seed", "1", "--out", "s.npz"], "whole number", None),
    ("sim-n-huge", ["simulate", "--n", "100000000000", "--seed", "1", "--out", "s.npz"], "GiB of memory", None),
    ("sim-n-1e19", ["simulate", "--n", "10000000000000000000", "--seed", "1", "--out", "s.npz"], "10,000,000,000,000,000,000 pixels", None),
    ("sim-seed-negative", ["simulate", "--n", "5", "--seed", "-1", "--out", "s.npz"], "--seed", None),
    ("sim-no-seed", ["simulate", "--n", "5", "--out", "s.npz"], "--seed", None),
    ("sim-preset", sim("--preset", "nope"), "nope", None),
    ("sim-set-dt", sim("--set", "dt=-1"), "dt", None),
    ("sim-set-field", sim("--set", "no_such_field=3"), "no_such_field", None),
    ("sim-set-syntax", sim("--set", "dt"), "FIELD=VALUE", None),
    ("sim-set-photons", sim("--set", "photons_range=(1e12,1e12)"), "photons_range", None),
    ("sim-set-background", sim("--set", "background_range=(1e12,1e12)"), "background_range (1000000000000.0", None),
    ("sim-set-photons-scalar", sim("--set", "photons_range=1e19"), "photons_range", None),
    ("sim-set-frames", sim("--counting", "binomial", "--set", "frames=10000000000000000000"), "frames", None),
    ("sim-counting", sim("--counting", "nope"), "--counting", None),
    ("sim-out-suffix", sim(out="s.txt"), "must name a .npz", None),
    ("sim-out-directory", sim(out="d.npz"), "is a directory", mkdir("d.npz")),
    ("sim-out-missing-dir", sim(out="nowhere/s.npz"), "does not exist", None),
    ("sim-out-proc", sim(out="/proc/flirtl-test.npz"), "cannot be written", None),
    ("sim-irf-missing", sim("--irf", "missing.npy"), "missing.npy", None),
    ("sim-irf-nan", sim("--irf", "irf.npy"), "NaN", write("irf.npy", np.full(T, np.nan))),
    ("sim-irf-short", sim("--irf", "irf.npy"), "shape", write("irf.npy", np.ones(100))),
    ("sim-irf-negative", sim("--irf", "irf.npy"), "non-negative", write("irf.npy", -np.ones(T))),
    ("sim-irf-zero", sim("--irf", "irf.npy"), "all zero", write("irf.npy", np.zeros(T))),
    ("sim-irf-extension", sim("--irf", "irf.txt"), ".npy or .csv", write("irf.txt", "1,2,3")),
    ("sim-irf-garbage", sim("--irf", "irf.npy"), "could not be read", write("irf.npy", b"not numpy at all")),
    ("sim-irf-text-csv", sim("--irf", "irf.csv"), "could not be read", write("irf.csv", "a,b,c\n")),
    ("sim-irf-2d", sim("--irf", "irf.npy"), "one row or one column", write("irf.npy", np.ones((3, T)))),
    # -- spec
    ("spec-bits-1", ["spec", "--bits", "1"], "--bits: must be in 2..32, not 1", None),
    ("spec-bits-33", ["spec", "--bits", "33"], "2..32", None),
    ("spec-hidden-0", ["spec", "--hidden", "0"], "--hidden", None),
    ("spec-n-bins-1", ["spec", "--n-bins", "1"], "--n-bins", None),
    ("spec-dt-0", ["spec", "--dt", "0"], "positive", None),
    ("spec-dt-nan", ["spec", "--dt", "nan"], "positive", None),
    ("spec-activation", ["spec", "--activation", "relu"], "--activation", None),
    ("spec-hidden-bits", ["spec", "--hidden-bits", "99"], "--hidden-bits", None),
    # -- rtl
    ("rtl-model-missing", rtl(model="nope"), "'nope' does not exist", None),
    ("rtl-model-file", rtl(model=GOOD), "is a file; name the model's directory", None),
    ("rtl-model-empty", rtl(model="e"), "no 8-bit codes", mkdir("e")),
    ("rtl-bits", rtl("--bits", "1"), "2..32", None),
    ("rtl-lanes-0", rtl("--lanes", "0"), "--lanes", None),
    ("rtl-lanes-many", rtl("--lanes", "100000"), "lanes must be an int in", None),
    ("rtl-engines-0", rtl("--engines", "0"), "--engines", None),
    ("rtl-out-file", ["rtl", "--model", "m", "--out", GOOD], "is a file, not a directory", None),
    ("rtl-name-escape", rtl("--name", "../../../outside/escaped"), "Verilog module name", None),
    ("rtl-name-space", rtl("--name", "my ip"), "Verilog module name", None),
    ("rtl-name-digit", rtl("--name", "1ip"), "Verilog module name", None),
    ("rtl-spec-list", rtl(), "must hold a JSON object, not a list", write("m/spec.json", "[1, 2]")),
    ("rtl-spec-garbage", rtl(), "spec.json' is not valid JSON", write("m/spec.json", "{{{")),
    ("rtl-spec-binary", rtl(), "spec.json' is not a text file", write("m/spec.json", b"\xff\xfe\x00")),
    ("rtl-spec-foreign", rtl(), "not a valid flirtl spec", write("m/spec.json", "{}")),
    ("rtl-spec-fields", rtl(), "not a valid flirtl spec", write("m/spec.json", '{"flirtl_spec": 1, "hidden": 8}')),
    ("rtl-weights-truncated", rtl(), "weights.npz' is not a readable .npz", truncate("m/weights.npz")),
    ("rtl-weights-nan", rtl(), "NaN", float_codes(np.nan)),
    ("rtl-weights-inf", rtl(), "NaN or inf", float_codes(np.inf)),
    ("rtl-weights-fraction", rtl(), "whole-number codes, found 0.5", float_codes(0.5)),
    ("rtl-weights-range", rtl(), "outside its format", with_codes(lambda a: a.__setitem__("enc.w_hh", a["enc.w_hh"] * 1000))),
    ("rtl-weights-missing", rtl(), "lacks tensor 'head.b'", with_codes(lambda a: a.pop("head.b"))),
    ("rtl-weights-shape", rtl(), "has shape", with_codes(lambda a: a.__setitem__("head.b", a["head.b"][:2]))),
    ("rtl-weights-text", rtl(), "weights.npz' is not a readable .npz", write("m/weights.npz", "hello")),
    ("rtl-config-corrupt", rtl(), "config.json' is not valid JSON", write("m/config.json", "{")),
    ("rtl-config-list", rtl(), "config.json' must hold a JSON object", write("m/config.json", "[]")),
    ("rtl-config-teacher", rtl(), "multi-layer model", write("m/config.json", '{"model": {"layers": 2}}')),
    ("rtl-config-layers", rtl(), "model.layers", write("m/config.json", '{"model": {"layers": "two"}}')),
    ("rtl-float-truncated", rtl("--bits", "6"), "float_weights.npz' is not a readable", truncate("m/float_weights.npz")),
    ("rtl-float-nan", rtl("--bits", "6"), "non-finite", lambda tmp: edit_npz(
        tmp / "m" / "float_weights.npz", lambda a: a["enc.w_hh"].__setitem__((0, 0), np.nan))),
    ("rtl-float-missing-tensor", rtl("--bits", "6"), "lack tensor", lambda tmp: edit_npz(
        tmp / "m" / "float_weights.npz", lambda a: a.pop("enc.w_hh"))),
    # -- infer: the counts file
    ("infer-counts-missing", infer(counts_file="none.npy"), "does not exist", None),
    ("infer-counts-directory", infer(counts_file="d.npy"), "is not a file", mkdir("d.npy")),
    ("infer-counts-extension", infer(counts_file="c.txt"), "unknown extension '.txt'", write("c.txt", "1 2 3")),
    ("infer-counts-empty", infer(counts_file="z.npy"), "is empty", write("z.npy", b"")),
    ("infer-counts-garbage", infer(counts_file="g.npy"), "not a readable NumPy .npy", write("g.npy", b"\x93NUMPY garbage")),
    ("infer-counts-no-rows", infer(counts_file="z.npy"), "holds no pixels", write("z.npy", counts((0, T)))),
    ("infer-counts-no-columns", infer(counts_file="z.npy"), "holds no pixels", write("z.npy", counts((4, 0, T)))),
    ("infer-counts-1d", infer(counts_file="z.npy"), "shape (N, T) or (H, W, T)", write("z.npy", counts((T,)))),
    ("infer-counts-4d", infer(counts_file="z.npy"), "shape (N, T) or (H, W, T)", write("z.npy", counts((2, 2, 2, T)))),
    ("infer-counts-negative", infer(counts_file="z.npy"), "non-negative", write("z.npy", counts(dtype=np.int32, set_value=-3))),
    ("infer-counts-nan", infer(counts_file="z.npy"), "NaN", write("z.npy", counts(dtype=np.float32, set_value=np.nan))),
    ("infer-counts-fraction", infer(counts_file="z.npy"), "integer photon counts, found 0.5", write("z.npy", counts(dtype=np.float64, set_value=0.5))),
    ("infer-counts-overflow", infer("--dt", "model", counts_file="z.npy"), "beyond the IP's 16-bit input", write("z.npy", counts(dtype=np.int32, set_value=70000, at=T // 2))),
    ("infer-counts-bins", infer(counts_file="z.npy"), "100 time bins of unrecorded width", write("z.npy", counts((4, 100)))),
    ("infer-counts-objects", infer(counts_file="z.npy"), "not a readable NumPy .npy", write("z.npy", np.array([{"a": 1}] * 4, dtype=object))),
    ("infer-counts-strings", infer(counts_file="z.npy"), "numeric", write("z.npy", np.full((4, T), "7"))),
    ("infer-tiff-garbage", infer(counts_file="g.tif"), "not a readable TIFF file", write("g.tif", b"II*\x00garbage")),
    ("infer-ptu-garbage", infer(counts_file="g.ptu"), "not a readable PicoQuant PTU", write("g.ptu", b"PQTTTR\x00\x00garbage")),
    ("infer-sdt-garbage", infer(counts_file="g.sdt"), "not a readable Becker & Hickl SDT", write("g.sdt", b"garbage" * 20)),
    # -- infer: arguments
    ("infer-bits", infer("--bits", "1"), "2..32", None),
    ("infer-engine", infer("--engine", "gpu"), "--engine", None),
    ("infer-dt-negative", infer("--dt", "-1"), "positive", None),
    ("infer-dt-mismatch", infer("--dt", "0.05"), "bins of 0.05 ns", None),
    ("infer-channel", infer("--channel", "0"), "channel=0 does not apply", None),
    ("infer-frame", infer("--frame", "1"), "frame=1 does not apply", None),
    ("infer-time-axis", infer("--time-axis", "5"), "time_axis 5 is not an axis", None),
    ("infer-peak-bin", infer("--dt", "model", "--peak-bin", "500"), "--peak-bin must be a bin of the model's window", None),
    ("infer-dt-missing", infer(), "unrecorded width; the model expects", None),
    ("infer-dt-word", infer("--dt", "models"), "expected a number, not 'models'", None),
    ("infer-model-file", infer(model=GOOD), "is a file; name the model's directory", None),
    ("infer-model-missing", infer(model="nope"), "does not exist", None),
    ("infer-model-teacher", infer(), "multi-layer model", write("m/config.json", '{"model": {"layers": 2}}')),
    ("infer-model-nan", infer(), "NaN", float_codes(np.nan)),
    # -- infer: the outputs
    ("infer-out-suffix", infer(o="out.txt"), "must name a .npz", None),
    ("infer-out-directory", infer(o="d.npz"), "'d.npz' is a directory", mkdir("d.npz")),
    ("infer-out-png-directory", infer(), "'out.png' is a directory", mkdir("out.png")),
    ("infer-out-md-directory", infer(), "'out.md' is a directory", mkdir("out.md")),
    ("infer-out-model-weights", infer(o="m/weights.npz"), "would overwrite 'm'", None),
    ("infer-out-into-model", infer(o="m/maps.npz"), "would overwrite 'm'", None),
    ("infer-out-missing-dir", infer(o="nowhere/out.npz"), "does not exist", None),
    ("infer-out-parent-file", infer(o=f"{GOOD}/out.npz"), "is not a directory", None),
    # -- the command line itself
    ("no-command", [], "required", None),
    ("unknown-command", ["frobnicate"], "invalid choice", None),
    ("unknown-option", ["spec", "--frobnicate"], "unrecognized arguments", None),
]

#: Cases that import torch (seconds each): training and evaluation refusals.
TORCH_CASES = [
    ("train-out-proc", ["train", "student", "--out", "/proc/flirtl-x", "--epochs", "1"], "cannot be written", None),
    ("train-option", ["train", "student", "--frobnicate"], "unrecognized arguments", None),
    ("train-checkpoint-garbage", ["train", "student", "--out", "x", "--checkpoint-dir", "ck", "--data-dir", "dd"],
     "not a readable flirtl checkpoint", write("ck/x/last.pt", b"\x80\x04garbage" * 50)),
    ("eval-lma-pixels", ["eval", "m", "--lma-pixels", "-3"], "--lma-pixels: must be >= 1, not -3", None),
    ("eval-bits", ["eval", "--bits", "0", "m"], "--bits: must be in 2..32, not 0", None),
    ("eval-model-missing", ["eval", "nope", "-n", "10", "--out", "e"], "'nope' does not exist", None),
    ("eval-options-first", ["eval", "--bits", "8,4", "--no-baselines", "-n", "0", "m"], "-n: must be >= 1, not 0", None),
    ("eval-out-file", ["eval", "m", "-n", "10", "--out", GOOD], "is a file, not a directory", None),
]


def snapshot(directory: Path) -> dict:
    """Every entry under `directory`: kind and content hash (what 'nothing changed' means)."""
    found = {}
    for path in sorted(directory.rglob("*")):
        key = str(path.relative_to(directory))
        found[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return found


@pytest.fixture
def workspace(tmp_path):
    write_model(tmp_path / "m")
    np.save(tmp_path / GOOD, counts())
    return tmp_path


def check_refusal(done: subprocess.CompletedProcess, words: str) -> None:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0, f"exit 0: {done.stdout}{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{done.stderr}"
    assert words in lines[0], lines[0]


@pytest.mark.parametrize("argv, words, setup", [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_bad_input_is_refused(workspace, argv, words, setup):
    if setup:
        setup(workspace)
    before = snapshot(workspace)
    done = subprocess.run(COMMAND + argv, cwd=workspace, capture_output=True, text=True, timeout=120)
    check_refusal(done, words)
    assert snapshot(workspace) == before


@pytest.mark.parametrize("argv, words, setup", [pytest.param(*case[1:], id=case[0]) for case in TORCH_CASES])
def test_bad_training_input_is_refused(workspace, argv, words, setup):
    if setup:
        setup(workspace)
    before = snapshot(workspace)
    done = subprocess.run(COMMAND + argv, cwd=workspace, capture_output=True, text=True, timeout=300)
    check_refusal(done, words)
    assert snapshot(workspace) == before


@pytest.mark.parametrize("command", ["train", "eval"])
@pytest.mark.parametrize("where", ["after", "before"])
def test_help_of_delegated_commands(command, where):
    """`flirtl train --help` / `flirtl eval --help` work, and options may come before the model."""
    argv = [command, "--help"] if where == "after" else [command, "student" if command == "train" else "--quiet", "--help"]
    done = subprocess.run(COMMAND + argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "usage: flirtl" in done.stdout, done.stderr


@pytest.mark.parametrize("signum, code, words", [
    pytest.param(signal.SIGINT, 130, "interrupted (Ctrl-C)", id="sigint"),
    pytest.param(signal.SIGTERM, 143, "terminated (SIGTERM)", id="sigterm"),
])
def test_interrupted_inference_leaves_nothing(workspace, signum, code, words):
    """A signal once the output's temporary file exists (the maps are being computed into it): it
    is removed, one line, no traceback."""
    np.save(workspace / "big.npy", np.resize(random_counts(64, T, seed=2), (200_000, T)).astype(np.uint16))
    argv, output = ["infer", "big.npy", "--model", "m", "-o", "out.npz", "--quiet", "--dt", "model"], "out.npz"
    before = snapshot(workspace)
    process = subprocess.Popen(COMMAND + argv, cwd=workspace, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(workspace.glob(f".{output}.*.tmp")):  # the work has reached its output
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    done = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    check_refusal(done, words)
    assert process.returncode == code
    assert snapshot(workspace) == before


@pytest.mark.parametrize("variable, value", [
    ("BITS", "8; touch {tmp}/x #"), ("ENGINES", "1`touch {tmp}/x`"), ("LANES", "3 4"), ("JOBS", "2;touch {tmp}/x"),
])
def test_make_variables_are_checked(tmp_path, variable, value):
    """`make rtl 'BITS=8; touch x'` stops with one line and runs nothing (-n: only what make decides)."""
    target = "test" if variable == "JOBS" else "rtl"
    done = subprocess.run(["make", "-s", "-n", "-C", str(ROOT), target, f"{variable}={value.format(tmp=tmp_path)}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    check_refusal(done, f"{variable} must be a whole number")
    assert list(tmp_path.iterdir()) == []


def test_make_passes_paths_as_values_not_shell(tmp_path):
    """MODEL and OUT reach the command quoted: a path with shell syntax stays a path."""
    done = subprocess.run(["make", "-s", "-n", "-C", str(ROOT), "rtl", f"MODEL=m; touch {tmp_path}/x"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and '--model "$MODEL"' in done.stdout, done.stdout + done.stderr


def test_corpus_is_large():
    assert len(CASES) + len(TORCH_CASES) >= 80
