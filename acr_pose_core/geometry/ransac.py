"""RANSAC around Umeyama, batched over objects and hypotheses, as the NOCS and SPD reference aligners do it.

The reference procedure (per object, sequential): the inlier threshold is a tenth of the source's diameter
(``2 · max_i ‖x_i − x̄‖``, the source being the NOCS coordinates), carried into the target's units by each
hypothesis' scale; up to 128 hypotheses from minimal samples of 5 corresponding points (drawn with replacement);
the best hypothesis is the first with the highest inlier ratio; stop after hypothesis ``i`` (0-based) once
``1 − (1 − r⁵)^i > 0.99`` for the best ratio ``r`` so far; refit Umeyama on the best hypothesis' inliers; fail when
fewer than 10 % of the points are inliers.

Here all hypotheses of all objects are drawn at once from a seeded generator, scored in chunks by one matrix product
per chunk, and the early stop is applied per object exactly as the sequential loop would (same samples, same answer:
:func:`_ransac_umeyama_reference` is that loop, kept for tests and benchmarks). Scoring stops as soon as every object
has stopped.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import torch

from acr_pose_core.geometry._backend import ArrayLike, answer_like, point_pair
from acr_pose_core.geometry.umeyama import SOLVERS, Solver, _fit

__all__ = ["ObjectPoses", "RansacResult", "poses_from_nocs", "ransac_uniforms", "ransac_umeyama"]


class RansacResult(NamedTuple):
    """Result of :func:`ransac_umeyama` (B objects, N points each).

    Attributes:
        scale: (B,) scale of ``target ≈ scale · rotation @ source + translation``.
        rotation: (B, 3, 3).
        translation: (B, 3).
        valid: (B,) bool; False when the inlier ratio of the best hypothesis is below ``min_inlier_ratio`` or the
            refit is degenerate (placeholders as in :class:`~acr_pose_core.geometry.umeyama.SimilarityTransform`).
        inliers: (B, N) bool, the best hypothesis' inliers (the points of the refit).
        inlier_ratio: (B,) best hypothesis' inliers / usable points.
        num_hypotheses: (B,) hypotheses evaluated before the object stopped.
    """

    scale: ArrayLike
    rotation: ArrayLike
    translation: ArrayLike
    valid: ArrayLike
    inliers: ArrayLike
    inlier_ratio: ArrayLike
    num_hypotheses: ArrayLike


def ransac_uniforms(
    num_objects: int,
    seed: int | torch.Generator = 0,
    max_iterations: int = 128,
    sample_size: int = 5,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(num_objects, max_iterations · sample_size)`` float64 uniforms in [0, 1): what :func:`ransac_umeyama`
    draws for ``seed`` (an int or a CPU generator) to pick its minimal samples, on ``device``.

    Drawn on the CPU, so a seed gives the same numbers on every device; object ``b``'s row does not depend on how
    many objects are drawn (torch's CPU generator fills the rows in order; tested). Given to :func:`ransac_umeyama`
    as ``uniforms``, they replace its draw: a caller that keeps them on the device (the estimator) copies nothing
    from the host per call, which is what a CUDA graph needs.
    """
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    u = torch.rand(num_objects, max_iterations * sample_size, generator=generator, dtype=torch.float64)  # CPU
    if device is None or torch.device(device).type == "cpu":
        return u
    if torch.device(device).type == "cuda":
        u = u.pin_memory()
    return u.to(device, non_blocking=True)


def draw_minimal_samples(usable: torch.Tensor, uniforms: torch.Tensor, sample_size: int) -> torch.Tensor:
    """(B, H, sample_size) point indices drawn uniformly with replacement among each object's usable points
    ``usable (B, N)``, from ``uniforms (B, H · sample_size)`` in [0, 1) (:func:`ransac_uniforms`).

    The uniform numbers do not depend on the points, so they reach the device without the device waiting for the
    host or the host for the device, and the indices are computed where ``usable`` lives.
    An object without usable points gets index 0 everywhere (its result is invalid anyway).
    """
    B, N = usable.shape
    u = uniforms.to(usable.device, torch.float64)  # (B, H·k)
    n_usable = usable.sum(1, keepdim=True)  # (B, 1)
    rank = (u * n_usable).long().clamp_max((n_usable - 1).clamp_min(0))  # (B, H·k) rank among usable points
    positions = torch.argsort((~usable).to(torch.int8), dim=1, stable=True)  # usable indices first, ascending
    idx = positions.gather(1, rank)
    return idx.view(B, -1, sample_size)


