"""Benchmark: rows/s decoding masks from a large CheXmask CSV, and peak memory.

Builds a synthetic table by repeating the published ChestX-Ray8 rows (~19 kB each)
under new ids, in a temporary folder (deleted afterwards), then decodes the three
masks of every row twice in this process:

- ``streamed``: :func:`chexmask.dataset.iter_records`, ``chunksize`` rows at a time;
- ``naive``: ``pandas.read_csv`` of the whole file, then the same per-row decoding.

The streamed pass runs first, so memory it freed cannot hide the naive pass's
growth. Peak memory is the resident set (sampled every 5 ms, above the level at
the start of the pass); with ``--tracemalloc`` also tracemalloc's peak (Python and
NumPy allocations, not the Arrow buffers where pandas keeps text columns), which
roughly halves the decoding speed, so rows/s are then not comparable with a run
without it.

Usage: ``python benchmarks/bench_masks.py [--rows 100000] [--chunksize 1000] [--tracemalloc]``
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import pandas as pd

from chexmask.dataset import iter_records, row_to_record

DEFAULT_SHARED = Path(os.environ.get("CHEXMASK_SHARED", Path(__file__).resolve().parents[2] / "shared"))
_PAGE = os.sysconf("SC_PAGE_SIZE")


def make_table(src: Path, dst: Path, rows: int) -> int:
    """Write ``rows`` rows repeating ``src``'s, each under a new unique id; return bytes."""
    header, *lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    with open(dst, "w", encoding="utf-8", newline="") as out:
        out.write(header)
        for i in range(rows):
            out.write(f"{i:07d}_{lines[i % len(lines)]}")
    return dst.stat().st_size


class PeakRSS:
    """Peak resident memory above the starting level, sampled in a thread."""

    def __enter__(self):
        gc.collect()
        try:  # give freed heap back to the OS so each pass starts from its own floor
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.delta = self.peak - self.start


def _decode_streamed(path: Path, chunksize: int) -> int:
    n = 0
    for _ in iter_records(path, landmarks=False, chunksize=chunksize):
        n += 1
    return n


def _decode_naive(path: Path) -> int:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    ident = frame.columns[0]
    n = 0
    for number, row in enumerate(frame.drop(columns=[ident]).to_dict("records"), 1):
        row_to_record(frame[ident].iat[number - 1], row, landmarks=False, source=f"row {number}")
        n += 1
    return n


def run(name: str, trace: bool, fn, *args) -> dict:
    if trace:
        tracemalloc.start()
    with PeakRSS() as rss:
        start = time.perf_counter()
        rows = fn(*args)
        seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] if trace else 0
    tracemalloc.stop()
    result = {"name": name, "rows": rows, "seconds": seconds, "rows_s": rows / seconds,
              "rss_mb": rss.delta / 2**20, "traced_mb": traced / 2**20}
    print(f"{name:>9}: {rows} rows in {seconds:7.1f} s = {result['rows_s']:6.1f} rows/s; "
          f"peak RSS +{result['rss_mb']:7.1f} MB"
          + (f", tracemalloc peak {result['traced_mb']:7.1f} MB" if trace else ""),
          flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunksize", type=int, default=1000)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--tracemalloc", action="store_true", help="also report tracemalloc peaks (slower)")
    args = parser.parse_args()
    src = args.shared / "data" / "chexmask-format" / "ChestX-Ray8.csv"
    with tempfile.TemporaryDirectory(prefix="bench_masks_") as tmp:
        path = Path(tmp) / "synthetic.csv"
        size = make_table(src, path, args.rows)
        print(f"synthetic table: {args.rows} rows, {size / 2**20:.0f} MB, 3 masks of 1024x1024 per row",
              flush=True)
        streamed = run("streamed", args.tracemalloc, _decode_streamed, path, args.chunksize)
        naive = run("naive", args.tracemalloc, _decode_naive, path)
    print(f"streamed / naive: {streamed['rows_s'] / naive['rows_s']:.2f}x rows/s, "
          f"peak RSS {naive['rss_mb'] / max(streamed['rss_mb'], 1e-9):.1f}x smaller"
          + (f", tracemalloc peak {naive['traced_mb'] / max(streamed['traced_mb'], 1e-9):.1f}x smaller"
             if args.tracemalloc else ""))


if __name__ == "__main__":
    main()
