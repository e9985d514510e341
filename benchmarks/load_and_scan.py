"""Cold vs cached model load, and one scan forward, measured in one run.

    python benchmarks/load_and_scan.py smollm2-135m [gemma3-270m ...]

Cold means an empty dequantized-weights cache (a fresh temporary folder); cached is the second
load from the same folder. Prints seconds and the cold/cached ratio; asserts nothing (timings
depend on the machine), so it lives here and not in tests/.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def main(aliases: list[str]) -> None:
    from icltest.models.loading import ModelSource, load_model
    from icltest.session import Session
    from icltest.schema.spec import ProbeSpec

    for alias in aliases:
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            load_model(ModelSource(alias=alias), Path(cache))
            cold = time.perf_counter() - start
            start = time.perf_counter()
            loaded = load_model(ModelSource(alias=alias), Path(cache))
            cached = time.perf_counter() - start
        session = Session()
        session.add_model(loaded)
        run = session.pattern_run(loaded, ProbeSpec())
        print(f"{alias}: load cold {cold:.1f} s, cached {cached:.1f} s (ratio {cold / cached:.1f}x); "
              f"scan forward 16x101 tokens, 4 scores, every head: {run.seconds:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:] or ["smollm2-135m"])
