"""The leaderboard page in headless Chromium, inside a sandboxed iframe like the ZenML
dashboard's (no scripts): it renders, its scatter loads, and ▲/▼ re-order the rows.

Skipped where Debian's `chromium` and `chromium-driver` are not installed (`.ci/run`
installs them for the dashboard smoke check)."""

import html
import shutil
from pathlib import Path

import pytest

from tests.fixtures.leaderboard import leaderboard_rows

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs chromium and chromedriver (apt: chromium-driver)"
)


def _versions_top_to_bottom(driver, section: int) -> list[int]:
    rows = driver.find_elements("css selector", f"section:nth-of-type({section + 1}) .r:not(.head)")
    return [int(r.get_attribute("data-version")) for r in sorted(rows, key=lambda r: r.rect["y"])]


def test_leaderboard_renders_and_sorts_without_scripts(tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from scripts.dashboard_smoke import CHROMIUM_FLAGS
    from utils.experiments.leaderboard import columns, rank
    from utils.experiments.leaderboard_html import leaderboard_html, scatter_png

    groups = rank(leaderboard_rows(), "rougeL")
    page = leaderboard_html(groups, scatter_png(groups), "Leaderboard: m")
    host = tmp_path / "host.html"
    # The dashboard's way: srcdoc in an iframe whose sandbox allows no scripts.
    host.write_text(
        f'<iframe id="vis" sandbox="" style="width:1500px;height:1800px" '
        f'srcdoc="{html.escape(page, quote=True)}"></iframe>'
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(host.as_uri())
        driver.switch_to.frame(driver.find_element("id", "vis"))
        text = driver.find_element("tag name", "body").text
        assert "data_to_text on test:200: ranked by rougeL" in text
        assert "data_to_text on test:all" in text
        assert "training.learning_rate=0.002" in text
        img = driver.find_element("tag name", "img")
        assert img.size["width"] > 300 and img.size["height"] > 200  # the data-URI PNG loaded
        # Ranked by rougeL first; then by version, ascending; then SER, best (lowest) first.
        assert _versions_top_to_bottom(driver, 0) == [2, 3, 1]
        names = columns(groups[0])
        driver.find_element("css selector", f'label[for="g0-c{names.index("version")}-a"]').click()
        assert _versions_top_to_bottom(driver, 0) == [1, 2, 3]
        driver.find_element("css selector", f'label[for="g0-c{names.index("ser")}-a"]').click()
        assert _versions_top_to_bottom(driver, 0) == [3, 2, 1]
        driver.find_element("css selector", f'label[for="g0-c{names.index("ser")}-d"]').click()
        assert _versions_top_to_bottom(driver, 0) == [1, 2, 3]
        driver.switch_to.default_content()
        shot = tmp_path / "leaderboard.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()
