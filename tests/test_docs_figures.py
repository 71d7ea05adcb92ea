"""README.md's figures are the ones the scripts wrote. Hardware: README.md's and docs/integration.md's
measured-clocks block equals the block generated from docs/report/report.json (`make report`), and
the shipped IP's cycle count is report.json's. Accuracy: the model tables are each directory's
metrics.json (models/ or docs/eval/ablations/, and `make models` trains every one of them), the
robustness table is docs/eval/robustness.json (`make robustness`), the sample files against phasor
analysis are docs/eval/*_vs_phasor.json (benchmarks/sample_vs_phasor.py), the lifetime bias is
docs/eval/lifetime_bias.json (benchmarks/lifetime_bias.py), and the summary of the 100k-pixel
evaluation quotes docs/eval/tables.md (`make eval-ablations`)."""

import json
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest

from flirtl.fli import get_instrument
from flirtl.flow import report


@pytest.mark.parametrize("page", report.DOCS_PAGES, ids=lambda p: p.name)
def test_docs_carry_the_measured_clocks_of_the_shipped_report(page):
    block = report.docs_block(json.loads(report.DOCS_REPORT.read_text()))
    text = page.read_text()
    assert text.count(report.DOCS_BEGIN) == 1, f"{page} needs one measured-clocks block"
    assert block in text, f"{page} is stale: run python -m flirtl.flow.report --docs {report.DOCS_REPORT}"


def test_shipped_report_measures_the_shipped_ip_on_three_families():
    rows = {row["id"]: row for row in json.loads(report.DOCS_REPORT.read_text())["rows"]}
    measured = rows["b8-h32-l99-e1-T135"]["derived"]["measured"]
    assert set(measured) == {"ecp5", "nexus", "gowin"}
    for figures in measured.values():  # a clock nextpnr timed, or why there is none
        assert figures.get("fmax_mhz", 0) > 0 or "does not fit" in figures["no_clock"] or \
            "could not route" in figures["no_clock"]


def test_update_docs_rewrites_only_the_block_and_refuses_a_page_without_one(tmp_path):
    data = json.loads(report.DOCS_REPORT.read_text())
    source = tmp_path / "report.json"
    source.write_text(json.dumps(data))
    page = tmp_path / "page.md"
    page.write_text(f"before\n{report.DOCS_BEGIN}\nold 222 MHz figures\n{report.DOCS_END}\nafter\n")
    assert report.update_docs(source, pages=(page,)) == [page]
    assert page.read_text() == f"before\n{report.docs_block(data)}\nafter\n"
    assert report.update_docs(source, pages=(page,)) == []  # already current
    bare = tmp_path / "bare.md"
    bare.write_text("no block here\n")
    with pytest.raises(ValueError, match="no measured-clocks block"):
        report.update_docs(source, pages=(bare,))
    assert bare.read_text() == "no block here\n"


# -- the accuracy figures: README.md against the JSON (and docs/eval/tables.md) they come from --------

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EVAL = ROOT / "docs" / "eval"
ABLATIONS = EVAL / "ablations"


def _section(text: str, heading: str) -> str:
    """`text` from the line `heading` to the next heading of the same or a higher level."""
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ")[0]
    ends = [text.find(f"\n{'#' * n} ", start + len(heading) + 2) for n in range(1, len(level) + 1)]
    return text[start:min([end for end in ends if end >= 0], default=len(text))]


def _tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in `text`: its rows (header first, no separator) as lists of cells."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-: "):
                current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables


def _decimals_of(cell: str, value: float) -> str:
    """`value` printed with as many decimals as `cell` shows."""
    decimals = len(cell.split(".")[1]) if "." in cell else 0
    return f"{value:.{decimals}f}"


