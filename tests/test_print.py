"""The workbook printed the way a reader prints it: LibreOffice converts it to PDF, and the pages
are counted, measured and checked for landscape and a readable text size.

Needs ``soffice`` (Debian libreoffice-calc-nogui) and poppler's ``pdfinfo`` / ``pdftotext``;
``.ci/run`` installs them (and Carlito, the metric twin of Excel's Calibri). Skipped without them.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest

from kqi.synth import make_city

pytestmark = pytest.mark.slow

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
TOOLS = SOFFICE and shutil.which("pdfinfo") and shutil.which("pdftotext")
#: smallest text size (points, after fitting to the page width) a reader can read on paper
MIN_POINTS = 7.0


def to_pdf(xlsx: Path, out: Path) -> Path:
    assert SOFFICE is not None
    profile = out / "lo-profile"   # a fresh profile: no user settings, no lock with a desktop LO
    subprocess.run([SOFFICE, f"-env:UserInstallation=file://{profile}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(out), str(xlsx)],
                   check=True, capture_output=True, timeout=300)
    pdf = out / (xlsx.stem + ".pdf")
    assert pdf.is_file()
    return pdf


def page_sizes(pdf: Path) -> list[tuple[float, float]]:
    info = subprocess.run(["pdfinfo", "-f", "1", "-l", "100000", str(pdf)], check=True,
                          capture_output=True, text=True).stdout
    return [(float(w), float(h)) for w, h in
            re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+)", info)]


def word_heights(pdf: Path, page: int) -> list[float]:
    html = subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), "-bbox", str(pdf), "-"],
                          check=True, capture_output=True, text=True).stdout
    return [float(b) - float(a) for a, b in
            re.findall(r'yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)"', html)]


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    if not TOOLS:
        pytest.skip("LibreOffice (soffice) or poppler (pdfinfo, pdftotext) not installed")
    import openpyxl

    import kqi

    base = tmp_path_factory.mktemp("print")
    city = make_city(base / "city", seed=5, n_cells=600, days=7, tests_per_cell_day=20)
    result = kqi.run(cells=city.cells, tests=city.tests, kpis=city.kpis,
                     complaints=city.complaints, out=base / "out")
    # the height of a word of 11 pt text printed at 100 %: the ruler for the pages' text
    wb = openpyxl.Workbook()
    ws = wb.active
    for r in range(1, 6):
        ws.cell(row=r, column=1).value = "Ruler 460-00 Rank"
    wb.save(base / "ruler.xlsx")
    ruler = statistics.median(word_heights(to_pdf(base / "ruler.xlsx", base), 1))
    assert result.work_orders.height > 10
    return result.out / "work_orders.xlsx", to_pdf(result.out / "work_orders.xlsx", base), ruler


def test_pages_are_landscape_and_few(printed: tuple[Path, Path, float]) -> None:
    import openpyxl

    xlsx, pdf, _ = printed
    sizes = page_sizes(pdf)
    wb = openpyxl.load_workbook(xlsx)
    rows = sum(ws.max_row for ws in wb.worksheets)
    assert sizes, "no pages"
    assert all(w > h for w, h in sizes), sizes                 # every page landscape
    assert all(abs(w - 841.9) < 2 and abs(h - 595.3) < 2 for w, h in sizes)   # A4
    # fitted to the width: pages grow with rows (wrapped evidence: a few orders a page), never
    # one page per column; at least one page per sheet
    assert len(wb.worksheets) <= len(sizes) <= len(wb.worksheets) + rows // 6, (len(sizes), rows)


def test_text_is_readable_on_every_page(printed: tuple[Path, Path, float]) -> None:
    _, pdf, ruler = printed
    for page in range(1, len(page_sizes(pdf)) + 1):
        heights = word_heights(pdf, page)
        if len(heights) < 20:      # a chart page: its labels are not table text
            continue
        points = 11.0 * statistics.median(heights) / ruler
        assert points >= MIN_POINTS, (page, round(points, 1))


def test_every_order_column_the_print_shows_is_on_the_page(printed: tuple[Path, Path, float]
                                                         ) -> None:
    """The printed key columns of the order sheets are all there, in words, on the first page
    of the 'All orders' sheet; the header row is repeated on the next one."""
    _, pdf, _ = printed
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout
    pages = text.split("\f")
    orders = [p for p in pages if "All orders," in p]
    assert len(orders) >= 2
    for page in orders[:2]:
        for words in ("Rank", "Cell ID", "Evidence", "Recommended", "Primary"):
            assert words in page, words
