"""Benchmark of the k-NN searches (not a test): prints a table and writes JSON.

The PIM groups each observed point with its K = 20 nearest points (3D, exact ranks needed for rotation invariance);
the RRM's three graphs join each node to its K = 36 nearest in feature space (C = 64). Three ways, on the CPU and,
where there is one, the GPU (``acr_pose_core/geometry/pointclouds.py``):

- ``direct``: the full matrix of direct distances (``cdist`` in its non-matmul mode) and ``topk``, what the PIM did;
- ``exact``: a matrix-product search for ``K + 8`` candidates, re-ranked by direct distances (the same ranks as the
  full matrix of the same per-pair distances, checked on the first 6 items; ``cdist``'s direct mode rounds its
  distances differently in float32, so a few near-tied rows can differ from it, counted);
- ``fast``: the matrix-product distances alone (the RRM's ranking).

Sizes: one frame (6 objects) and one training batch (96) of the paper configuration, 1024 points each.

Usage::

    python benchmarks/knn.py [--repeats 10] [--threads 2] [--out benchmarks/results/knn.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)

from acr_pose_core.geometry.pointclouds import _knn_direct, knn_indices


def _direct(x: torch.Tensor, k: int) -> torch.Tensor:
    distance = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")  # (B, L, L)
    distance.diagonal(dim1=1, dim2=2).fill_(-1.0)
    return distance.topk(k, dim=-1, largest=False, sorted=True).indices


METHODS = {
    "direct": _direct,
    "exact": lambda x, k: knn_indices(x, k, exact=True),
    "fast": lambda x, k: knn_indices(x, k, exact=False),
}


def median_ms(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/knn.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    cases = [("PIM groups", 3, 20), ("RRM graph", 64, 36)]
    rows = []
    gen = torch.Generator().manual_seed(0)
    for device in devices:
        for name, dims, k in cases:
            for batch in (6, 96):
                if device.type == "cpu" and batch == 96 and dims == 64:
                    continue  # minutes on a laptop CPU and nobody trains there at this size
                x = torch.randn(batch, 1024, dims, generator=gen).to(device)
                row = {"device": str(device), "case": name, "batch": batch, "points": 1024, "dims": dims, "k": k}
                for method, fn in METHODS.items():
                    row[f"{method}_ms"] = median_ms(lambda f=fn, x=x, k=k: f(x, k), args.repeats, device)
                exact = METHODS["exact"](x, k)
                # the same per-pair formula, in full: equal ranks; cdist's own formula rounds differently (float32)
                row["exact_equals_direct"] = bool(torch.equal(exact[:6], _knn_direct(x[:6], k)))
                row["rows_differing_from_cdist"] = int((exact != _direct(x, k)).any(-1).sum())
                rows.append(row)
                print(row, flush=True)
    print(f"\n{'device':>6} {'case':>10} {'batch':>5} {'direct ms':>10} {'exact ms':>9} {'fast ms':>8} exact=direct "
          "rows≠cdist")  # fmt: skip
    for r in rows:
        print(
            f"{r['device']:>6} {r['case']:>10} {r['batch']:>5} {r['direct_ms']:>10.1f} {r['exact_ms']:>9.1f} "
            f"{r['fast_ms']:>8.1f} {r['exact_equals_direct']!s:>12} {r['rows_differing_from_cdist']:>9}"
        )
    write_result(args.out, {"threads": args.threads, "knn": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