def _model_tables() -> list[list[list[str]]]:
    tables = [t for t in _tables(_section(README.read_text(), "### Shipped models")) if t[0][0] == "directory"]
    assert len(tables) == 2, "README's Shipped models section has the shipped table and the ablations' table"
    assert all(t[0] == ["directory", "what", "float", "golden (IP)"] for t in tables)
    return tables


def _directory(row: list[str]) -> str:
    return re.match(r"`([^`]+)`", row[0]).group(1)


def test_readme_model_tables_name_every_shipped_model_and_ablation():
    shipped, ablations = ([_directory(row) for row in table[1:]] for table in _model_tables())
    assert sorted(shipped) == sorted(p.parent.name for p in (ROOT / "models").glob("*/metrics.json"))
    assert sorted(ablations) == sorted(p.parent.name for p in ABLATIONS.glob("*/metrics.json"))
    assert not set(shipped) & set(ablations)


@pytest.mark.parametrize("row", [row for table in _model_tables() for row in table[1:]], ids=_directory)
def test_readme_model_table_row_is_the_directorys_metrics(row):
    """float: the float network on the run's test split (not shown for a QAT model: the float network
    of weights trained for the integer datapath); golden: the integer model on it (8-bit PTQ for a
    float student, the model's own formats after QAT; none for a teacher)."""
    name = _directory(row)
    source = ROOT / "models" / name / "metrics.json"
    metrics = json.loads((source if source.is_file() else ABLATIONS / name / "metrics.json").read_text())
    float_cell, golden_cell = row[2], row[3]
    if float_cell == "-":
        assert "qat_vs_golden" in metrics, f"{name} is a float model: README must show its float RMSE"
    else:
        assert float_cell == f"{metrics['float_test']['rmse_ch0']:.4f}", name
    if golden_cell == "-":
        assert "golden_test" not in metrics, f"{name} has a golden-model RMSE: README must show it"
    else:
        assert golden_cell == f"{metrics['golden_test']['rmse_ch0']:.4f}", name


def test_make_models_trains_every_shipped_model_and_ablation():
    """`make models` reproduces each directory of the tables (the ablations' only way back)."""
    from flirtl.nn.config import MODEL_KINDS

    commands = [line for line in subprocess.run(["make", "-n", "--no-print-directory", "models"], cwd=ROOT,
                                                capture_output=True, text=True, check=True).stdout.splitlines()
                if "flirtl.nn.train" in line]
    outs = set()
    for command in commands:
        words = shlex.split(command)
        kind = words[words.index("flirtl.nn.train") + 1]
        outs.add(words[words.index("--out") + 1] if "--out" in words else MODEL_KINDS[kind][1]["out"])
    named = {f"models/{_directory(row)}" for table in _model_tables() for row in table[1:]}
    assert named <= outs, f"make models trains none of {sorted(named - outs)}"


ROBUSTNESS_ROWS = {  # README's label -> the estimator in docs/eval/robustness.json
    "`seq2seqlite-32x32` (shipped IP, 8-bit golden)": "seq2seqlite-32x32 (golden 8-bit)",
    "`seq2seqlite-32x32-anywhere` (8-bit golden)": "seq2seqlite-32x32-anywhere (golden 8-bit)",
    "teacher (float)": "teacher (float)",
    "LMA fit with each pixel's true response": "LMA fit, true response (FLIMLib)",
    "phasor": "phasor (phasorpy)",
    "constant prior mean": "prior mean (constant)",
}


