"""End to end in a real browser: Playwright drives Debian's Chromium (headless) through every tab of `python app.py`.

The app runs on the shipped checkpoints, as a visitor would see it. A failing test saves a screenshot of the
page to tests/screenshots/ (ignored by git). Needs the `playwright` package and a Chromium binary
(`.ci/run` installs Debian's `chromium` when it is missing; Playwright's own browser download is not used).
"""
from __future__ import annotations

import os
import shutil

import pytest

from conftest import ROOT, running_app

playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no Chromium binary (install Debian's `chromium` package)", allow_module_level=True)
SHOTS = ROOT / "tests" / "screenshots"


@pytest.fixture(scope="module")
def app_url():
    with running_app() as url:  # the shipped checkpoints, as a visitor sees the app
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        # the machine's network is closed: without these flags Chromium keeps trying to reach Google's hosts
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                                    "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def open_app(pg, url: str) -> None:
    """Load the app and wait until its tabs are drawn. Not "networkidle": the app keeps a heartbeat connection
    open (Gradio's way of noticing a closed page, so the Train tab can free a closed page's run)."""
    pg.goto(url, wait_until="load")
    pg.get_by_role("tab", name="Text generation").wait_for()


@pytest.fixture
def page(browser, app_url, request):
    pg = browser.new_page(viewport={"width": 1400, "height": 1200})
    pg.set_default_timeout(60_000)
    open_app(pg, app_url)
    yield pg
    report = getattr(request.node, "rep_call", None)  # set by conftest's pytest_runtest_makereport
    if report is not None and report.failed:
        SHOTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
    pg.close()


def test_text_generation_streams_text_into_the_page(page):
    page.get_by_role("tab", name="Text generation").click()
    page.get_by_label("Prompt").fill("ROMEO:")
    page.get_by_role("button", name="Generate").click()
    output = page.locator("pre.generated").first
    page.wait_for_function("() => document.querySelector('pre.generated').innerText.length > 60")
    first = len(output.inner_text())
    page.wait_for_function("() => document.querySelector('pre.generated').innerText.length > 400")
    assert len(output.inner_text()) > first  # it grew while we watched: streaming
    assert output.inner_text().startswith("ROMEO:")
    page.get_by_text("chars/s").first.wait_for()


def test_translation_shows_french_an_n_best_list_and_the_attention_plot(page):
    page.get_by_role("tab", name="Translation").click()
    page.get_by_label("English").fill("Where is the nearest train station?")
    page.get_by_role("button", name="Translate", exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('gare'))")
    page.get_by_text("beam search, beam 5").wait_for()
    # the attention map: a Plotly figure drawn in the page; hovering a cell names the two subwords and the weight
    heat_map = page.locator("[data-testid=plotly] .nsewdrag").first
    heat_map.wait_for()
    box = heat_map.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.1)
    page.wait_for_function("() => /French ← English: .+ ← .+weight [01][.][0-9]{2}/"
                           ".test(document.querySelector('.hoverlayer').textContent)")


def test_a_pasted_paragraph_with_an_emoji_is_translated_sentence_by_sentence_and_fits_a_phone(browser, app_url):
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.set_default_timeout(60_000)
    try:
        open_app(phone, app_url)
        phone.get_by_role("tab", name="Translation").click()
        phone.get_by_label("English").fill("I forgot my keys at home. Can you help me, please? Thank you 🙏")
        phone.get_by_role("button", name="Translate", exact=True).click()
        phone.wait_for_function("() => [...document.querySelectorAll('textarea')]"
                                ".some(t => t.value.includes('clés') && t.value.endsWith('🙏'))")
        phone.get_by_text("3 sentences").wait_for()
        phone.locator("[data-testid=plotly] .updatemenu-header").first.wait_for()  # the sentence menu
        plot = phone.locator("[data-testid=plotly]").first.bounding_box()
        menu = phone.locator("[data-testid=plotly] .updatemenu-header").first.bounding_box()
        assert plot["x"] >= 0 and plot["x"] + plot["width"] <= 390 and plot["height"] <= 600
        assert menu["x"] + menu["width"] <= plot["x"] + plot["width"]
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # nothing pushes the page sideways
        # the menu switches the map to another sentence in the page, without asking the server
        phone.locator("[data-testid=plotly] .updatemenu-header").first.click()
        phone.locator("[data-testid=plotly] .updatemenu-dropdown-button").nth(2).click()
        phone.wait_for_function("() => [...document.querySelectorAll('[data-testid=plotly] .ytick text')]"
                                ".some(t => t.textContent.includes('Merci'))")
    finally:
        phone.close()


def test_translation_of_an_empty_input_shows_the_message(page):
    page.get_by_role("tab", name="Translation").click()
    page.get_by_role("button", name="Translate", exact=True).click()
    page.get_by_text("Type an English sentence").first.wait_for()


