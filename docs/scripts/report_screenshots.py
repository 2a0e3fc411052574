"""Screenshots of run reports for docs/reading_the_report.md, taken with headless Chromium.

    sudo apt-get install chromium                     # Debian's package; any Chromium or Chrome works
    bash scripts/demo.sh                              # makes runs/quick (with its verdict)
    .venv/bin/detopt optimize examples/tracker/config.yaml && .venv/bin/detopt evaluate runs/tracker
    .venv/bin/python docs/scripts/report_screenshots.py runs/quick runs/tracker

Each RUN gets a fresh ``detopt report`` and ``docs/figures/report_<name>.png`` (the top of the page:
the answer, the constraints, the faults and the first figure).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--height", type=int, default=1400, help="pixels of the page captured")
    args = parser.parse_args()
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        print("error: no Chromium found; install it with: sudo apt-get install chromium", file=sys.stderr)
        return 2
    detopt = Path(sys.executable).with_name("detopt")
    for run in args.runs:
        subprocess.run([str(detopt), "report", str(run)], check=True)
        page = (run / "report" / "index.html").resolve()
        out = DOCS / "figures" / f"report_{run.name}.png"
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(
                [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
                 f"--window-size=1100,{args.height}", f"--screenshot={out}", page.as_uri()],
                check=True, capture_output=True,
            )
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
