"""Peak resident memory of the measuring process itself, for every benchmark here."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's own peak RSS (``VmHWM``): Linux's ``ru_maxrss`` keeps the peak of the process
    that started it across ``exec``, so a worker would report the orchestrator's RSS as its floor."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
