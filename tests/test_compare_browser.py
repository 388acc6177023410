"""The ``dltk compare`` page (and so a sweep's, which is one) in a real browser (issue 23, item 3):
Debian's chromium driven by Selenium through chromedriver. The page loads with no console error,
every image it references loads, its tables and figures are under the headings that announce them,
and names from run directories are text, never markup (a run named ``<script>`` shows as text).

The checks are :func:`page_problems`; two tests show that it fails a page with a missing image and
a page that writes a run's name unescaped. ``.ci/run`` installs ``chromium`` and
``chromium-driver`` where missing; without them these tests skip, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

RECIPE = '[recipe]\nname = "{name}"\nepochs = 2\n[model]\nname = "toy-mlp"\n[dataset]\nname = "digits"\n'
HOSTILE = ("<script>", "<img src=x onerror=window.pwned=1>")
"""Run directory names that would be markup if the page did not escape them."""


def make_run(folder: Path, fid: float) -> Path:
    """A run directory of two epochs with a training ``loss``, an ``fid`` score and a sample grid."""
    folder.mkdir(parents=True)
    (folder / "recipe.toml").write_text(RECIPE.format(name="toy"), encoding="utf-8")
    lines = [
        {"kind": "step", "epoch": 1, "iteration": 5, "loss": 1.0},
        {"kind": "epoch", "epoch": 1, "iteration": 10, "loss": 0.9},
        {"kind": "eval", "epoch": 1, "iteration": 10, "fid": fid + 10},
        {"kind": "epoch", "epoch": 2, "iteration": 20, "loss": 0.7},
        {"kind": "eval", "epoch": 2, "iteration": 20, "fid": fid},
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    summary = {"parameters": {"generator": 100}, "trained_modules": ["generator"], "train_seconds": 3.0}
    (folder / "run.json").write_text(json.dumps(summary), encoding="utf-8")
    (folder / "samples").mkdir()
    grid = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).astype(np.uint8)
    Image.fromarray(grid).save(folder / "samples" / "grid_00000020.png")
    return folder


def find_browser() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` paths, or None."""
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if os.path.exists(p)), None
    )
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (uv sync installs it)")
    found = find_browser()
    if found is None:
        pytest.skip(
            "no chromium and chromedriver here (.ci/run installs them: apt-get install chromium chromium-driver)"
        )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--allow-file-access-from-files",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=found[1]), options=options)
    except Exception as exc:  # a browser that cannot start here (no shared memory, say)
        pytest.skip(f"chromium does not start here ({type(exc).__name__}: {str(exc).splitlines()[0]})")
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


SECTIONS = """
const after = (title) => {
  const h = Array.from(document.querySelectorAll('h2')).find((e) => e.textContent === title);
  return h ? h.nextElementSibling : null;
};
const runs = after('Runs'), scores = after('Scores'), figures = after('Scalars over training'),
      grids = after('Last sample grids');
const shown = (img) => img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().width > 0;
return {
  images: Array.from(document.images).map((i) => [i.getAttribute('src'), shown(i)]),
  runs: runs && runs.tagName, scores: scores && scores.tagName,
  runRows: runs && runs.tagName === 'TABLE' ? runs.tBodies[0].rows.length : 0,
  figures: figures && figures.className, figureImages: figures ? figures.querySelectorAll('img').length : 0,
  grids: grids && grids.className,
  captions: grids ? Array.from(grids.querySelectorAll('figcaption')).map((c) => c.textContent) : [],
  scripts: document.querySelectorAll('script').length,
  pwned: window.pwned === undefined ? null : window.pwned,
  text: document.body.innerText,
};
"""


def page_problems(driver, page: Path, labels: list[str]) -> list[str]:
    """What is wrong with the compare page at ``page`` of runs with ``labels``, as a browser shows it."""
    driver.get(page.resolve().as_uri())
    found = driver.execute_script(SECTIONS)
    problems = [f"console: {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    problems += [f"image does not load: {src}" for src, ok in found["images"] if not ok]
    if found["runs"] != "TABLE" or found["runRows"] != len(labels):
        problems.append(
            f"'Runs' is not followed by a table of {len(labels)} rows ({found['runs']}, {found['runRows']})"
        )
    if found["scores"] != "TABLE":
        problems.append(f"'Scores' is not followed by a table ({found['scores']})")
    if found["figures"] != "figures" or found["figureImages"] == 0:
        problems.append(f"'Scalars over training' is not followed by its figures ({found['figures']})")
    if found["grids"] != "grids" or found["captions"] != labels:
        problems.append(f"'Last sample grids' does not caption each run: {found['captions']} != {labels}")
    if found["scripts"] or found["pwned"] is not None:
        problems.append(f"a name became markup ({found['scripts']} script elements, window.pwned={found['pwned']})")
    problems += [f"name not shown as text: {label}" for label in labels if label not in found["text"]]
    return problems


@pytest.fixture
def compared(dltk, tmp_path) -> tuple[Path, list[str]]:
    runs = [make_run(tmp_path / name, fid) for name, fid in (("plain", 20.0), *zip(HOSTILE, (30.0, 25.0), strict=True))]
    result = dltk("compare", *runs, "--out", tmp_path / "page")
    assert result.exit_code == 0, result.err
    return tmp_path / "page" / "compare.html", [r.name for r in runs]


def test_the_compare_page_loads_whole_in_a_browser_with_names_as_text(browser, compared):
    page, labels = compared
    assert len(list(page.parent.glob("*.png"))) >= 4  # loss, fid and the grids
    assert page_problems(browser, page, labels) == []


def test_the_check_fails_a_page_with_a_missing_image(browser, compared):
    page, labels = compared
    missing = sorted(page.parent.glob("*.png"))[0]
    missing.unlink()
    problems = page_problems(browser, page, labels)
    assert f"image does not load: {missing.name}" in problems
    assert any(p.startswith("console: ") and missing.name in p for p in problems)


def test_the_check_fails_a_page_that_writes_a_name_unescaped(browser, compared):
    page, labels = compared
    text = page.read_text(encoding="utf-8")
    escaped = "&lt;img src=x onerror=window.pwned=1&gt;"
    assert escaped in text
    page.write_text(text.replace(escaped, HOSTILE[1]), encoding="utf-8")
    problems = page_problems(browser, page, labels)
    assert "a name became markup (0 script elements, window.pwned=1)" in problems
