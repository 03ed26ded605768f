"""Summarise py-spy's collapsed stacks (`bench/load.py` `profiled`): the share of samples
each function was on the stack for (inclusive) and at the top of (self), the idle worker
threads left out. `python -m bench.profile_summary FILE [--top N] [--under FUNCTION]`."""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

#: Frames of a worker thread waiting for work, not serving a request.
IDLE = ("wait (threading.py", "select (selectors.py", "_worker (concurrent/futures/thread.py")
LINE = re.compile(r":\d+\)$")


def _frame(raw: str) -> str:
    """`function (path/to/file.py:123)` → `function (file.py)`."""
    name, _, where = raw.partition(" (")
    return f"{name} ({LINE.sub('', '(' + where).rsplit('/', 1)[-1].lstrip('(')})"


def summarise(path: Path, top: int = 30, under: str | None = None) -> str:
    """The table of the busiest functions in one profile."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        if under is not None:
            hits = [i for i, f in enumerate(frames) if f.startswith(under + " ")]
            if not hits:
                continue
            frames = frames[hits[0] :]
        elif any(frames[-1].startswith(idle) for idle in IDLE):
            continue
        samples = int(count)
        total += samples
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    if not total:
        return f"{path.name}: no busy samples"
    lines = [f"{path.name}: {total} busy samples" + (f" under {under}" if under else "")]
    lines.append(f"{'inclusive':>9}  {'self':>6}  function")
    for frame, samples in inclusive.most_common(top):
        lines.append(f"{samples / total:>8.1%}  {own[frame] / total:>6.1%}  {frame}")
    lines.append("")
    lines.append("top self:")
    for frame, samples in own.most_common(top // 2):
        lines.append(f"{samples / total:>8.1%}  {frame}")
    return "\n".join(lines)


def main() -> None:
    """Print the summary of each profile given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--under")
    arguments = parser.parse_args()
    for path in arguments.files:
        print(summarise(path, arguments.top, arguments.under))
        print()


if __name__ == "__main__":
    main()