def test_readme_robustness_table_is_robustness_json():
    """tau_mean MAE at >= `bright` photons per pulse-position bin, and worst / best over the bins."""
    data = json.loads((EVAL / "robustness.json").read_text())
    text = _section(README.read_text(), "## Your instrument")
    assert f"at >= {data['bright']} photons" in " ".join(text.split())
    (table,) = [t for t in _tables(text) if t[0][0] == "tau_mean MAE (ns)"]
    header, rows = table[0], table[1:]
    assert header[-1] == "worst / best"
    assert sorted(ROBUSTNESS_ROWS[row[0]] for row in rows) == sorted(data["results"])
    for column, title in enumerate(header[1:-1], start=1):
        lo, hi = map(float, re.search(r"(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?) ns", title).groups())
        for row in rows:
            estimator = ROBUSTNESS_ROWS[row[0]]
            (cell,) = [b for b in data["results"][estimator]["pulse position"]
                       if abs(b["lo"] - lo) <= 0.05 and abs(b["hi"] - hi) <= 0.05]
            assert row[column] == _decimals_of(row[column], cell["tau_mean"]["mae"]), (row[0], title)
    for row in rows:
        assert row[-1] == _decimals_of(row[-1], data["spread"][ROBUSTNESS_ROWS[row[0]]]), row[0]


def test_readme_robustness_text_is_robustness_json():
    """The pulse-anywhere model against the shipped one inside ss3's own pulse range, and its bias."""
    data = json.loads((EVAL / "robustness.json").read_text())
    shipped, anywhere = (data["results"][f"{name} (golden 8-bit)"]["pulse position"]
                         for name in ("seq2seqlite-32x32", "seq2seqlite-32x32-anywhere"))
    lo, hi = get_instrument("ss3").irf_position_range
    (inside,) = [i for i, cell in enumerate(anywhere) if cell["lo"] <= (lo + hi) / 2 < cell["hi"]]
    ours, theirs = anywhere[inside]["tau_mean"]["mae"], shipped[inside]["tau_mean"]["mae"]
    pixels = np.array([cell["pixels"] for cell in anywhere], float)
    tau1 = np.average([cell["tau1"]["bias"] for cell in anywhere], weights=pixels)
    tau_mean = [cell["tau_mean"]["bias"] for cell in anywhere]
    text = " ".join(README.read_text().split())
    assert f"gives up {100 * (ours / theirs - 1):.0f}% ({ours:.3f} vs {theirs:.3f} ns)" in text
    assert (f"comes out long ({tau1:+.2f} ns on average at >= {data['bright']} photons) and tau_mean "
            f"{min(tau_mean):+.3f}..{max(tau_mean):.3f} ns across pulse positions") in text


@pytest.mark.parametrize("name, kind", [("sample_vs_phasor", "SDT"), ("ptu_vs_phasor", "PTU")])
def test_readme_sample_files_against_phasor_are_their_json(name, kind):
    """benchmarks/sample_vs_phasor.py's figures (docs/eval/<name>.json, its command in docs/eval/README.md)."""
    figures = json.loads((EVAL / f"{name}.json").read_text())
    phrase = (f"`{name}.png`, `.json`: {kind} with `{figures['model']}`, {figures['pixels']:,} pixels >= "
              f"{figures['min_photons']:g} photons, medians {figures['median_model_ns']:.3f} vs "
              f"{figures['median_phasor_ns']:.3f} ns,")
    text = " ".join(README.read_text().split())
    assert phrase in text
    tail = text[text.index(phrase) + len(phrase):].split(";")[0]
    if "|difference| median" in tail:
        assert f"|difference| median {figures['difference_median_ns']:.3f} ns" in tail
    assert f"r {figures['pearson_r']:.2f}" in tail


def _eval_table(heading: str) -> dict[str, dict[str, str]]:
    """The first table under `heading` in docs/eval/tables.md: {row label: {column: cell}}."""
    table = _tables(_section((EVAL / "tables.md").read_text(), heading))[0]
    return {row[0]: dict(zip(table[0][1:], row[1:])) for row in table[1:]}


