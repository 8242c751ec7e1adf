"""A reviewer's session in the review pages, in Debian's chromium driven by selenium: sign in,
review a classification set on the map (a click and keys, then the queue), mark a detected shape,
label a clip by its spectrogram and audio, and draw runs' curves. Screenshots go to OUT_DIR.

usage: review_pages_session.py GATEWAY_URL SESSION.json OUT_DIR

SESSION.json gives token, class_set, box_set, dataset, experiment, and the tiles to click
(first_tile, second_tile).

Prints a JSON report of what the pages showed, for the Swift test to compare with the services.
"""

import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

gateway, session_file, out = sys.argv[1:4]
session = json.load(open(session_file))
token, class_set, box_set = session["token"], session["class_set"], session["box_set"]
dataset, experiment = session["dataset"], session["experiment"]
first_tile, second_tile = session["first_tile"], session["second_tile"]
options = Options()
options.binary_location = "/usr/bin/chromium"
for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                 "--autoplay-policy=no-user-gesture-required", "--disable-dev-shm-usage"):
    options.add_argument(argument)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
# The pages redraw what they show, so an element looked up a moment ago may be gone: look again.
wait = WebDriverWait(driver, 30, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
report = {}


def until(condition, message):
    try:
        return wait.until(lambda d: condition(d))
    except Exception:
        errors = driver.find_elements(By.ID, "error")
        shown = errors[0].text if errors else ""
        logs = driver.get_log("browser") if hasattr(driver, "get_log") else []
        raise AssertionError(f"{message}; the page says: {shown!r}; console: {logs}")


def text(selector):
    return driver.find_element(By.CSS_SELECTOR, selector).text


try:
    # Sign in: the token goes to sessionStorage, never to a cookie.
    driver.get(f"{gateway}/review/")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "save-token").click()
    until(lambda d: d.find_elements(By.CSS_SELECTOR, "a.set-link"), "the sets are listed")
    report["cookies"] = driver.get_cookies()
    report["who"] = text("#who")
    report["set_links"] = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "a.set-link")]
    report["dataset_links"] = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "a.dataset-link")]
    driver.save_screenshot(f"{out}/index.png")

    # The classification set: tiles over imagery; a click and "v", then "i" on another.
    driver.get(f"{gateway}/review/map.html?set={class_set}")
    until(lambda d: d.find_element(By.ID, "map").get_attribute("data-ready") == "true", "the map is ready")
    until(lambda d: d.find_element(By.ID, "map").get_attribute("data-imagery-loaded") == "true", "imagery loads")
    report["tiles_drawn"] = len(driver.find_elements(By.CSS_SELECTOR, "#map rect.tile"))
    report["imagery_drawn"] = len(driver.find_elements(By.CSS_SELECTOR, "#map image.imagery"))
    report["class_options"] = [o.text for o in driver.find_elements(By.CSS_SELECTOR, "#class option")]
    report["script_elements"] = len(driver.find_elements(By.CSS_SELECTOR, "script"))
    first = driver.find_element(By.CSS_SELECTOR, f"#map rect.tile[data-tile='{first_tile}']")
    report["unvalidated_fill"] = first.get_attribute("fill")
    driver.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", first)
    until(lambda d: first_tile in text("#selection"), "the tile is selected")
    driver.find_element(By.TAG_NAME, "body").send_keys("v")
    until(lambda d: d.find_element(By.CSS_SELECTOR, f"#map rect.tile[data-tile='{first_tile}']")
          .get_attribute("fill") != report["unvalidated_fill"], "the tile turns valid")
    report["valid_fill"] = driver.find_element(
        By.CSS_SELECTOR, f"#map rect.tile[data-tile='{first_tile}']").get_attribute("fill")
    second = driver.find_element(By.CSS_SELECTOR, f"#map rect.tile[data-tile='{second_tile}']")
    driver.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", second)
    until(lambda d: second_tile in text("#selection"), "the second tile is selected")
    driver.find_element(By.ID, "mark-invalid").click()
    until(lambda d: text("#validated").startswith("2 of"), "the counts follow")
    report["validated"] = text("#validated")
    report["precision"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#stats-rows .precision")]
    driver.save_screenshot(f"{out}/map-review.png")

    # The queue: the least certain tile first, locked; marked valid with the button.
    driver.find_element(By.ID, "queue").click()
    until(lambda d: "Locked to you" in text("#queue-state"), "the queue hands out a tile")
    report["queued_tile"] = driver.find_element(By.CSS_SELECTOR, "#selection h3").text
    driver.find_element(By.ID, "mark-valid").click()
    until(lambda d: text("#validated").startswith("3 of"), "the queued tile is marked")
    report["after_queue"] = text("#validated")
    driver.save_screenshot(f"{out}/map-queue.png")

    # The detection set: a shape (a polygon from feedback) clicked and marked invalid.
    driver.get(f"{gateway}/review/map.html?set={box_set}")
    until(lambda d: d.find_element(By.ID, "map").get_attribute("data-ready") == "true", "the detection map is ready")
    shapes = driver.find_elements(By.CSS_SELECTOR, "#map path.feature")
    report["shapes_drawn"] = len(shapes)
    feature_id = shapes[0].get_attribute("data-feature")
    driver.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", shapes[0])
    until(lambda d: "Shape " + feature_id in text("#selection"), "the shape is selected")
    report["shape_class_text"] = text("#selected-class")
    driver.find_element(By.TAG_NAME, "body").send_keys("i")
    until(lambda d: d.find_element(By.CSS_SELECTOR, f"#map path.feature[data-feature='{feature_id}']")
          .get_attribute("stroke").lower() in ("#ffffff", "white"), "the shape turns invalid")
    report["marked_feature"] = feature_id
    until(lambda d: d.find_element(By.ID, "map").get_attribute("data-imagery-loaded") == "true", "imagery loads")
    driver.save_screenshot(f"{out}/map-shapes.png")

    # Clip labelling: the spectrogram and the audio load; a label button labels the clip.
    driver.get(f"{gateway}/review/clips.html?dataset={dataset}")
    until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", "the clip page is ready")
    until(lambda d: d.execute_script("return document.getElementById('spectrogram').naturalWidth") > 0,
          "the spectrogram loads")
    until(lambda d: d.execute_script("return document.getElementById('player').readyState") >= 1,
          "the audio's metadata loads")
    report["audio_seconds"] = driver.execute_script("return document.getElementById('player').duration")
    report["spectrogram_width"] = driver.execute_script("return document.getElementById('spectrogram').naturalWidth")
    report["confidence"] = text("#confidence")
    report["clip_title"] = text("#clip-name")
    report["label_buttons"] = [b.get_attribute("data-label") for b in driver.find_elements(By.CSS_SELECTOR, "button.label")]
    driver.save_screenshot(f"{out}/clip-labelling.png")
    labelled = driver.find_element(By.ID, "clip").get_attribute("data-digest")
    driver.find_element(By.ID, "expertise").send_keys("Expert")
    driver.find_element(By.CSS_SELECTOR, "button.label[data-label='call']").click()
    until(lambda d: "1 labelled here" in text("#progress"), "the label is accepted")
    report["labelled_digest"] = labelled
    until(lambda d: d.find_element(By.ID, "clip").get_attribute("data-digest") != labelled, "the next clip comes")
    until(lambda d: d.execute_script("return document.getElementById('spectrogram').complete"), "its spectrogram loads")
    driver.save_screenshot(f"{out}/clip-labelling-next.png")

    # Runs: the experiment's runs, and the curves of the chosen ones.
    driver.get(f"{gateway}/review/runs.html?experiment={experiment}")
    until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", "the runs page is ready")
    until(lambda d: d.find_element(By.ID, "curves").get_attribute("data-series") == "2", "two curves are drawn")
    report["runs_rows"] = len(driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr"))
    report["legend"] = text("#curve-legend")
    report["painted"] = driver.execute_script(
        "const c = document.getElementById('curves'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) n++; return n;")
    driver.save_screenshot(f"{out}/runs.png")

    # Signed out, from loopback the pages still work as the mesh; the token is gone.
    driver.find_element(By.ID, "sign-out").click()
    until(lambda d: "no token" in text("#who"), "signed out")
    report["session_token_after"] = driver.execute_script("return sessionStorage.getItem('shoal-token')")
finally:
    driver.quit()

print(json.dumps(report))
