"""Geometry: Umeyama, RANSAC, poses and rotation errors. Ground truth is built, then recovered."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from acr_pose_core.geometry import (
    chamfer_distance,
    compose_sRT,
    decompose_sRT,
    pose_errors,
    random_rotations,
    ransac_umeyama,
    rotation_about_y,
    rotation_error_deg,
    umeyama,
)
from acr_pose_core.geometry.ransac import _ransac_umeyama_reference, draw_minimal_samples, ransac_uniforms
from acr_pose_core.geometry.umeyama import _umeyama_reference


def make_problem(rng, B, N, noise=0.0, dtype=np.float64):
    """Random NOCS-like source clouds and their images under random similarities (metres)."""
    R = random_rotations(B, rng)
    s = rng.uniform(0.05, 0.5, B)
    t = rng.normal(0, 0.3, (B, 3)) + [0, 0, 1.0]
    x = rng.uniform(-0.5, 0.5, (B, N, 3))
    y = s[:, None, None] * np.einsum("bij,bnj->bni", R, x) + t[:, None] + rng.normal(0, noise, (B, N, 3))
    return x.astype(dtype), y.astype(dtype), s, R, t


def angle_deg(Ra, Rb):
    return rotation_error_deg(Ra, Rb)


# ---------------------------------------------------------------- Umeyama


@pytest.mark.parametrize("backend,dtype", list(itertools.product(["numpy", "torch"], [np.float32, np.float64])))
def test_umeyama_recovers_similarity(backend, dtype):
    rng = np.random.default_rng(0)
    x, y, s, R, t = make_problem(rng, 8, 200, noise=0.001, dtype=dtype)
    if backend == "torch":
        out = umeyama(torch.from_numpy(x), torch.from_numpy(y))
        assert isinstance(out.rotation, torch.Tensor) and out.rotation.dtype == torch.from_numpy(x).dtype
        out = type(out)(*(v.numpy() for v in out))
    else:
        out = umeyama(x, y)
        assert isinstance(out.rotation, np.ndarray) and out.rotation.dtype == dtype
    assert out.valid.all()
    assert np.all(angle_deg(out.rotation, R) < 0.5), angle_deg(out.rotation, R)
    np.testing.assert_allclose(out.scale, s, rtol=0.02)
    np.testing.assert_allclose(out.translation, t, atol=0.002)
    np.testing.assert_allclose(np.linalg.det(out.rotation), 1.0, atol=1e-4)


def test_umeyama_exact_and_matches_textbook():
    rng = np.random.default_rng(1)
    x, y, s, R, t = make_problem(rng, 5, 50)
    out = umeyama(x, y)
    np.testing.assert_allclose(out.rotation, R, atol=1e-10)
    np.testing.assert_allclose(out.scale, s, rtol=1e-10)
    np.testing.assert_allclose(out.translation, t, atol=1e-10)
    for b in range(5):
        s_ref, R_ref, t_ref = _umeyama_reference(x[b], y[b])
        np.testing.assert_allclose(out.scale[b], s_ref, rtol=1e-10)
        np.testing.assert_allclose(out.rotation[b], R_ref, atol=1e-10)
        np.testing.assert_allclose(out.translation[b], t_ref, atol=1e-10)


def test_umeyama_batched_equals_looped_and_unbatched_shapes():
    rng = np.random.default_rng(2)
    x, y, *_ = make_problem(rng, 6, 40, noise=0.01)
    w = rng.uniform(0, 1, (6, 40))
    batched = umeyama(x, y, w)
    for b in range(6):
        single = umeyama(x[b], y[b], w[b])
        assert single.rotation.shape == (3, 3) and single.translation.shape == (3,) and single.scale.shape == ()
        np.testing.assert_allclose(single.rotation, batched.rotation[b], atol=1e-12)
        np.testing.assert_allclose(single.scale, batched.scale[b], rtol=1e-12)
        np.testing.assert_allclose(single.translation, batched.translation[b], atol=1e-12)


def test_umeyama_mask_ignores_outliers_and_weights_reduce_error():
    rng = np.random.default_rng(3)
    x, y, s, R, t = make_problem(rng, 4, 100)
    y_bad = y.copy()
    y_bad[:, :20] += rng.normal(0, 0.3, (4, 20, 3))  # corrupt 20 % of the points
    mask = np.ones((4, 100), dtype=bool)
    mask[:, :20] = False
    clean = umeyama(x, y_bad, mask)
    np.testing.assert_allclose(clean.rotation, R, atol=1e-9)
    dirty = umeyama(x, y_bad)
    assert np.all(angle_deg(dirty.rotation, R) > angle_deg(clean.rotation, R))
    # Noise on half the points; down-weighting the noisy half must reduce the error.
    y_noisy = y.copy()
    y_noisy[:, 50:] += rng.normal(0, 0.05, (4, 50, 3))
    w = np.ones((4, 100))
    w[:, 50:] = 0.01
    err_uniform = angle_deg(umeyama(x, y_noisy).rotation, R)
    err_weighted = angle_deg(umeyama(x, y_noisy, w).rotation, R)
    assert np.all(err_weighted < err_uniform), (err_weighted, err_uniform)


def test_umeyama_is_reflection_safe():
    rng = np.random.default_rng(4)
    x, y, *_ = make_problem(rng, 3, 60)
    mirrored = y * np.array([-1.0, 1.0, 1.0])  # a reflection: no proper rotation fits exactly
    out = umeyama(x, mirrored)
    assert out.valid.all()
    np.testing.assert_allclose(np.linalg.det(out.rotation), 1.0, atol=1e-9)


def test_umeyama_degenerate_inputs_are_flagged_not_nan():
    rng = np.random.default_rng(5)
    x, y, *_ = make_problem(rng, 6, 30)
    x[0] = 0.3  # all source points equal
    x[1] = np.linspace(0, 1, 30)[:, None] * np.array([1.0, -2.0, 0.5])  # collinear source
    y[2] = y[2, :1]  # all target points equal
    mask = np.ones((6, 30), dtype=bool)
    mask[3, 2:] = False  # only two usable points
    x[4, 3:] = np.nan  # NaN points are ignored: three finite points remain, a valid fit
    y[5, :] = np.nan  # nothing usable
    out = umeyama(x, y, mask)
    assert out.valid.tolist() == [False, False, False, False, True, False], out.valid
    for v in out:
        assert np.isfinite(v).all()
    np.testing.assert_allclose(out.rotation[~out.valid], np.broadcast_to(np.eye(3), (5, 3, 3)))
    np.testing.assert_allclose(out.scale[~out.valid], 1.0)


@pytest.fixture(params=["cyclic", "parallel"])
def jacobi_order(request, monkeypatch) -> str:
    """Both Jacobi orders through the quaternion solver, on the CPU (which would choose the cyclic one)."""
    import importlib
    from functools import partial

    module = importlib.import_module("acr_pose_core.geometry.umeyama")  # the package's `umeyama` is the function
    monkeypatch.setattr(module, "jacobi_eigh", partial(module.jacobi_eigh, parallel=request.param == "parallel"))
    return request.param


def test_quaternion_solver_equals_svd_in_float64_also_for_reflections_rank_two_and_degenerate_items(jacobi_order):
    """Horn's quaternion with Jacobi sweeps is the same transform as Umeyama's SVD, item by item, to rounding."""
    rng = np.random.default_rng(41)
    x, y, *_ = make_problem(rng, 64, 40, noise=0.01)
    y[:16] = rng.normal(0, 1, (16, 40, 3))  # unrelated clouds: arbitrary covariances, half with det < 0
    y[16:24] *= np.array([-1.0, 1.0, 1.0])  # reflections
    mask = np.ones((64, 40), dtype=bool)
    mask[24:32, 3:] = False  # three points: a rank-2 covariance
    mask[32:36, 2:] = False  # two points: degenerate
    x[36] = 0.2  # all source points equal: degenerate
    w = rng.uniform(0.1, 1.0, (64, 40)) * mask
    a = umeyama(x, y, w, solver="svd")
    b = umeyama(x, y, w, solver="quaternion")
    np.testing.assert_array_equal(a.valid, b.valid)
    assert a.valid.sum() == 64 - 5
    np.testing.assert_allclose(b.rotation, a.rotation, atol=1e-11)
    np.testing.assert_allclose(b.scale, a.scale, rtol=1e-11)
    np.testing.assert_allclose(b.translation, a.translation, atol=1e-11)
    np.testing.assert_allclose(np.linalg.det(b.rotation), 1.0, atol=1e-12)


@pytest.mark.parametrize("parallel", [False, True])
def test_jacobi_eigh_equals_lapack_and_needs_its_sweeps(parallel):
    from functools import partial

    from acr_pose_core.geometry.umeyama import jacobi_eigh

    jacobi_eigh = partial(jacobi_eigh, parallel=parallel)

    g = torch.Generator().manual_seed(0)
    A = torch.randn(500, 4, 4, generator=g, dtype=torch.float64)
    A = A + A.transpose(1, 2)
    Q = torch.linalg.qr(torch.randn(500, 4, 4, generator=g, dtype=torch.float64)).Q
    A_tie = Q @ torch.diag(torch.tensor([3.0, 1.0, 1.0, -5.0], dtype=torch.float64)) @ Q.transpose(1, 2)
    for M in (A, A_tie):
        values, vectors = jacobi_eigh(M)
        torch.testing.assert_close(values.sort(1).values, torch.linalg.eigvalsh(M), atol=1e-12, rtol=0)
        torch.testing.assert_close(vectors @ torch.diag_embed(values) @ vectors.transpose(1, 2), M, atol=1e-12, rtol=0)
        torch.testing.assert_close(vectors.transpose(1, 2) @ vectors, torch.eye(4, dtype=torch.float64).expand_as(M))
    short, _ = jacobi_eigh(A, sweeps=2)  # too few sweeps leave the off-diagonal: the sweep count matters
    assert (short.sort(1).values - torch.linalg.eigvalsh(A)).abs().max() > 1e-6


def test_parallel_jacobi_pairs_every_plane_once_a_sweep_and_is_chosen_off_the_cpu(monkeypatch):
    import importlib

    module = importlib.import_module("acr_pose_core.geometry.umeyama")
    for n in (2, 4, 6, 8):
        rounds = module._round_robin(n)
        assert len(rounds) == n - 1
        assert all(sorted(i for pair in r for i in pair) == list(range(n)) for r in rounds)  # disjoint, complete
        assert sorted(pair for r in rounds for pair in r) == [(p, q) for p in range(n) for q in range(p + 1, n)]
    with pytest.raises(ValueError, match="even"):
        module.jacobi_eigh(torch.eye(3, dtype=torch.float64).expand(2, 3, 3), parallel=True)
    # which order runs where: record the calls
    ran = []
    for name in ("_jacobi_parallel", "_jacobi_cyclic"):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda A, sweeps, f=original, name=name: ran.append(name) or f(A, sweeps))
    g = torch.Generator().manual_seed(1)
    A = torch.randn(3, 4, 4, generator=g, dtype=torch.float64)
    A = A + A.transpose(1, 2)
    on_meta = module.jacobi_eigh(A.to("meta"))  # the meta device stands in for a GPU: shapes only, no values
    assert on_meta[0].shape == (3, 4) and on_meta[1].shape == (3, 4, 4)
    module.jacobi_eigh(A)
    odd = torch.eye(5, dtype=torch.float64).expand(2, 5, 5)
    assert module.jacobi_eigh(odd.to("meta"))[0].shape == (2, 5)
    assert ran == ["_jacobi_parallel", "_jacobi_cyclic", "_jacobi_cyclic"]  # meta: parallel; CPU, odd n: cyclic


def test_quaternion_solver_refuses_gradients():
    x = torch.randn(2, 10, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="solver='svd'"):
        umeyama(x, 2 * x.detach(), solver="quaternion")
    with pytest.raises(ValueError, match="solver must be"):
        umeyama(x, x, solver="eig")


def test_umeyama_rejects_bad_shapes():
    with pytest.raises(ValueError, match="B, N, 3"):
        umeyama(np.zeros((2, 5, 3)), np.zeros((2, 6, 3)))
    with pytest.raises(ValueError, match="weights"):
        umeyama(np.zeros((2, 5, 3)), np.zeros((2, 5, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="non-negative"):
        umeyama(np.zeros((1, 5, 3)), np.zeros((1, 5, 3)), -np.ones((1, 5)))
    for bad in (np.nan, np.inf):
        weights = np.ones((1, 5))
        weights[0, 2] = bad
        with pytest.raises(ValueError, match="weights must be finite"):
            umeyama(np.zeros((1, 5, 3)), np.zeros((1, 5, 3)), weights)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fit", ["umeyama", "ransac"])
def test_half_precision_points_are_aligned_in_float32_and_answered_in_their_dtype(dtype, fit):
    """torch's SVD takes neither float16 nor bfloat16: the fit runs in float32 on the rounded points and answers in
    the input's dtype: the float64 fit of the same rounded points, up to rounding the answer (bf16 keeps about 3
    digits, so the truth itself is a few degrees off for small objects a metre away)."""
    rng = np.random.default_rng(4)
    x, y, s, R, t = make_problem(rng, 3, 300)
    source, target = torch.from_numpy(x).to(dtype), torch.from_numpy(y).to(dtype)
    out = umeyama(source, target) if fit == "umeyama" else ransac_umeyama(source, target, seed=0)
    assert out.valid.all()
    assert out.scale.dtype == out.rotation.dtype == out.translation.dtype == dtype
    exact = umeyama(source.double(), target.double())  # the same rounded points, fitted in float64
    torch.testing.assert_close(out.rotation.double(), exact.rotation, atol=2e-2, rtol=0)  # entries' own rounding
    torch.testing.assert_close(out.scale.double(), exact.scale, atol=0, rtol=2e-2)


def test_umeyama_gradients_flow_and_are_finite():
    rng = np.random.default_rng(6)
    x, y, *_ = make_problem(rng, 3, 20, noise=0.01)
    x[2] = 0.0  # a degenerate item must not poison the gradients of the others
    xs = torch.tensor(x, requires_grad=True)
    ys = torch.tensor(y, requires_grad=True)
    out = umeyama(xs, ys)
    loss = out.rotation.sum() + out.scale.sum() + out.translation.sum()
    loss.backward()
    assert torch.isfinite(xs.grad).all() and torch.isfinite(ys.grad).all()
    assert xs.grad[:2].abs().sum() > 0 and ys.grad[:2].abs().sum() > 0

    def f(src, tgt):
        o = umeyama(src, tgt)
        return o.rotation, o.scale, o.translation

    src = torch.tensor(x[:1, :6], requires_grad=True)
    tgt = torch.tensor(y[:1, :6], requires_grad=True)
    assert torch.autograd.gradcheck(f, (src, tgt), fast_mode=True)


# ---------------------------------------------------------------- RANSAC


def corrupt(rng, y, fraction):
    y = y.copy()
    bad = rng.random(y.shape[:2]) < fraction
    y[bad] += rng.normal(0, 0.3, (int(bad.sum()), 3))
    return y, bad


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_ransac_recovers_pose_with_40_percent_outliers(backend):
    rng = np.random.default_rng(10)
    x, y, s, R, t = make_problem(rng, 6, 1024, noise=0.002)
    y, bad = corrupt(rng, y, 0.4)
    if backend == "torch":
        res = ransac_umeyama(torch.from_numpy(x).float(), torch.from_numpy(y).float(), seed=7)
        res = type(res)(*(v.numpy() for v in res))
    else:
        res = ransac_umeyama(x, y, seed=7)
    assert res.valid.all()
    assert np.all(angle_deg(res.rotation, R) < 1.0), angle_deg(res.rotation, R)
    np.testing.assert_allclose(res.scale, s, rtol=0.01)
    np.testing.assert_allclose(res.translation, t, atol=0.003)
    # inliers are (almost) exactly the uncorrupted points
    agreement = (res.inliers == ~bad).mean()
    assert agreement > 0.97, agreement
    # plain Umeyama on the same data is far off: the test would fail without the RANSAC
    plain = umeyama(x, y)
    assert np.median(angle_deg(plain.rotation, R)) > 2.0


def test_ransac_equals_sequential_reference_loop():
    rng = np.random.default_rng(11)
    x, y, *_ = make_problem(rng, 5, 300, noise=0.003)
    y, _ = corrupt(rng, y, 0.35)
    res = ransac_umeyama(x, y, seed=3)
    samples = draw_minimal_samples(torch.ones(5, 300, dtype=torch.bool), ransac_uniforms(5, 3), 5)
    for b in range(5):
        scale, rot, trans, valid, inliers, used = _ransac_umeyama_reference(x[b], y[b], samples[b].numpy())
        assert used == res.num_hypotheses[b]
        np.testing.assert_array_equal(inliers, res.inliers[b])
        np.testing.assert_allclose(res.scale[b], scale, rtol=1e-9)
        np.testing.assert_allclose(res.rotation[b], rot, atol=1e-9)
        np.testing.assert_allclose(res.translation[b], trans, atol=1e-9)
        assert valid == res.valid[b]


def test_ransac_is_seeded_and_independent_of_chunking_and_batching():
    rng = np.random.default_rng(12)
    x, y, *_ = make_problem(rng, 4, 256, noise=0.002)
    y, _ = corrupt(rng, y, 0.45)
    a = ransac_umeyama(x, y, seed=5)
    for chunk in (1, 7, 128, None):
        b = ransac_umeyama(x, y, seed=5, chunk_size=chunk)
        np.testing.assert_array_equal(a.inliers, b.inliers)
        np.testing.assert_array_equal(a.num_hypotheses, b.num_hypotheses)
        np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-12)
    c = ransac_umeyama(x, y, seed=6)
    assert not np.array_equal(a.num_hypotheses, c.num_hypotheses) or not np.array_equal(a.inliers, c.inliers)
    # batched answers equal single-object answers for an object whose samples are the same
    single = ransac_umeyama(x[:1], y[:1], seed=5)
    np.testing.assert_array_equal(single.inliers[0], a.inliers[0])


def test_ransac_uniforms_replace_the_seed_and_an_objects_row_does_not_depend_on_the_count():
    """Given uniforms give the seed's answer; object b's numbers are the same whether 1, 3 or 40 objects are drawn
    (what lets the estimator pad a frame's objects to fixed counts without changing any real object's pose)."""
    rng = np.random.default_rng(13)
    x, y, *_ = make_problem(rng, 3, 200, noise=0.002)
    y, _ = corrupt(rng, y, 0.4)
    by_seed = ransac_umeyama(x, y, seed=4)
    table = ransac_uniforms(40, 4)
    for count in (1, 3, 17):
        torch.testing.assert_close(ransac_uniforms(count, 4), table[:count], rtol=0, atol=0)
    given = ransac_umeyama(x, y, seed=999, uniforms=table[:3])  # the seed is not used when uniforms are given
    np.testing.assert_array_equal(given.inliers, by_seed.inliers)
    np.testing.assert_array_equal(given.num_hypotheses, by_seed.num_hypotheses)
    np.testing.assert_allclose(given.rotation, by_seed.rotation, rtol=0, atol=0)
    other = ransac_umeyama(x, y, uniforms=ransac_uniforms(3, 5))
    assert not np.array_equal(other.num_hypotheses, by_seed.num_hypotheses) or not np.array_equal(
        other.inliers, by_seed.inliers
    )
    assert ransac_uniforms(2, 0).dtype == torch.float64 and float(table.min()) >= 0 and float(table.max()) < 1
    with pytest.raises(ValueError, match="uniforms must be"):
        ransac_umeyama(x, y, uniforms=table[:2])
    with pytest.raises(ValueError, match="uniforms must be"):
        ransac_umeyama(x, y, max_iterations=64, uniforms=table[:3])


def test_ransac_device_path_quaternion_one_chunk_equals_cpu_path_and_never_syncs(jacobi_order):
    """The GPU settings (one chunk, quaternion fits) give the CPU path's answer, and read nothing on the host."""
    from acr_pose_core.host_sync import HostSyncError, forbid_host_sync

    rng = np.random.default_rng(14)
    x, y, *_ = make_problem(rng, 6, 512, noise=0.002)
    y, _ = corrupt(rng, y, 0.4)
    mask = np.ones((6, 512), dtype=bool)
    mask[1, 400:] = False
    y[2, :] = np.nan  # an object that fails
    x, y, mask = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask)
    cpu = ransac_umeyama(x, y, mask, seed=3)  # svd, chunks of 16
    with forbid_host_sync():
        device = ransac_umeyama(x, y, mask, seed=3, chunk_size=None, solver="quaternion")
    assert cpu.valid.tolist() == [True, True, False, True, True, True]
    torch.testing.assert_close(device.valid, cpu.valid)
    torch.testing.assert_close(device.inliers, cpu.inliers)
    torch.testing.assert_close(device.num_hypotheses, cpu.num_hypotheses)
    torch.testing.assert_close(device.rotation, cpu.rotation, atol=1e-10, rtol=0)
    torch.testing.assert_close(device.scale, cpu.scale, atol=0, rtol=1e-10)
    torch.testing.assert_close(device.translation, cpu.translation, atol=1e-10, rtol=0)
    # the guard is not vacuous: the CPU settings read on the host (svd status, the early stop between chunks)
    with pytest.raises(HostSyncError):
        with forbid_host_sync():
            ransac_umeyama(x, y, mask, seed=3, chunk_size=16, solver="quaternion")
    with pytest.raises(HostSyncError, match="_linalg_svd"):
        with forbid_host_sync():
            ransac_umeyama(x, y, mask, seed=3, chunk_size=None, solver="svd")


