"""A real browser for the tests: Debian's Chromium, headless, one fresh profile per page load."""

from __future__ import annotations

import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from tests.support import REPO, require_program

# Where screenshots are kept after a run (gitignored); CI can collect them from there.
ARTIFACTS = REPO / ".artifacts"
# No connection of Chromium's own (updates, sync, safe browsing): this machine reaches no outside host.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
         "--hide-scrollbars", "--window-size=1280,900")
# Virtual time the page gets to run its scripts (and the XHRs they start) before it is read.
SCRIPT_TIME_MS = 5000


def _chromium(workdir: Path, url: str, *args: str) -> str:
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)
    result = subprocess.run([require_program("chromium"), *FLAGS, f"--user-data-dir={profile}",
                             f"--virtual-time-budget={SCRIPT_TIME_MS}", *args, url],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"chromium failed on {url} ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def rendered_dom(workdir: Path, url: str) -> str:
    """The page's DOM after its scripts ran, as Chromium serializes it."""
    return _chromium(workdir, url, "--dump-dom")


def screenshot(workdir: Path, url: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _chromium(workdir, url, f"--screenshot={path}")
    if not path.exists() or path.stat().st_size == 0:
        raise AssertionError(f"chromium made no screenshot of {url}")
    return path


class _TableReader(HTMLParser):
    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.depth = 0  # > 0 inside the table
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and (self.depth or ("id", self.table_id) in attrs):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1
        elif self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table_rows(html: str, table_id: str) -> list[list[str]]:
    """The text of each cell, row by row (header row first), of the table with that id."""
    reader = _TableReader(table_id)
    reader.feed(html)
    return [row for row in reader.rows if row]