def test_image_captioning_takes_an_upload_and_answers(page):
    page.get_by_role("tab", name="Image captioning").click()
    page.locator("input[type=file]").first.set_input_files(str(ROOT / "demos" / "assets" / "examples" / "cat.jpg"))
    page.get_by_role("button", name="Caption").click()
    if (ROOT / "checkpoints" / "caption-flickr8k" / "config.json").exists():
        page.wait_for_function("() => [...document.querySelectorAll('textarea')].some(t => t.value.split(' ').length >= 3)")
        page.get_by_text("attention grid").wait_for()
    else:  # no shipped captioner yet: the tab must say so rather than fail
        page.get_by_text("no captioning model").first.wait_for()


def test_inside_the_rnn_draws_the_gate_and_gradient_views(page):
    page.get_by_role("tab", name="Inside the RNN").click()
    page.get_by_role("tab", name="Gates").click()
    page.get_by_role("button", name="Show gates").click()
    page.get_by_text("forget").first.wait_for()
    page.get_by_role("tab", name="Vanishing gradient").click()
    page.get_by_role("button", name="Measure the gradient flow (all three models)").click()
    page.get_by_text("Vanilla RNN").first.wait_for()


def test_inside_the_rnn_steps_a_cell_and_finds_the_units_of_a_selected_span(page):
    page.get_by_role("tab", name="Inside the RNN").click()
    page.get_by_role("tab", name="A cell's arithmetic").click()
    page.get_by_role("button", name="Show the arithmetic").click()
    page.get_by_text("reading character 60").wait_for()
    page.get_by_role("button", name="next character ▶").click()
    page.get_by_text("reading character 61").wait_for()  # one step on, new numbers
    page.get_by_text("f_t = σ(sum)").first.wait_for()
    # the views that read all three classic models hide the Model control, which would do nothing there
    layer_shown = ("() => [...document.querySelectorAll('[data-testid=block-info]')]"
                   ".some(e => e.innerText.trim() === 'Layer' && e.offsetParent !== null)")
    page.get_by_role("tab", name="What each character remembers").click()
    page.wait_for_function(f"() => !({layer_shown})()")
    page.get_by_role("tab", name="Find the pattern").click()
    page.wait_for_function(layer_shown)
    box = page.get_by_label("Text to read")
    start = box.input_value().index("PETRUCHIO")
    # select a speaker's name in the text box, as a learner would with the mouse
    box.evaluate("(el, s) => { el.focus(); el.setSelectionRange(s, s + 9); el.dispatchEvent(new Event('select')); }",
                 start)
    page.wait_for_function(f"() => [...document.querySelectorAll('input[type=number]')].some(i => i.value === '{start}')")
    page.get_by_role("button", name="Find the units and where else they fire").click()
    page.get_by_text("Span “PETRUCHIO”").wait_for()
    assert page.get_by_text("strength").count() == 6


def test_train_tab_opens_from_a_shared_link_trains_live_and_downloads_the_model(page, app_url, tmp_path):
    # a shared setup: the link fills the form and opens the tab
    open_app(page, app_url + "?corpus=Names&cell=lstm&layers=1&hidden=64&seq_len=32&lr=0.003&seconds=10")
    page.get_by_role("button", name="Train", exact=True).wait_for()
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_function("() => /step [0-9,]+/.test(document.body.innerText)")
    first_step = int(page.evaluate("() => document.body.innerText.match(/step ([0-9,]+) ·/)[1].replace(',', '')"))
    page.locator("#live-samples pre.generated").first.wait_for()  # a sample from the first evaluation
    page.wait_for_function(f"() => {{ const m = document.body.innerText.match(/step ([0-9,]+) ·/);"
                           f" return m && +m[1].replace(',', '') > {first_step}; }}")  # the run goes on while we watch
    # the loss plot is drawn in the page
    page.wait_for_function("() => [...document.querySelectorAll('.vega-embed canvas, .vega-embed svg')]"
                           ".some(e => e.offsetParent !== null)")
    page.get_by_text("finished after").wait_for(timeout=90_000)
    assert "corpus=Names" in page.url  # the address carries the setup
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the model (.zip)").click()
    path = tmp_path / "model.zip"
    download.value.save_as(path)
    import zipfile

    names = set(zipfile.ZipFile(path).namelist())
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= names and "input.txt" not in names


def test_closing_the_page_mid_run_ends_the_training_process(browser, app_url):
    import subprocess
    import time

    def children():
        found = subprocess.run(["pgrep", "-af", "seqmodels.live"], capture_output=True, text=True).stdout
        return [line for line in found.splitlines() if "-m seqmodels.live" in line]

    pg = browser.new_page()
    open_app(pg, app_url + "?corpus=Names&cell=gru&layers=1&hidden=32&seq_len=32&lr=0.003&seconds=120")
    pg.get_by_role("button", name="Train", exact=True).click()
    deadline = time.time() + 60
    while not children() and time.time() < deadline:
        time.sleep(0.2)
    assert children(), "the run never started"
    pg.close()
    deadline = time.time() + 30
    while children() and time.time() < deadline:
        time.sleep(0.2)
    assert not children(), "the training process outlived the page that started it"
