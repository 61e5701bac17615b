#!/usr/bin/env python3
"""Screenshot a plan's HTML report with headless Chromium, to look at what people will see.

    python scripts/render_report.py RUN_DIR [--out shot.png] [--size 1280,2400] [--rerender]

RUN_DIR holds report.html (``personalab report RUN_DIR`` writes it; ``--rerender`` does that
first). Needs Debian's ``chromium`` on PATH (``apt-get install chromium``); exits 2 without it.
The browser gets no network: the report must render from the file alone.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def screenshot(html: Path, png: Path, size: str = "1280,2400", timeout: float = 120) -> Path:
    """Render ``html`` in headless Chromium into ``png``; raises RuntimeError when it cannot."""
    browser = find_browser()
    if browser is None:
        raise RuntimeError("no chromium on PATH (Debian: apt-get install -y chromium)")
    png = png.resolve()
    with tempfile.TemporaryDirectory() as profile:  # a throwaway profile: no state, no first-run UI
        command = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                   "--no-first-run", "--disable-extensions", "--proxy-server=127.0.0.1:9",  # offline
                   f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={size}",
                   html.resolve().as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 or not png.exists() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a plan's RUN_DIR (with report.html)")
    parser.add_argument("--out", type=Path, help="screenshot PNG (default RUN_DIR/report_screenshot.png)")
    parser.add_argument("--size", default="1280,2400", help="window WIDTH,HEIGHT in pixels (default 1280,2400)")
    parser.add_argument("--rerender", action="store_true", help="write the report again first")
    args = parser.parse_args(argv)
    if args.rerender:
        from personalab.report import write_report

        write_report(args.run_dir)
    html = args.run_dir / "report.html"
    if not html.exists():
        print(f"error: {html} does not exist; run `personalab report {args.run_dir}` first", file=sys.stderr)
        return 2
    try:
        png = screenshot(html, args.out or args.run_dir / "report_screenshot.png", args.size)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
