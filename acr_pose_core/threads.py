"""Math-library threads of worker processes: W workers should use W cores, not W × cores.

numpy's BLAS (OpenBLAS or MKL), OpenMP and torch each start a thread pool as wide as the machine. In a pool of worker
processes (``acr-pose generate --workers W``, the training DataLoader's ``num_workers``) every worker then runs that
many threads, and W workers oversubscribe the cores: on a 16-core machine generation ran at 10 frames/s with 16
workers, and at 49 frames/s with the libraries' threads pinned to one per worker. :func:`limit_worker_threads` pins
them from inside the worker, so nobody has to set ``OMP_NUM_THREADS`` by hand; the parent process is not touched.
"""

from __future__ import annotations

import os
import sys

__all__ = ["THREAD_VARIABLES", "limit_worker_threads", "worker_init_fn"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Variables the math libraries read when they load (here: set for libraries loaded later and for child processes)."""


def limit_worker_threads(threads: int = 1) -> None:
    """Limit this process's math-library threads to ``threads``: the BLAS and OpenMP pools already loaded (through
    ``threadpoolctl``), torch's intra-op threads and OpenCV's when those are imported, and the variables above for
    what is loaded later. A ``multiprocessing.Pool`` initializer as it is.
    """
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)


def worker_init_fn(worker_id: int) -> None:
    """A DataLoader ``worker_init_fn``: one math-library thread per loader process (``worker_id`` is not used)."""
    limit_worker_threads(1)
