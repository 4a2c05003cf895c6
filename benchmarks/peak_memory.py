"""Peak resident memory of the measuring process itself, for every benchmark here."""

from __future__ import annotations

import resource
import threading
import time
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


class RssSampler:
    """This process's resident memory every `interval` seconds, with wall-clock times, so that
    the peak of one phase (a Dagster step, between its start and end events) can be told from
    the peak of the whole process (which includes Dagster's own work around the step)."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        status = Path("/proc/self/status")
        while not self._stop.wait(self.interval):
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.samples.append((time.time(), int(line.split()[1]) / 1024))

    def peak_between(self, start: float, end: float) -> float | None:
        inside = [rss for at, rss in self.samples if start <= at <= end]
        return max(inside) if inside else None
