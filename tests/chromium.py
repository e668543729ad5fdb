"""How the browser tests and benchmarks/bench_console.py start Debian's chromium: Playwright for Python
drives it by path, since Playwright's own browser download does not work on these machines."""

from __future__ import annotations

from pathlib import Path

# Without the background-networking flags chromium keeps trying hosts this closed network refuses.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