def test_ransac_mask_padding_and_failure():
    rng = np.random.default_rng(13)
    x, y, s, R, t = make_problem(rng, 3, 500, noise=0.002)
    mask = np.ones((3, 500), dtype=bool)
    mask[0, 300:] = False  # padding: garbage that must never be used
    x[0, 300:] = 1e3
    y[1] = rng.normal(0, 1, (500, 3))  # pure noise: no model has 10 % inliers
    y[2, :] = np.nan  # no usable point at all
    res = ransac_umeyama(x, y, mask, seed=1)
    assert res.valid.tolist() == [True, False, False]
    assert angle_deg(res.rotation[0], R[0]) < 0.5
    assert not res.inliers[0, 300:].any()
    assert res.inlier_ratio[1] < 0.1
    for v in res:
        assert np.isfinite(np.asarray(v, dtype=np.float64)).all()


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_ransac_with_no_points_is_invalid_as_documented(backend):
    empty = np.zeros((2, 0, 3)) if backend == "numpy" else torch.zeros(2, 0, 3)
    res = ransac_umeyama(empty, empty, seed=0)
    assert not np.asarray(res.valid).any()
    assert tuple(res.inliers.shape) == (2, 0) and tuple(res.rotation.shape) == (2, 3, 3)
    np.testing.assert_array_equal(np.asarray(res.rotation), np.broadcast_to(np.eye(3), (2, 3, 3)))
    assert np.isfinite(np.asarray(res.translation)).all()


