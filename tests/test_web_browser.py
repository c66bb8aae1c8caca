"""The playground in a real browser (Playwright driving Debian's Chromium): each view is loaded,
typed into and clicked, and the numbers read off the page are checked against the library's.

Skips (with the reason) only when Playwright or a Chromium executable is missing; `make test`
installs Debian's `chromium` first when it can.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict

import pytest
import torch

pytest.importorskip("starlette", reason="the playground needs the web extra")
pytest.importorskip("uvicorn", reason="the playground needs the web extra")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (it is in the dev extra)")

from _web_helpers import LiveServer, make_model_dirs
from chainrule.decoding import GenerationConfig, generate
from chainrule.evaluation.surprisal import sentence_surprisals
from chainrule.models.attention_maps import attention_maps
from chainrule.web import create_app, load_served

pytestmark = pytest.mark.xdist_group("web-browser")  # one server and browser per worker


def chromium_path() -> str | None:
    for p in (os.environ.get("CHAINRULE_CHROMIUM"), shutil.which("chromium"),
              shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _ladder_dir(root):
    from chainrule.evaluation.ladder_config import RungResult

    d = root / "ladder"
    d.mkdir()
    rows = [RungResult("kn5", "ngram", test_ppl=312.25, steps=None, parameters=1000),
            RungResult("gpt", "gpt", test_ppl=287.5, steps=300, parameters=250_000)]
    (d / "results.json").write_text(json.dumps({"results": [asdict(r) for r in rows]}))
    (d / "report.md").write_text("# The model ladder\n")
    return d


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium executable (apt-get install chromium; `make test` tries it)")
    root = tmp_path_factory.mktemp("browser")
    served = {m.name: m for m in load_served(list(make_model_dirs(root).values()))}
    app = create_app(list(served.values()), ladder_dir=_ladder_dir(root))
    with LiveServer(app) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(15_000)
        yield page, url, served
        browser.close()


def _open(page, url, view):
    page.goto(f"{url}/#{view}")
    page.wait_for_selector("body[data-ready='1']")


def test_next_word_bars_are_the_models_probabilities(site):
    page, url, served = site
    _open(page, url, "next-word")
    sm = served["gpt"]
    ids = [sm.model.bos_id, *sm.tokenizer.encode("long live the")]
    p = sm.model.logprobs(torch.tensor([ids]))[0, -1].exp()
    best = sm.tokenizer.decode([int(p.argmax())])
    page.fill("#nw-context", "long live the")
    # the bars follow the typing (debounced): wait until they show this context's best token
    page.wait_for_function("(best) => { const t = document.querySelector("
                           "'[data-model=gpt] .cand .tok'); return t && t.textContent === best; }",
                           arg=best)
    first = page.locator("[data-model=gpt] .cand").first
    assert float(first.locator(".p").inner_text()) == pytest.approx(float(p.max()), abs=1e-4)
    ent = float(page.locator("[data-model=gpt] .entropy").inner_text())
    assert ent == pytest.approx(float(torch.special.entr(p).sum()) / math.log(2), abs=1e-3)
    # top-k = 2 keeps two tokens, renormalised
    page.fill("#nw-top-k", "2")
    page.wait_for_function("document.querySelectorAll('[data-model=kn3] .cand').length === 2")
    assert page.locator("[data-model=kn3] .kept").inner_text() == "2"
    ps = [float(x) for x in page.locator("[data-model=kn3] .cand .p").all_inner_texts()]
    assert sum(ps) == pytest.approx(1.0, abs=2e-4)
    # clicking a token appends it to the context
    first = page.locator("[data-model=gpt] .cand").first
    token = first.locator(".tok").inner_text()
    first.click()
    assert page.input_value("#nw-context") == f"long live the {token}"
    page.fill("#nw-top-k", "0")


def test_surprisal_totals_and_hover_match_the_evaluator(site):
    page, url, served = site
    _open(page, url, "surprisal")
    text = "the king is dead\nthe cat sat on the mat"
    page.fill("#sp-text", text)
    page.click("#sp-run")
    page.wait_for_selector("[data-model=kn3] .total-bits")
    for name in ("gpt", "kn3", "masked"):
        sm = served[name]
        ref = sentence_surprisals(sm.model, sm.tokenizer, text.splitlines())
        bits = sum(s.total_bits for s in ref)
        panel = page.locator(f"#sp-results [data-model={name}]")
        assert float(panel.locator(".total-bits").inner_text()) == pytest.approx(bits, abs=0.01)
        words = sum(len(s.words) for s in ref)
        assert float(panel.locator(".bits-per-word").inner_text()) == pytest.approx(
            bits / words, abs=1e-3)
    # focusing a token shows its probability and rank, said to be the gpt's
    tok = page.locator("#sp-results [data-model=gpt] .tok").nth(1)
    tok.focus()
    detail = page.locator("#sp-results [data-model=gpt] .detail").inner_text()
    ref = sentence_surprisals(served["gpt"].model, served["gpt"].tokenizer, ["the king is dead"])
    king = ref[0].tokens[1]
    assert detail.startswith("gpt: token king") and "rank" in detail
    assert f"{2 ** -king.surprisal_bits:.4f}" in detail
    assert "no ranks" in page.locator("#sp-results [data-model=masked]").inner_text()
    page.check("input[value=bits]")
    assert page.locator("#sp-results [data-model=gpt] .tok.b0").count() == 0


def test_attention_grid_and_zoom_show_the_weights(site):
    page, url, served = site
    _open(page, url, "attention")
    assert "no attention" in page.locator("#at-none").inner_text()
    page.fill("#at-text", "the king is dead")
    page.click("#at-run")
    page.wait_for_selector("canvas.mini")
    assert page.locator("canvas.mini").count() == 4  # 2 layers x 2 heads
    page.locator("canvas.mini[data-layer='1'][data-head='0']").click()
    assert "layer 2, head 1" in page.inner_text("#at-zoom-title")
    sm = served["gpt"]
    ids = [sm.model.bos_id, *sm.tokenizer.encode("the king is dead"), sm.model.eos_id]
    w = attention_maps(sm.model, ids)[1, 0]
    cell = page.locator("#at-zoom td[data-i='3'][data-j='1']").inner_text()
    assert float(cell) == pytest.approx(float(w[3, 1]), abs=0.006)
    # keyboard: Enter on a focused head opens it
    page.locator("canvas.mini[data-layer='0'][data-head='1']").focus()
    page.keyboard.press("Enter")
    assert "layer 1, head 2" in page.inner_text("#at-zoom-title")


def test_bpe_steps_through_the_lectures_merges(site):
    page, url, _ = site
    _open(page, url, "bpe")
    page.click("#bpe-run")
    page.wait_for_selector("#bpe-stepview .merge .count")
    assert page.inner_text("#bpe-stepview .merge").startswith("Merge 1: e + r → er")
    assert page.inner_text("#bpe-stepview .count") == "9"
    for _ in range(6):
        page.click("#bpe-next")
    assert page.inner_text("#bpe-step-out") == "7 / 8"
    assert "new + er_ → newer_" in page.inner_text("#bpe-stepview .merge")
    page.fill("#bpe-word", "lower")
    page.click("#bpe-split")
    page.wait_for_selector("#bpe-split-result .final")
    assert page.locator("#bpe-split-result .final .sym").all_inner_texts() == ["low", "er_"]
    # a corpus file is read in the page and learned from
    page.set_input_files("#bpe-file", files=[{"name": "c.txt", "mimeType": "text/plain",
                                              "buffer": b"aa aa aa ab ab"}])
    page.wait_for_function("document.querySelector('#bpe-step-out').textContent === '1 / 4'")
    assert page.inner_text("#bpe-stepview .merge").startswith("Merge 1: a + a → aa")


def test_generate_streams_four_strategies_with_their_seed(site):
    page, url, served = site
    _open(page, url, "generate")
    page.fill("#gen-prompt", "the king")
    page.fill("#gen-max", "6")
    page.fill("#gen-seed", "11")
    page.click("#gen-run")
    page.wait_for_function("document.querySelectorAll('#gen-results .logprob').length === 8")
    for name in ("gpt", "kn3"):
        sm = served[name]
        for col, cfg in (("greedy", GenerationConfig(strategy="greedy", max_new_tokens=6)),
                         ("sample", GenerationConfig(max_new_tokens=6, seed=11))):
            [[ref]] = generate(sm.model, ["the king"], cfg, tokenizer=sm.tokenizer)
            box = page.locator(f"#gen-results [data-model={name}] [data-column={col}]")
            assert box.locator(".output").text_content() == ref.text
            assert float(box.locator(".logprob").inner_text()) == pytest.approx(ref.logprob,
                                                                                abs=1e-3)
    assert "seed 11" in page.inner_text("#gen-results [data-model=gpt] [data-column=sample] h4")
    assert "masked" in page.inner_text("#gen-results")  # the masked model says why not


def test_ladder_keyboard_and_phone_viewport(site):
    page, url, _ = site
    _open(page, url, "ladder")
    page.wait_for_selector("table.ladder")
    row = page.locator("table.ladder tr[data-model=kn5]").inner_text()
    assert "312.2" in row or "312.3" in row
    # keyboard: the tabs move with the arrow keys
    page.focus("#tab-ladder")
    page.keyboard.press("Home")
    assert page.locator("#view-next-word").is_visible()
    page.keyboard.press("ArrowRight")
    assert page.locator("#view-surprisal").is_visible()
    # an over-long text gets the server's sentence on the page, not a stack trace
    page.fill("#sp-text", "word " * 30_000)
    page.click("#sp-run")
    page.wait_for_selector("#view-surprisal .error:not(:empty)")
    assert "at most" in page.inner_text("#view-surprisal .error")
    # a phone-sized screen: nothing runs off the side
    page.set_viewport_size({"width": 390, "height": 844})
    for view in ("next-word", "surprisal", "bpe", "generate"):
        _open(page, url, view)
        page.wait_for_timeout(150)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 392, f"{view} is {width}px wide on a 390px screen"
    page.set_viewport_size({"width": 1280, "height": 800})
