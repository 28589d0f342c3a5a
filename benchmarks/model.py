"""Benchmark of the ACR-Pose model (not a test): prints a table and writes JSON.

Paper configuration (C = 64, 1024 points, K = 36, 192×192 crops), synthetic inputs:

1. Inference latency for a frame of 6 objects: Reconstructor forward (eval, no grad) and the RANSAC-Umeyama poses.
   Target on an H100: under 5 ms.
2. Training throughput at batch 96: one alternating Reconstructor + Discriminator update, samples per second.
   Target on an H100: at least 1,000 samples a second.
3. Peak memory (CUDA: ``torch.cuda.max_memory_allocated``; CPU: the process's peak resident size).

Runs on CPU, and on CUDA where there is one (bf16 autocast there, as the trainer does).

Usage::

    python benchmarks/model.py [--device cpu|cuda] [--batch 96] [--micro-batch M] [--steps 5]
                               [--out benchmarks/results/model.json]

On CPU the batch of 96 runs as 6 micro-batches of 16 (gradients summed, one optimiser step): the whole batch at once
would need about 30 GiB of memory (0.3 GiB a sample, measured), and the samples per second are the same.
"""

from __future__ import annotations

import argparse
import copy
import platform
import resource
import time
from pathlib import Path

import torch
from _operators import count_operators  # benchmarks/_operators.py
from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)

from acr_pose_core.geometry import poses_from_nocs
from acr_pose_core.host_sync import HostSyncError, forbid_host_sync
from acr_pose_core.models.config import ReconstructorConfig
from acr_pose_core.models.discriminator import Discriminator
from acr_pose_core.models.losses import LossWeights, discriminator_loss, generator_loss, reconstruction_losses
from acr_pose_core.models.reconstructor import Reconstructor