def _point_features(src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """(B, N, 18) per-point terms of the squared residual, linear in the hypothesis' coefficients (see below)."""
    outer = (tgt[..., :, None] * src[..., None, :]).flatten(-2)  # (B, N, 9) vec(y xᵀ)
    ones = torch.ones_like(src[..., :1])
    return torch.cat([src.pow(2).sum(-1, keepdim=True), ones, tgt.pow(2).sum(-1, keepdim=True), src, tgt, outer], -1)


def _hypothesis_coefficients(scale: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """(..., 18) coefficients such that ``features · coeff = ‖s R x + t − y‖²``.

    ``‖s R x + t − y‖² = s²‖x‖² + ‖t‖² + ‖y‖² + 2s (Rᵀt)·x − 2 t·y − 2s ⟨R, y xᵀ⟩``.
    """
    s = scale[..., None]
    rt_t = (rotation.transpose(-1, -2) @ translation[..., None]).squeeze(-1)  # (..., 3) Rᵀt
    return torch.cat(
        [
            s.pow(2),
            translation.pow(2).sum(-1, keepdim=True),
            torch.ones_like(s),
            2 * s * rt_t,
            -2 * translation,
            -2 * s * rotation.flatten(-2),
        ],
        -1,
    )


def _ransac_torch(
    source: torch.Tensor,
    target: torch.Tensor,
    usable: torch.Tensor,
    samples: torch.Tensor,
    inlier_fraction: float,
    confidence: float,
    min_inlier_ratio: float,
    chunk_size: int | None,
    solver: Solver,
) -> RansacResult:
    B, N, _ = source.shape
    H, k = samples.shape[1:]
    dtype, device = source.dtype, source.device
    n_usable = usable.sum(1).clamp_min(1)  # (B,)
    # Centre both clouds on their usable centroids: residuals are unchanged, the quadratic form is better conditioned.
    u = usable[..., None].to(dtype)
    src = (source - (u * source).sum(1, keepdim=True) / n_usable[:, None, None]) * u  # (B, N, 3), 0 where unusable
    tgt = (target - (u * target).sum(1, keepdim=True) / n_usable[:, None, None]) * u
    diameter = 2 * src.norm(dim=-1).amax(1)  # (B,) source diameter around its centroid
    threshold = inlier_fraction * diameter  # (B,) in source units; × hypothesis scale in target units
    features = _point_features(src, tgt)  # (B, N, 18)

    best_count = torch.full((B,), -1, dtype=torch.long, device=device)
    best_hyp = torch.zeros(B, dtype=torch.long, device=device)
    best_scale = torch.ones(B, dtype=dtype, device=device)
    best_rotation = torch.eye(3, dtype=dtype, device=device).repeat(B, 1, 1)
    best_translation = torch.zeros(B, 3, dtype=dtype, device=device)
    best_valid = torch.zeros(B, dtype=torch.bool, device=device)
    stopped_at = torch.full((B,), H - 1, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    batch = torch.arange(B, device=device)
    if chunk_size is None:  # one chunk of every hypothesis: fixed shapes, no loop, nothing asked of the host
        chunk_size = H
    start, size = 0, chunk_size
    while start < H:  # the first chunk is chunk_size; later ones are sized by what the stop rule still needs
        stop = min(start + size, H)
        h = stop - start
        idx = samples[:, start:stop].reshape(B, h * k)  # (B, h·k)
        s_pts = src[batch[:, None], idx].view(B * h, k, 3)
        t_pts = tgt[batch[:, None], idx].view(B * h, k, 3)
        hyp = _fit(s_pts, t_pts, torch.ones(B * h, k, dtype=dtype, device=device), solver)  # B·h minimal fits
        coeff = _hypothesis_coefficients(hyp.scale, hyp.rotation, hyp.translation).view(B, h, 18)
        sq_res = features @ coeff.transpose(1, 2)  # (B, N, h) squared residuals
        limit = (hyp.scale.view(B, h) * threshold[:, None]).pow(2)  # (B, h)
        count = ((sq_res < limit[:, None]) & usable[..., None]).sum(1)  # (B, h)
        count = torch.where(hyp.valid.view(B, h), count, torch.zeros_like(count))

        # Sequential semantics, vectorised: running best (first maximum wins), then the first stopping index.
        hyp_index = torch.arange(start, stop, device=device)
        key = count * H + (H - 1 - hyp_index)  # larger count first, then earlier index
        prev_key = torch.where(best_count >= 0, best_count * H + (H - 1 - best_hyp), torch.full_like(best_count, -1))
        run_key = torch.cummax(torch.maximum(key, prev_key[:, None]), dim=1).values  # (B, h)
        run_count = run_key // H
        run_hyp = H - 1 - run_key % H
        ratio = run_count.to(torch.float64) / n_usable[:, None].to(torch.float64)
        stops = (1 - (1 - ratio.pow(k)).pow(hyp_index.to(torch.float64))) > confidence  # (B, h)
        first = torch.where(stops.any(1), stops.to(torch.int8).argmax(1), torch.full_like(best_hyp, h - 1))
        newly = stops.any(1) & ~done
        chosen = run_hyp[batch, first]  # (B,) global index of the best hypothesis so far
        take = ~done & (chosen >= start)  # the best is from this chunk: keep its parameters
        local = batch * h + (chosen - start).clamp(0, h - 1)
        best_scale = torch.where(take, hyp.scale[local], best_scale)
        best_rotation = torch.where(take[:, None, None], hyp.rotation[local], best_rotation)
        best_translation = torch.where(take[:, None], hyp.translation[local], best_translation)
        best_valid = torch.where(take, hyp.valid[local], best_valid)
        best_count = torch.where(~done, run_count[batch, first], best_count)
        best_hyp = torch.where(~done, chosen, best_hyp)
        stopped_at = torch.where(newly, hyp_index[first], stopped_at)
        done = done | newly
        if stop >= H or bool(done.all()):  # the host reads `done` only when more hypotheses remain
            break
        # The stop rule fires at the first i with (1 − r⁵)^i < 1 − confidence; with the best ratio r so far, that
        # is an estimate of the hypotheses still needed (an underestimate only costs another chunk).
        r = (best_count.clamp_min(0).to(torch.float64) / n_usable.to(torch.float64))[~done]
        miss = (1 - r.pow(k)).clamp(1e-12, 1 - 1e-12)
        needed = torch.ceil(torch.log(torch.tensor(1 - confidence, dtype=torch.float64)) / torch.log(miss)) + 1
        size = int(min(max(float(needed.max()) - stop, chunk_size), H - stop))
        start = stop

    # Refit on the best hypothesis' inliers, with exactly computed residuals.
    moved = best_scale[:, None, None] * src @ best_rotation.transpose(1, 2) + best_translation[:, None]  # (B, N, 3)
    resid = (moved - tgt).norm(dim=-1)  # (B, N)
    inliers = (resid < (best_scale * threshold)[:, None]) & usable & best_valid[:, None]
    inlier_ratio = inliers.sum(1).to(dtype) / n_usable.to(dtype)
    fit = _fit(source, target, inliers.to(dtype), solver)
    valid = fit.valid & (inlier_ratio >= min_inlier_ratio) & (usable.sum(1) >= k)
    return RansacResult(fit.scale, fit.rotation, fit.translation, valid, inliers, inlier_ratio, stopped_at + 1)


def ransac_umeyama(
    source: ArrayLike,
    target: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    max_iterations: int = 128,
    sample_size: int = 5,
    inlier_fraction: float = 0.1,
    confidence: float = 0.99,
    min_inlier_ratio: float = 0.1,
    seed: int | torch.Generator = 0,
    chunk_size: int | None | Literal["auto"] = "auto",
    solver: Solver | Literal["auto"] = "auto",
    uniforms: torch.Tensor | None = None,
) -> RansacResult:
    """Robust similarity ``target ≈ scale · rotation @ source + translation`` for every object of a frame at once.

    Args:
        source: (B, N, 3) or (N, 3) canonical points (e.g. predicted NOCS coordinates).
        target: same shape, observed points (camera frame, metres).
        mask: optional (B, N) bool, the usable points (padding and non-finite points are never used).
        max_iterations: hypotheses per object at most (the reference's 128).
        sample_size: points per minimal sample (5).
        inlier_fraction: inlier threshold as a fraction of the source diameter (0.1), times the hypothesis scale.
        confidence: early-stop confidence (0.99).
        min_inlier_ratio: below this best inlier ratio the object fails (0.1).
        seed: an int seed or a CPU ``torch.Generator``; the same seed gives the same result on any device and
            whatever the chunk size.
        chunk_size: hypotheses scored by the first matrix product (later ones are sized from the best inlier
            ratio so far, after the host reads whether every object has stopped); None scores all
            ``max_iterations`` hypotheses in one product, with fixed shapes and no host synchronisation in the loop
            (for GPUs and CUDA graphs; more arithmetic than the early stop needs). ``"auto"``: 16 on the CPU,
            None elsewhere. A speed knob only: the result does not depend on it.
        solver: the Umeyama solver of every fit (:mod:`~acr_pose_core.geometry.umeyama`): ``"svd"`` or
            ``"quaternion"`` (no host synchronisation); ``"auto"``: svd on the CPU, quaternion elsewhere. The two
            agree to about 1e-14 in float64, so they choose the same inliers unless a residual lies that close to
            the threshold.
        uniforms: (B, max_iterations · sample_size) float64 in [0, 1), the minimal samples' random numbers in
            place of those ``seed`` draws (:func:`ransac_uniforms` gives the same ones); on the points' device
            they are used where they are, so the call copies nothing from the host.

    With ``chunk_size=None`` and ``solver="quaternion"`` nothing in the call reads a device value on the host
    (tested with :func:`acr_pose_core.host_sync.forbid_host_sync`).

    Returns:
        :class:`RansacResult` (numpy for numpy input, tensors for tensor input; no batch dimension for (N, 3) input).
    """
    if solver not in (*SOLVERS, "auto"):
        raise ValueError(f"solver must be one of {(*SOLVERS, 'auto')}, got {solver!r}")
    pair = point_pair(source, target, mask)
    src, tgt = pair.source, pair.target
    on_cpu = src.device.type == "cpu"
    if solver == "auto":
        solver = "svd" if on_cpu else "quaternion"
    if chunk_size == "auto":
        chunk_size = 16 if on_cpu else None
    if src.shape != tgt.shape or src.dim() != 3 or src.shape[-1] != 3:
        raise ValueError(f"source and target must both be (B, N, 3); got {tuple(src.shape)}, {tuple(tgt.shape)}")
    usable = torch.isfinite(src).all(-1) & torch.isfinite(tgt).all(-1)
    if pair.per_point is not None:
        if pair.per_point.shape != usable.shape:
            raise ValueError(f"mask must be (B, N) = {tuple(usable.shape)}; got {tuple(pair.per_point.shape)}")
        usable = usable & pair.per_point.bool()
    src = torch.where(usable[..., None], src, torch.zeros_like(src))
    tgt = torch.where(usable[..., None], tgt, torch.zeros_like(tgt))
    N = src.shape[1]
    if N == 0:  # one unusable stand-in point: every object then fails as any object without usable points does
        src, tgt = src.new_zeros(len(src), 1, 3), tgt.new_zeros(len(tgt), 1, 3)
        usable = usable.new_zeros(len(usable), 1)
    if uniforms is None:
        uniforms = ransac_uniforms(len(src), seed, max_iterations, sample_size, src.device)
    elif uniforms.shape != (len(src), max_iterations * sample_size):
        raise ValueError(
            f"uniforms must be (B, max_iterations * sample_size) = ({len(src)}, {max_iterations * sample_size}); "
            f"got {tuple(uniforms.shape)}"
        )
    samples = draw_minimal_samples(usable, uniforms, sample_size)
    with torch.no_grad():
        out = _ransac_torch(
            src, tgt, usable, samples, inlier_fraction, confidence, min_inlier_ratio, chunk_size, solver
        )
    return answer_like(out._replace(inliers=out.inliers[:, :N]), pair)


class ObjectPoses(NamedTuple):
    """Poses of B objects from their reconstructions (:func:`poses_from_nocs`).

    Attributes:
        sRT: (B, 4, 4) float64, ``p_camera = sRT[:3, :3] @ p_nocs + sRT[:3, 3]`` (metres); the identity where invalid.
        valid: (B,) bool, False where the alignment failed (a missed object, never a made-up pose).
        inlier_ratio: (B,) float64, RANSAC's best inlier ratio.
        inliers: (B, N) bool, the points of the final fit (none beyond ``num_valid``).
    """

    sRT: torch.Tensor
    valid: torch.Tensor
    inlier_ratio: torch.Tensor
    inliers: torch.Tensor


def poses_from_nocs(
    nocs: torch.Tensor,
    points: torch.Tensor,
    num_valid: torch.Tensor | None = None,
    seed: int = 0,
    chunk_size: int | None | Literal["auto"] = "auto",
    solver: Solver | Literal["auto"] = "auto",
    uniforms: torch.Tensor | None = None,
) -> ObjectPoses:
    """Model output → pose: each object's reconstructed NOCS points ``nocs (B, N, 3)`` aligned with its observed
    points ``points (B, N, 3)`` (metres) by :func:`ransac_umeyama` in float64, the first ``num_valid[b]`` points of
    object ``b`` used (None: all; the rest are padding). The one place the trainer's validation, the benchmarks and
    the estimator turn reconstructions into poses; the size is the model's (``ReconstructorOutput.size``).
    ``chunk_size``, ``solver`` and ``uniforms`` as for :func:`ransac_umeyama` (the defaults: no host
    synchronisation off the CPU)."""
    B, N, _ = nocs.shape
    mask = None
    if num_valid is not None:
        mask = torch.arange(N, device=nocs.device)[None] < num_valid.to(nocs.device)[:, None]  # (B, N)
    fit = ransac_umeyama(
        nocs.double(),
        points.double().to(nocs.device),
        mask,
        seed=seed,
        chunk_size=chunk_size,
        solver=solver,
        uniforms=uniforms,
    )
    sRT = torch.zeros(B, 4, 4, dtype=torch.float64, device=nocs.device)
    sRT[:, :3, :3] = fit.scale[:, None, None] * fit.rotation  # s·R
    sRT[:, :3, 3] = fit.translation
    sRT[:, 3, 3] = 1.0
    identity = torch.eye(4, dtype=torch.float64, device=nocs.device).expand(B, 4, 4)
    return ObjectPoses(torch.where(fit.valid[:, None, None], sRT, identity), fit.valid, fit.inlier_ratio, fit.inliers)


def _ransac_umeyama_reference(
    source: np.ndarray,
    target: np.ndarray,
    samples: np.ndarray,
    inlier_fraction: float = 0.1,
    confidence: float = 0.99,
    min_inlier_ratio: float = 0.1,
) -> tuple[float, np.ndarray, np.ndarray, bool, np.ndarray, int]:
    """The sequential reference loop for one object with all points usable, on given ``samples (H, k)``.

    Slow and obvious, for tests and benchmarks. Returns ``(scale, R, t, valid, inliers (N,), hypotheses used)``.
    """
    from acr_pose_core.geometry.umeyama import umeyama

    n, k = len(source), samples.shape[1]
    centred = source - source.mean(0)
    threshold = inlier_fraction * 2 * np.linalg.norm(centred, axis=1).max()
    best_ratio, best_inliers, used = 0.0, np.arange(n), 0
    for i, sample in enumerate(samples):
        used = i + 1
        fit = umeyama(source[sample], target[sample])
        if fit.valid:
            resid = np.linalg.norm(fit.scale * source @ fit.rotation.T + fit.translation - target, axis=1)
            inliers = np.flatnonzero(resid < fit.scale * threshold)
        else:
            inliers = np.zeros(0, dtype=np.int64)
        if len(inliers) / n > best_ratio:
            best_ratio, best_inliers = len(inliers) / n, inliers
        if 1 - (1 - best_ratio**k) ** i > confidence:
            break
    mask = np.zeros(n, dtype=bool)
    mask[best_inliers] = True
    fit = umeyama(source, target, mask)
    valid = bool(fit.valid) and best_ratio >= min_inlier_ratio
    return float(fit.scale), fit.rotation, fit.translation, valid, mask, used
