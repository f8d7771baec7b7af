"""Sample a server process with py-spy and summarize where its time goes.

`py-spy record --format raw` writes collapsed stacks (`frame;frame;... count`);
`summarize` turns them into the share of samples in which each function is on the
stack (inclusive) and at the top of it (self), largest first.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from bench.services import PYTHON

_FRAME = re.compile(r"^(?P<function>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def py_spy_binary() -> str | None:
    beside_python = Path(PYTHON).parent / "py-spy"
    return str(beside_python) if beside_python.exists() else shutil.which("py-spy")


def start_py_spy(pid: int, duration_s: float, output: Path) -> subprocess.Popen[bytes] | None:
    """Start sampling `pid` for `duration_s` seconds (idle frames left out); None when py-spy is missing."""
    binary = py_spy_binary()
    if binary is None:
        return None
    return subprocess.Popen(
        [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(duration_s))), "--rate", "200",
         "--format", "raw", "--output", str(output), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['function']} ({path})"


def summarize(raw_path: Path, top: int = 40) -> dict[str, Any]:
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    total = 0
    for line in raw_path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(frame) for frame in stack.split(";")]
        total += count
        for name in set(frames):
            inclusive[name] += count
        exclusive[frames[-1]] += count
    if total == 0:
        return {"samples": 0, "inclusive": [], "self": []}
    return {
        "samples": total,
        "inclusive": [(name, round(count / total, 3)) for name, count in inclusive.most_common(top)],
        "self": [(name, round(count / total, 3)) for name, count in exclusive.most_common(top)],
    }