def test_readme_summary_of_the_evaluation_is_tables_md():
    """The figures README.md quotes from the 100k-pixel `make eval-ablations` (docs/eval/tables.md,
    written by flirtl.nn.evaluate), phrase by phrase."""
    sfd = _eval_table("## SFD channel-0 RMSE by compression step")
    tau = _eval_table("### tau_mean")
    ratio = _eval_table("## Against the physical limit: RMSE / sqrt(CRLB)")
    spread = _eval_table("### Spread part: the same with each truth cell's mean error removed")
    model, lma, phasor, teacher = ("seq2seqlite-32x32 qat 8-bit", "LMA fit (FLIMLib) baseline",
                                   "phasor (phasorpy) baseline", "teacher float")

    def rmse(row, photons):  # "MAE / RMSE (n failed)" -> RMSE
        return tau[row][f"{photons} photons"].split(" / ")[1].split(" ")[0]

    def limit(table, row, photons="1000-10000"):
        return f"{table[row][f'tau_mean {photons}']} / {table[row][f'tau2 {photons}']}"

    shipped, float_teacher = sfd["seq2seqlite-32x32"]["QAT (golden)"], sfd["teacher"]["float"]
    assert ratio[model]["tau_mean 1000-10000"] == ratio[model]["tau2 1000-10000"]  # "on the mean lifetime and on tau2"
    phrases = [
        f"SFD channel-0 RMSE {shipped} against the teacher's {float_teacher} "
        f"({float(shipped) / float(float_teacher):.3f};",
        f"full-integer PTQ is not ({sfd['seq2seqlite-32x32-float-400k']['golden 8 (integer)']} from the same float student)",
        f"({rmse(model, '200-1000')} vs {rmse(lma, '200-1000')} / {rmse(phasor, '200-1000')} ns at 200-1000)",
        f"(RMSE {rmse(lma, '1000-10000')} vs {rmse(model, '1000-10000')} ns)",
        f"sits at {ratio[model]['tau_mean 1000-10000']}x the Cramer-Rao limit on the mean lifetime and on tau2 "
        f"(teacher {limit(ratio, teacher)}, LMA fit {limit(ratio, lma)};",
        f"the model sits at {limit(spread, model)} (the LMA fit, nearly unbiased, at {limit(spread, lma)})",
        # the ablations' figures in the same run
        f"(mean lifetime / tau2 at {limit(ratio, 'seq2seqlite-32x32-bright qat 8-bit')} x the Cramer-Rao limit "
        f"above 1000 photons, vs {limit(ratio, model)})",
        f"({sfd['seq2seqlite-32x32-hint']['QAT (golden)']} on 100k fresh pixels vs {shipped}; "
        f"{limit(ratio, 'seq2seqlite-32x32-hint qat 8-bit')} x the limit)",
    ]
    text = " ".join(README.read_text().split())
    missing = [phrase for phrase in phrases if phrase not in text]
    assert not missing, f"README.md does not quote docs/eval/tables.md: {missing}"


def test_readme_lifetime_bias_is_its_json():
    """benchmarks/lifetime_bias.py's figures for the shipped model (docs/eval/lifetime_bias.json)."""
    figures = json.loads((EVAL / "lifetime_bias.json").read_text())["models"]["seq2seqlite-32x32"]
    shortest = figures["by_tau1"][0]
    phrase = (f"tau1 comes out {figures['lifetimes']['tau1']['bias']:.2f} ns long on average "
              f"({shortest['tau1_bias']:.2f} ns for tau1 < {shortest['hi']:g} ns), which lengthens the mean "
              f"lifetime by {figures['lifetimes']['tau_mean']['bias']:.2f} ns")
    assert phrase in " ".join(README.read_text().split())


def test_readme_cycle_count_of_the_shipped_ip_is_report_json():
    rows = {row["id"]: row for row in json.loads(report.DOCS_REPORT.read_text())["rows"]}
    performance = rows["b8-h32-l99-e1-T135"]["performance"]
    phrase = (f"The shipped IP: {performance['cycles_per_pixel_per_engine']:,} cycles per pixel per engine in RTL "
              f"simulation (MAC-lane utilisation {100 * performance['lane_utilisation']:.1f}%)")
    assert phrase in " ".join(README.read_text().split())