# ---------------------------------------------------------------- poses and errors


def test_compose_decompose_round_trip():
    rng = np.random.default_rng(20)
    R = random_rotations(10, rng)
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0)
    s, t = rng.uniform(0.1, 2, 10), rng.normal(size=(10, 3))
    sRT = compose_sRT(s, R, t)
    assert sRT.shape == (10, 4, 4) and np.all(sRT[:, 3] == [0, 0, 0, 1])
    s2, R2, t2 = decompose_sRT(sRT)
    np.testing.assert_allclose(s2, s)
    np.testing.assert_allclose(R2, R, atol=1e-12)
    np.testing.assert_allclose(t2, t)


def rot_x(deg):
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def test_rotation_errors_with_symmetry():
    R0 = random_rotations(1, np.random.default_rng(21))[0]
    turned_y = R0 @ rotation_about_y(np.radians(90))  # about the object's own y axis
    tilted = R0 @ rot_x(30)
    assert rotation_error_deg(turned_y, R0) == pytest.approx(90)
    assert rotation_error_deg(turned_y, R0, y_symmetric=True) == pytest.approx(0, abs=1e-5)
    assert rotation_error_deg(tilted, R0) == pytest.approx(30)
    assert rotation_error_deg(tilted, R0, y_symmetric=True) == pytest.approx(30)
    both = rotation_error_deg(np.stack([turned_y, tilted]), R0, y_symmetric=np.array([True, False]))
    np.testing.assert_allclose(both, [0, 30], atol=1e-5)
    deg, cm = pose_errors(compose_sRT(0.3, tilted, [0.1, 0, 1]), compose_sRT(0.2, R0, [0.1, 0.03, 0.96]))
    assert deg == pytest.approx(30) and cm == pytest.approx(5.0)