def inputs(config: ReconstructorConfig, B: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    N, M, S = config.num_points, config.prior_points, config.image_size
    scale = torch.tensor([0.05, 0.08, 0.03])
    out = {
        "points": torch.randn(B, N, 3, generator=g) * scale + torch.tensor([0.0, 0.0, 0.8]),
        "rgb": torch.randn(B, 3, S, S, generator=g),
        "choose": torch.randint(0, S * S, (B, N), generator=g),
        "category": torch.arange(B) % 6,
        "prior": torch.rand(B, M, 3, generator=g) - 0.5,
        "nocs": torch.rand(B, N, 3, generator=g) - 0.5,
        "model": torch.rand(B, M, 3, generator=g) - 0.5,
    }
    return {k: v.to(device) for k, v in out.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> float:
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def host_reads_of(fn) -> str:
    """ "none" when ``fn`` runs through :func:`forbid_host_sync` (on CUDA with torch's sync debug mode too), else
    the first operator that made the host wait."""
    try:
        with forbid_host_sync():
            fn()
        return "none"
    except (HostSyncError, RuntimeError) as error:  # torch's sync debug mode raises RuntimeError
        return f"{type(error).__name__}: {error}"[:300]


def operators_on_meta(model, frame: dict[str, torch.Tensor], names: tuple[str, ...]) -> dict[str, int]:
    """ATen operators (views excluded) of the unchecked forward and of the alignment with a GPU's choices, run on
    the meta device (shapes only): a lower bound of the kernels a GPU launches per frame (``benchmarks/_operators.py``).
    """
    meta_model = copy.deepcopy(model).to("meta").eval()
    meta = {k: v.to("meta") for k, v in frame.items()}
    with torch.no_grad():
        forward, _ = count_operators(lambda: meta_model(*(meta[k] for k in names), check_inputs=False))
        out = meta_model(*(meta[k] for k in names), check_inputs=False)
        alignment, _ = count_operators(lambda: poses_from_nocs(out.nocs, meta["points"], seed=0))
    return {"forward": forward, "alignment": alignment}


def cuda_graph_forward(model, args: list[torch.Tensor], amp: bool, repeats: int) -> dict:
    """Capture the unchecked forward for these fixed shapes in a CUDA graph and time its replay (an experiment for
    the GPU machine: whether the launch-bound forward pays for a graph). Returns the replay's median ms and how far
    its output is from the eager forward's, or the reason the capture failed."""
    try:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
                for _ in range(3):
                    eager = model(*args, check_inputs=False)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                captured = model(*args, check_inputs=False)
        device = args[0].device
        replay_ms = 1e3 * timed(graph.replay, device, repeats)
        graph.replay()
        torch.cuda.synchronize(device)
        return {"replay_ms": replay_ms, "max_nocs_difference": float((captured.nocs - eager.nocs).abs().max())}
    except Exception as error:  # noqa: BLE001 (an experiment: the reason is the result)
        return {"failed": f"{type(error).__name__}: {error}"[:500]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=96)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument(
        "--micro-batch",
        type=int,
        help="samples per forward/backward pass; gradients of batch/micro-batch passes are summed into one step "
        "(default: the whole batch on CUDA, 16 on CPU, where batch 96 would need about 30 GiB)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/model.json"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    amp = device.type == "cuda"
    config = ReconstructorConfig()
    torch.manual_seed(0)
    model = Reconstructor(config).to(device)
    disc = Discriminator().to(device)
    w = LossWeights()

    frame = inputs(config, 6, device)
    model.eval()

    names = ("points", "rgb", "choose", "category", "prior")

    def forward_only(check_inputs: bool = True):
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            return model(*(frame[k] for k in names), check_inputs=check_inputs)

    def align(out, sync_free: bool):
        settings = dict(chunk_size=None, solver="quaternion") if sync_free else dict(chunk_size=16, solver="svd")
        return poses_from_nocs(out.nocs.float(), frame["points"], seed=0, **settings)

    repeats = 20 if device.type == "cuda" else 3
    reconstruction = forward_only()
    latency_forward = timed(forward_only, device, repeats)
    latency_pose = timed(lambda: align(forward_only(), False), device, repeats)  # host checks, chunked SVD RANSAC
    latency_forward_unchecked = timed(lambda: forward_only(False), device, repeats)
    latency_pose_sync_free = timed(lambda: align(forward_only(False), True), device, repeats)
    latency_ransac = timed(lambda: align(reconstruction, False), device, repeats)
    latency_ransac_sync_free = timed(lambda: align(reconstruction, True), device, repeats)
    graph = cuda_graph_forward(model, [frame[k] for k in names], amp, repeats) if device.type == "cuda" else None
    host_reads = host_reads_of(lambda: align(forward_only(False), True))
    operators = operators_on_meta(model, frame, names)

    micro = args.micro_batch or (args.batch if device.type == "cuda" else min(args.batch, 16))
    if args.batch % micro:
        raise SystemExit(f"--micro-batch {micro} must divide --batch {args.batch}")
    chunks = args.batch // micro
    batch = inputs(config, micro, device)  # one micro-batch, reused: the step's cost does not depend on the values
    model.train()
    opt_r = torch.optim.Adam(model.parameters(), lr=1e-4)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-5)

    def train_step():
        """One alternating update on ``args.batch`` samples: gradients summed over ``chunks`` micro-batches."""
        opt_r.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        fakes = []
        for _ in range(chunks):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = model(*(batch[k] for k in ("points", "rgb", "choose", "category", "prior")))
                parts = (out.nocs, out.deformed_prior, out.assignment, out.deformation)
                loss = reconstruction_losses(*(p.float() for p in parts), batch["nocs"], batch["model"], w)["total"]
                loss = loss + w.generator * generator_loss(disc(out.nocs.float()))
            (loss / chunks).backward()
            fakes.append(out.nocs.detach().float())
        opt_r.step()
        opt_d.zero_grad(set_to_none=True)  # the generator term's Discriminator gradients are discarded
        for fake in fakes:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                judged = disc(torch.cat([batch["nocs"], fake]))
                d_loss = w.discriminator * discriminator_loss(judged[:micro].float(), judged[micro:].float())
            (d_loss / chunks).backward()
        opt_d.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_seconds = timed(train_step, device, args.steps)
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**30
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    rows = {
        "device": name,
        "threads": torch.get_num_threads(),
        "amp_bf16": amp,
        "inference_6_objects_forward_ms": 1e3 * latency_forward,
        "inference_6_objects_with_ransac_ms": 1e3 * latency_pose,
        "inference_6_objects_forward_unchecked_ms": 1e3 * latency_forward_unchecked,
        "inference_6_objects_sync_free_ms": 1e3 * latency_pose_sync_free,
        "ransac_6_objects_chunked_svd_ms": 1e3 * latency_ransac,
        "ransac_6_objects_sync_free_ms": 1e3 * latency_ransac_sync_free,
        "cuda_graph_forward": graph,
        "sync_free_host_reads": host_reads,
        "operators_6_objects_on_meta": operators,
        "train_batch": args.batch,
        "train_micro_batch": micro,
        "train_step_s": step_seconds,
        "train_samples_per_s": args.batch / step_seconds,
        "peak_memory_gib": peak,
    }
    print(f"ACR-Pose paper configuration on {name} ({'bf16' if amp else 'fp32'}, {torch.get_num_threads()} threads)")
    print(
        f"  inference, 6 objects: forward {rows['inference_6_objects_forward_ms']:.1f} ms, "
        f"with RANSAC-Umeyama {rows['inference_6_objects_with_ransac_ms']:.1f} ms   (H100 target < 5 ms)"
    )
    print(
        f"  sync-free (no input checks, one RANSAC chunk, quaternion fits): forward "
        f"{rows['inference_6_objects_forward_unchecked_ms']:.1f} ms, with RANSAC-Umeyama "
        f"{rows['inference_6_objects_sync_free_ms']:.1f} ms"
    )
    print(
        f"  RANSAC-Umeyama alone: chunked SVD {rows['ransac_6_objects_chunked_svd_ms']:.1f} ms, sync-free "
        f"{rows['ransac_6_objects_sync_free_ms']:.1f} ms   (H100 target < 1 ms)"
    )
    print(f"  host reads in the sync-free forward and alignment: {host_reads}")
    print(
        f"  operators a frame with a GPU's choices (meta device; at least one kernel each): forward "
        f"{operators['forward']}, alignment {operators['alignment']}"
    )
    if graph is not None:
        print(f"  forward as a CUDA graph: {graph}")
    print(
        f"  training, batch {args.batch} ({chunks} micro-batches of {micro}): {step_seconds:.2f} s per step, "
        f"{rows['train_samples_per_s']:.1f} samples/s   (H100 target >= 1000)"
    )
    print(f"  peak memory: {peak:.2f} GiB")
    write_result(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
