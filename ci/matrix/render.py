"""The report as a person sees it: headless Chromium loads it, takes a
screenshot and dumps the DOM; check() says what is wrong with them (no
grid, a missing cell, no plot, a blank or unpainted page)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional

WINDOW = (1400, 2600)  # wide enough for the grid, tall enough for grid and plots
PASSED_RGB = (0xbf, 0xe5, 0xc8)  # td.passed in report.CSS
# matplotlib's tab10, the plot lines' colours (grey left out: text is grey too)
LINE_RGBS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
             (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207)]


def chromium() -> Optional[str]:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _chromium(html: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("no chromium (Debian: apt-get install chromium; `make matrix-deps`)")
    with tempfile.TemporaryDirectory(prefix="nnofi-chromium-") as profile:
        # --no-sandbox: Chromium's sandbox refuses to run as root (CI is root)
        argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                "--disable-extensions", f"--user-data-dir={profile}", *args, Path(html).resolve().as_uri()]
        # not under the sanitizer make test-asan preloads for nnofi
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def screenshot(html: Path, png: Path, window=WINDOW) -> None:
    r = _chromium(html, f"--screenshot={Path(png).resolve()}", f"--window-size={window[0]},{window[1]}")
    if not Path(png).is_file():
        raise RuntimeError(f"chromium made no screenshot (exit {r.returncode}): {r.stderr.strip()[-600:]}")


def dom(html: Path) -> str:
    r = _chromium(html, "--dump-dom")
    if r.returncode != 0 or "<html" not in r.stdout:
        raise RuntimeError(f"chromium dumped no DOM (exit {r.returncode}): {r.stderr.strip()[-600:]}")
    return r.stdout


def _near(pixels, rgb, tolerance: int = 10):
    import numpy as np
    return (np.abs(pixels.astype(int) - np.array(rgb)).max(axis=-1) <= tolerance).sum()


def check(dom_text: str, png: Path, cells: int, passed: bool = True, plotted: bool = True) -> List[str]:
    """What is wrong with a rendered report of `cells` cells, some passed
    and some data measured if so said (none: [])."""
    import numpy as np
    from PIL import Image

    problems = []
    if 'id="grid"' not in dom_text:
        problems.append("no grid table (#grid) in the DOM")
    found = len(re.findall(r'<td class="[^"]*\bcell\b', dom_text))
    if found != cells:
        problems.append(f"the grid has {found} cells, the results {cells}")
    if plotted and not re.search(r'<img class="plot"[^>]*src="data:image/png;base64,', dom_text):
        problems.append("no plot image (img.plot with a PNG data URI) in the DOM")
    pixels = np.asarray(Image.open(png).convert("RGB"))
    if pixels.std() < 10 or (pixels.min(axis=-1) < 200).mean() < 0.01:
        problems.append(f"the screenshot is (nearly) blank: pixel std {pixels.std():.1f}")
    if passed and _near(pixels, PASSED_RGB, 3) < 200:
        problems.append("no passed cell painted in the screenshot (its green is missing)")
    if plotted and sum(_near(pixels, rgb) for rgb in LINE_RGBS) < 200:
        problems.append("no plot line painted in the screenshot (matplotlib's colours are missing)")
    return problems