# ---------------------------------------------------------------- chamfer distance


@pytest.mark.parametrize("squared", [True, False])
def test_chamfer_matches_brute_force_in_value_and_gradient(squared):
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(3, 50, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.rand(3, 70, 3, generator=gen, dtype=torch.float64)
    fast = chamfer_distance(a, b, squared=squared)
    (fast_grad,) = torch.autograd.grad(fast.sum(), a)
    d = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)  # (B, N, M), the obvious way
    if not squared:
        d = d.sqrt()
    slow = d.min(2).values.mean(1) + d.min(1).values.mean(1)
    (slow_grad,) = torch.autograd.grad(slow.sum(), a)
    torch.testing.assert_close(fast, slow)
    torch.testing.assert_close(fast_grad, slow_grad)
    np.testing.assert_allclose(chamfer_distance(a.detach().numpy()[0], b.numpy()[0], squared), slow[0].item())


# ---------------------------------------------------------------- k nearest neighbours


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dims, k", [(3, 20), (16, 36)])
def test_exact_knn_equals_the_full_direct_matrix_and_ignores_the_batch(dtype, dims, k):
    """The candidate search plus direct re-ranking gives the full direct matrix's ranks (the same per-pair formula),
    also in float32, and an item gets the same neighbours alone as in a batch (no float32 luck: the final ranks come
    from per-pair distances only)."""
    from acr_pose_core.geometry.pointclouds import _knn_direct, knn_indices

    g = torch.Generator().manual_seed(dims)
    x = torch.randn(4, 300, dims, generator=g, dtype=torch.float64).to(dtype) * 0.1 + 5.0  # off-centre
    idx = knn_indices(x, k)
    assert torch.equal(idx, _knn_direct(x, k))
    for b in range(4):
        assert torch.equal(knn_indices(x[b : b + 1], k)[0], idx[b])
    assert torch.equal(idx[..., 0], torch.arange(300).expand(4, 300))


