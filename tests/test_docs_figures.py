"""The hardware figures in README.md and docs/integration.md are the ones `make report` measured:
each page's measured-clocks block equals the block generated from docs/report/report.json."""

import json

import pytest

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
