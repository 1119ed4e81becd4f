#!/usr/bin/env python3
"""Times Python onnxruntime on the mirror health model, for comparison with
the Rust `ort` bench (ml/benches/predict.rs, which runs this script and prints
both). Same rows as the Rust bench: ml/models/golden.csv tiled to 1800 rows
(100 sites x 18 segments); one intra-op thread.

Prints one JSON object on the last line of stdout:
  single_row_us      median time of a run() with 1 row, microseconds
  batch_1800_ms      median time of a run() with 1800 rows, milliseconds
  batch_1800_row_us  the same per row, microseconds
  per_site_18_ms     100 run()s of 18 rows (one per site), milliseconds
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ML = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int, number: int) -> float:
    """Median over `repeat` rounds of the mean seconds per call over `number` calls."""
    rounds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - t0) / number)
    return statistics.median(rounds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=ML / "models/mirror_health.onnx")
    ap.add_argument("--golden", type=Path, default=ML / "models/golden.csv")
    args = ap.parse_args()
    golden = np.loadtxt(args.golden, delimiter=",", skiprows=1, dtype=np.float32)
    rows = golden[:, :20]
    batch = np.ascontiguousarray(np.resize(rows, (1800, 20)))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(args.model), so, providers=["CPUExecutionProvider"])
    one = np.ascontiguousarray(batch[:1])
    sites = [np.ascontiguousarray(batch[i * 18 : (i + 1) * 18]) for i in range(100)]

    def per_site():
        for s in sites:
            sess.run(None, {"features": s})

    for _ in range(200):
        sess.run(None, {"features": one})
    single = timed(lambda: sess.run(None, {"features": one}), repeat=7, number=2000)
    full = timed(lambda: sess.run(None, {"features": batch}), repeat=7, number=30)
    site = timed(per_site, repeat=7, number=3)
    result = {
        "runtime": f"python onnxruntime {ort.__version__}",
        "single_row_us": round(single * 1e6, 2),
        "batch_1800_ms": round(full * 1e3, 3),
        "batch_1800_row_us": round(full * 1e6 / 1800, 3),
        "per_site_18_ms": round(site * 1e3, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