def test_knn_on_a_lattice_and_with_duplicates():
    """Back-projected depth is nearly a lattice: exact, with its ties broken by index, or jittered by a micrometre, the
    exact mode finds the direct ranks; an exact duplicate of a point never displaces the point itself from rank 1."""
    from acr_pose_core.geometry.pointclouds import _knn_direct, knn_indices

    g = torch.Generator().manual_seed(1)
    u, v = torch.meshgrid(torch.arange(20.0), torch.arange(20.0), indexing="ij")
    plane = torch.stack([u.flatten() * 1e-3, v.flatten() * 1e-3, torch.full((400,), 0.8)], -1).double()
    # exact ties (4 points at 1, 4 at √2, ...): k = 7 takes two of the four at √2, the lower indices, alone or batched
    both = torch.stack([plane, plane.flip(0)])
    assert torch.equal(knn_indices(both, 7), _knn_direct(both, 7))
    assert torch.equal(knn_indices(both[1:], 7)[0], knn_indices(both, 7)[1])
    plane = plane + 1e-6 * torch.randn(400, 3, generator=g, dtype=torch.float64)
    assert torch.equal(knn_indices(plane[None], 9), _knn_direct(plane[None], 9))
    twice = torch.cat([plane[:50], plane[:50]])[None]  # point i and i + 50 coincide
    idx = knn_indices(twice, 3)
    assert torch.equal(idx[0, :, 0], torch.arange(100))
    assert torch.equal(idx[0, :50, 1], torch.arange(50, 100)) and torch.equal(idx[0, 50:, 1], torch.arange(50))


