"""Save a screenshot of every playground view, at 1280x800 and on a phone (not committed).

    .venv/bin/python bench/playground_screenshots.py chainrule-demo/models/kn5 \
        chainrule-demo/models/gpt --ladder chainrule-demo -o /tmp/playground-shots

Starts the server on a free loopback port, drives Debian's Chromium with Playwright (types,
clicks, waits for the numbers) and writes VIEW-desktop.png and VIEW-phone.png.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

VIEWS = {
    "next-word": ("#nw-context", "to be or not to", None, "[data-model] .cand"),
    "surprisal": ("#sp-text", ("to be or not to be that is the question\nwhat light through "
                               "yonder window breaks"), "#sp-run", ".total-bits"),
    "attention": ("#at-text", "to be or not to be", "#at-run", "canvas.mini"),
    "bpe": (None, None, "#bpe-run", "#bpe-stepview .merge"),
    "generate": ("#gen-prompt", "to be or not", "#gen-run", ".logprob"),
    "ladder": (None, None, None, "#ladder-results > *"),
}


def main() -> int:
    from playwright.sync_api import sync_playwright

    from _web_helpers import LiveServer
    from chainrule.web import create_app, load_served
    from chainrule.web.inspect import check_ladder_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--ladder")
    ap.add_argument("-o", "--output", default="/tmp/playground-shots")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    app = create_app(load_served(args.models), ladder_dir=check_ladder_dir(args.ladder))
    with LiveServer(app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        for device, size in (("desktop", (1280, 800)), ("phone", (390, 844))):
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.set_default_timeout(30_000)
            for view, (field, text, button, ready) in VIEWS.items():
                page.goto(f"{url}/#{view}")
                page.wait_for_selector("body[data-ready='1']")
                if field:
                    page.fill(field, text)
                if view == "generate":
                    page.fill("#gen-seed", "1")
                if button:
                    page.click(button)
                page.wait_for_selector(ready)
                if view == "generate":
                    page.wait_for_timeout(1500)
                if view == "surprisal":
                    page.locator("#sp-results .tok").nth(3).hover()
                page.wait_for_timeout(300)
                path = out / f"{view}-{device}.png"
                page.screenshot(path=str(path), full_page=device == "phone")
                print(path)
            page.close()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
