"""The reading page in a real browser (headless Chromium through Selenium): score, stop, resume, finish."""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from modelling.readers.server import start_server
from modelling.readers.unblind import read_responses, unblind
from modelling.stages.packet import make_packet
from tests.conftest import copy_bundle
from tests.modelling.readers.test_server import consistent

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--disable-dev-shm-usage", "--window-size=1400,1000"]


@pytest.fixture(scope="module")
def made(tiny_explained, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    study = copy_bundle(tiny_explained, root / "bundle")
    return make_packet(study, root / "packet", key_path=root / "key.csv", per_model=3, rounds=1,
                       readers=["A"], rng=21)


@pytest.fixture
def driver():
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver; "
                    "scripts/setup.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gvr-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_score_stop_resume_finish(made, driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    packet = made.packet
    order = packet.order("A", 1)
    n = len(order)
    features = packet.features
    responses = tmp_path / "A-round1.csv"
    wait = WebDriverWait(driver, 15)

    def text(element_id: str) -> str:
        return driver.find_element(By.ID, element_id).text

    def at(position: int) -> None:
        wait.until(lambda d: d.find_element(By.ID, "progress").text == f"{position} of {n}")
        assert text("blinded-id") == order[position - 1]

    def score(position: int) -> dict[str, bool]:
        """Tick a different set of features on each GVR (only "No CHF features" on some), then press Next."""
        ticked = consistent({f: (position + j) % 3 == 0 for j, f in enumerate(features)})
        for feature, on in ticked.items():
            box = driver.find_element(By.ID, f"f-{feature}")
            assert not box.is_selected()
            if on:
                box.click()
        driver.find_element(By.ID, "next").click()
        return ticked

    given: dict[str, dict[str, bool]] = {}
    server = start_server(packet.root, reader="A", round=1, responses_path=responses)
    try:
        driver.get(server.url)
        at(1)
        assert driver.find_element(By.ID, "prev").get_property("disabled")
        images = driver.find_elements(By.CSS_SELECTOR, "#images img")
        wait.until(lambda d: all(d.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images))
        for position in (1, 2, 3):
            given[order[position - 1]] = score(position)
            at(position + 1)
    finally:
        server.stop()
    saved = read_responses(responses, packet)
    assert len(saved) == 3 * len(features)

    server = start_server(packet.root, reader="A", round=1, responses_path=responses)
    try:
        driver.get(server.url)
        at(4)  # resumes at the first GVR without answers
        driver.find_element(By.ID, "prev").click()
        at(3)
        for feature in features:
            assert driver.find_element(By.ID, f"f-{feature}").is_selected() == given[order[2]][feature]
        driver.find_element(By.ID, "next").click()
        at(4)
        for position in range(4, n + 1):
            if position == n:
                assert text("next") == "Finish"
            given[order[position - 1]] = score(position)
            if position < n:
                at(position + 1)
        wait.until(lambda d: d.find_element(By.ID, "done").is_displayed())
        assert text("progress") == f"{n} of {n}"
        assert f"All {n} GVRs answered" in text("done-text")
    finally:
        server.stop()

    saved = read_responses(responses, packet)
    assert len(saved) == n * len(features)
    assert set(saved["reader"]) == {"A"} and set(saved["round"]) == {1}
    assert list(dict.fromkeys(saved["blinded_id"])) == list(order)
    for rec in saved.itertuples():
        assert rec.present == given[rec.blinded_id][rec.feature], rec
    assert saved["answered_at"].notna().all()
    table = unblind(packet.root, [responses], made.key_path)
    assert len(table) == n * len(features) and not table["simulated"].any()


def test_next_is_above_the_fold_the_legend_has_words_and_no_chf_excludes_the_rest(made, driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_window_size(1280, 900)
    server = start_server(made.packet.root, reader="A", round=1, responses_path=tmp_path / "A.csv")
    try:
        driver.get(server.url)
        wait = WebDriverWait(driver, 15)
        wait.until(lambda d: d.find_element(By.ID, "progress").text.startswith("1 of"))
        images = driver.find_elements(By.CSS_SELECTOR, "#images img")
        wait.until(lambda d: all(d.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images))
        inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        bottom = driver.execute_script("return document.getElementById('next').getBoundingClientRect().bottom")
        assert bottom <= inner[1], f"Next ends at {bottom}px of a {inner} viewport"
        legend = driver.find_element(By.ID, "legend").text
        assert "orange: density removed" in legend and "purple: density added" in legend
        driver.save_screenshot(str(tmp_path / "page-1280x900.png"))
        cardio, none = driver.find_element(By.ID, "f-cardiomegaly"), driver.find_element(By.ID, "f-no_chf_features")
        cardio.click()
        none.click()
        assert none.is_selected() and not cardio.is_selected()
        cardio.click()
        assert cardio.is_selected() and not none.is_selected()
        wait.until(lambda d: d.find_element(By.ID, "status").text == "saved")
    finally:
        server.stop()


@contextmanager
def reading_page(made, driver, responses: Path):
    """Reader A's first round served and open at its first GVR; yields the page's wait."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    n = len(made.packet.order("A", 1))
    server = start_server(made.packet.root, reader="A", round=1, responses_path=responses)
    try:
        driver.get(server.url)
        wait = WebDriverWait(driver, 15)
        wait.until(lambda d: d.find_element(By.ID, "progress").text == f"1 of {n}")
        yield wait
    finally:
        server.stop()


def test_a_double_click_on_next_moves_one_gvr(made, driver, tmp_path):
    """A second click while the first one's answer is still saving is ignored (it saved the same GVR twice
    and skipped the next one)."""
    from selenium.webdriver.common.by import By

    order = made.packet.order("A", 1)
    responses = tmp_path / "A.csv"
    with reading_page(made, driver, responses) as wait:
        driver.find_element(By.ID, "f-no_chf_features").click()  # an answer marks something
        wait.until(lambda d: d.find_element(By.ID, "status").text == "saved")
        driver.execute_script("""
            const real = window.fetch;
            window.fetch = (url, opts) => new Promise((ok) => setTimeout(() => ok(real(url, opts)), 300));
            document.getElementById('next').click(); document.getElementById('next').click();""")
        wait.until(lambda d: not d.find_element(By.ID, "progress").text.startswith("1 of"))
        time.sleep(1.0)  # the second click's save, had it been taken, would have ended by now
        assert driver.find_element(By.ID, "progress").text == f"2 of {len(order)}"
        assert driver.find_element(By.ID, "blinded-id").text == order[1]
    assert list(dict.fromkeys(read_responses(responses, made.packet)["blinded_id"])) == [order[0]]


def test_an_answer_that_marks_nothing_is_not_saved_and_previous_still_goes_back(made, driver, tmp_path):
    """Nothing marked: Next stays and says what is missing, unticking the only mark saves nothing, and
    Previous goes back without saving (a reader who wants to look again is not held on an empty GVR)."""
    from selenium.webdriver.common.by import By

    order = made.packet.order("A", 1)
    responses = tmp_path / "A.csv"
    with reading_page(made, driver, responses) as wait:
        progress = lambda d: d.find_element(By.ID, "progress").text  # noqa: E731
        driver.find_element(By.ID, "next").click()
        wait.until(lambda d: "mark what the GVR shows" in d.find_element(By.ID, "status").text)
        assert progress(driver) == f"1 of {len(order)}" and not responses.exists()
        driver.find_element(By.ID, "f-cardiomegaly").click()
        wait.until(lambda d: d.find_element(By.ID, "status").text == "saved")
        driver.find_element(By.ID, "next").click()
        wait.until(lambda d: progress(d) == f"2 of {len(order)}")
        box = driver.find_element(By.ID, "f-pleural_effusion")
        box.click()
        wait.until(lambda d: d.find_element(By.ID, "status").text == "saved")
        box.click()  # unticked again: nothing marked, nothing saved
        wait.until(lambda d: "mark what the GVR shows" in d.find_element(By.ID, "status").text)
        driver.find_element(By.ID, "prev").click()
        wait.until(lambda d: progress(d) == f"1 of {len(order)}")
        assert driver.find_element(By.ID, "f-cardiomegaly").is_selected()
    saved = read_responses(responses, made.packet)
    answer = {(r.blinded_id, r.feature): r.present for r in saved.itertuples()}
    assert answer[(order[0], "cardiomegaly")] and not answer[(order[0], "no_chf_features")]
    assert answer[(order[1], "pleural_effusion")]  # the last answer saved for it: the unticking was not