def test_fast_knn_equals_direct_in_float64_and_checks_its_arguments():
    from acr_pose_core.geometry.pointclouds import _knn_direct, knn_indices

    x = torch.randn(2, 200, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64) + 1e3
    assert torch.equal(knn_indices(x, 12, exact=False), _knn_direct(x, 12))
    with pytest.raises(ValueError, match="1 <= k <= L"):
        knn_indices(x, 201)
    with pytest.raises(ValueError, match="B, L, D"):
        knn_indices(x[0], 3)


def test_poses_from_nocs_recover_built_poses_ignore_padding_and_miss_empty_objects():
    from acr_pose_core.geometry import poses_from_nocs

    rng = np.random.default_rng(21)
    x, y, s, R, t = make_problem(rng, 3, 200, noise=0.001)
    nocs, points = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    points[0, 150:] = 50.0  # padding beyond object 0's 150 valid points: never used
    fit = poses_from_nocs(nocs, points, torch.tensor([150, 200, 0]), seed=0)
    assert fit.valid.tolist() == [True, True, False] and fit.sRT.dtype == torch.float64
    truth = compose_sRT(s, R, t)
    np.testing.assert_allclose(fit.sRT[:2].numpy(), truth[:2], atol=5e-3)
    np.testing.assert_array_equal(fit.sRT[2].numpy(), np.eye(4))  # no points: a missed object, not a made-up pose
    scale, rotation, translation = decompose_sRT(fit.sRT[:2].numpy())
    assert np.all(angle_deg(rotation, R[:2]) < 0.5)
