"""Writing one benchmark's section of benchmarks/RESULTS.md, leaving the other sections as they are."""

from __future__ import annotations

import os
import platform
from pathlib import Path

FILE_HEADER = "# shiftkit benchmark results"


def write_section(path: Path, title: str, section: str) -> None:
    """Replace (or append) the section headed `title`; every other section is kept as it is on disk now.

    Args:
        path: the results file (created with `FILE_HEADER` if absent).
        title: the section's heading line, e.g. "## MMD permutation test (bench_mmd.py)".
        section: the whole section text, starting with `title`.
    """
    path = Path(path)
    text = path.read_text() if path.exists() else FILE_HEADER + "\n"  # re-read right before writing
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == title), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        before = "\n".join(lines[:start]).rstrip("\n")
        after = "\n".join(lines[end:])
        new = (before + "\n\n" if before else "") + section.rstrip("\n") + ("\n\n" + after + "\n" if after else "\n")
    path.write_text(new)


def machine_info() -> dict[str, str]:
    """The machine a benchmark ran on: cores, CPU model, memory, OS and Python."""
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as fh:
            kib = int(next(line.split()[1] for line in fh if line.startswith("MemTotal")))
        mem = f"{kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "mem": mem,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}
