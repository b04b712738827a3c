"""The admin panel's screenshots in README.md, taken from a real `ferry demo --serve`.

    uv run python scripts/panel_screenshots.py              # docs/images/panel-*.png
    uv run python scripts/panel_screenshots.py --out DIR    # somewhere else

Starts `ferry demo --serve` on free ports (as tests/test_demo_serve.py does), signs in to the
request network's panel with the login it prints and saves the dashboard and the batches of
the demo's cycle (Batches, its Acknowledged tab) at 1280×800. The browser is the browser tests' own
(tests/panel/browser_support.py): Debian's Chromium through Playwright, no browser download,
and the same watch for console errors (a refused inline script or style), failed requests and
error replies: a page that is not clean fails the script (exit 1) instead of ending up in the
README.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.e2e_support import wait_until  # noqa: E402
from tests.panel.browser_support import CHROMIUM, launch_chromium, sign_in, watch  # noqa: E402
from tests.test_demo_serve import start  # noqa: E402

VIEWPORT = {"width": 1280, "height": 800}
SHOTS = {
    "panel-dashboard.png": "/admin/dashboard",
    # sent and received per stream, and the batches the peer has acknowledged
    "panel-batches.png": "/admin/batches?tab=acked",
}


def take(out: Path, found: dict[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    base = found["request"].removesuffix("/admin")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        seen = watch(page)
        sign_in(page, base, found["username"], found["password"])
        for name, path in SHOTS.items():
            reply = page.goto(base + path, wait_until="networkidle")
            if reply is None or reply.status != 200:
                raise SystemExit(f"{path}: {reply.status if reply else 'no reply'}")
            page.screenshot(path=str(out / name))
            print(f"wrote {out / name}")
        seen.assert_clean()
        context.close()
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or FERRY_TEST_CHROMIUM)")
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ferry-shots-") as work:
        demo = start("--request-port", "0", "--response-port", "0", workdir=Path(work) / "demo")
        try:
            found = wait_until(
                demo.ready, timeout=180, what="ferry demo --serve", details=lambda: demo.output
            )
            take(args.out, found)
        finally:
            if demo.process.poll() is None:
                demo.process.send_signal(signal.SIGINT)
            code = demo.process.wait(timeout=60)
    if code != 0:
        print(f"ferry demo --serve exited {code}:\n{demo.output}")
    return code


if __name__ == "__main__":
    sys.exit(main())
