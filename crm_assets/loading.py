"""Python's cyclic garbage collector, paused while the code location loads.

Loading the definitions creates some 400,000 objects (Dagster, dbt-core's generated dataclasses,
our asset graph), and nearly all of them live as long as the process. The collector, run by
allocation counts, walks the whole growing heap again and again while they are created, and
once more when the process exits: about 1.2 s of the 2.6 s of CPU a fresh process spent loading
this project and exiting. Paused during the load, and then told that what exists is permanent
(`gc.freeze`), it skips all that; later collections only look at objects created after the load.
The few thousand cyclic garbage objects the load leaves stay allocated for the process's life.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block without the cyclic collector; when it succeeds, freeze every object that
    exists then out of later collections. The collector is enabled again afterwards unless it
    was already off, whether the block succeeded or not."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()
