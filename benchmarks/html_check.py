"""Open ``report.html`` in headless Chromium: console errors, images that did not load, and a screenshot.

The page records ``data-images="<loaded>/<total>"`` on ``<body>`` once every image has settled (its own load
handler); Chromium's ``--dump-dom`` returns the DOM after that, and ``--enable-logging`` puts every console
message (``INFO:CONSOLE``) on stderr. The page logs nothing itself, so any console line is a problem.

    python benchmarks/html_check.py results/report.html --screenshot /tmp/report.png
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--enable-logging=stderr", "--log-level=0", "--virtual-time-budget=8000"]


def chromium() -> str | None:
    """The Chromium executable on PATH, or None."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def check_page(page: Path, screenshot: Path | None = None, width: int = 1280, height: int = 3200,
               timeout: float = 120) -> dict:
    """Load ``page`` headless; returns {"images": (loaded, total), "img_tags": n, "console": [lines],
    "screenshot": path or None}. Raises RuntimeError without Chromium or when the page never reports."""
    exe = chromium()
    if exe is None:
        raise RuntimeError("no chromium on PATH (apt-get install -y chromium)")
    url = Path(page).resolve().as_uri()
    proc = subprocess.run([exe, *FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=timeout)
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    found = re.search(r'<body[^>]*data-images="(\d+)/(\d+)"', proc.stdout)
    if found is None:
        raise RuntimeError(f"the page never reported its images (chromium exit {proc.returncode}); "
                           f"console: {console or 'empty'}")
    shot = None
    if screenshot is not None:
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([exe, *FLAGS, f"--window-size={width},{height}", f"--screenshot={Path(screenshot).resolve()}",
                        url], capture_output=True, text=True, timeout=timeout)
        shot = Path(screenshot) if Path(screenshot).is_file() else None
    return {"images": (int(found.group(1)), int(found.group(2))), "img_tags": proc.stdout.count("<img "),
            "console": console, "screenshot": shot}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--screenshot", type=Path, default=None)
    parser.add_argument("--height", type=int, default=3200)
    args = parser.parse_args()
    res = check_page(args.page, args.screenshot, height=args.height)
    loaded, total = res["images"]
    print(f"images loaded: {loaded}/{total} ({res['img_tags']} <img> tags); console lines: {len(res['console'])}")
    for line in res["console"]:
        print(f"  {line}")
    if res["screenshot"]:
        print(f"screenshot: {res['screenshot']}")
    return 0 if loaded == total == res["img_tags"] and not res["console"] else 1


if __name__ == "__main__":
    sys.exit(main())
