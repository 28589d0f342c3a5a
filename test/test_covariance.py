"""Pose covariance (geometry.covariance): the first-order formula against the spread of many noisy fits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from acr_pose_core.geometry import compose_sRT, random_rotations, umeyama
from acr_pose_core.geometry.covariance import FREE_ANGLE_VARIANCE, pose_covariance, skew


def seen_half(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) NOCS points on the camera-facing half of a box (a partial view: the origin is off the centroid)."""
    points = rng.uniform(-0.5, 0.5, (n, 3)) * [0.6, 0.8, 0.4]
    points[:, 2] = np.abs(points[:, 2]) + 0.05
    return points


def pose_error(sRT_fit: np.ndarray, sRT_true: np.ndarray) -> np.ndarray:
    """(6,) ``(δt, δθ)``: translation difference and the rotation vector of ``R_fit R_trueᵀ`` (left perturbation)."""
    R_fit = sRT_fit[:3, :3] / np.cbrt(np.linalg.det(sRT_fit[:3, :3]))
    R_true = sRT_true[:3, :3] / np.cbrt(np.linalg.det(sRT_true[:3, :3]))
    theta = Rotation.from_matrix(R_fit @ R_true.T).as_rotvec()
    return np.concatenate([sRT_fit[:3, 3] - sRT_true[:3, 3], theta])


@pytest.fixture(scope="module")
def noisy_fits():
    """500 Umeyama fits of one built object under independent 3 mm noise, with each fit's covariance."""
    rng = np.random.default_rng(0)
    source = seen_half(rng, 150)
    sRT = compose_sRT(0.2, random_rotations(1, rng)[0], np.array([0.05, -0.02, 0.7]))
    clean = source @ sRT[:3, :3].T + sRT[:3, 3]
    errors, covariances = [], []
    for _ in range(500):
        target = clean + rng.normal(0, 0.003, clean.shape)
        fit = umeyama(source, target)
        fitted = compose_sRT(fit.scale, fit.rotation, fit.translation)
        errors.append(pose_error(fitted, sRT))
        covariances.append(pose_covariance(source, target, fitted))
    return source, sRT, clean, np.array(errors), np.array(covariances)


def test_skew_is_the_cross_product():
    v, w = np.array([0.3, -1.2, 2.0]), np.array([1.5, 0.4, -0.7])
    np.testing.assert_allclose(skew(v) @ w, np.cross(v, w), rtol=0, atol=1e-15)


def test_the_formula_matches_the_spread_of_noisy_fits(noisy_fits):
    """Built ground truth, 500 noise draws: the empirical covariance of the fitted poses equals the formula's (each
    standard deviation within 15 %, the correlations within 0.15), and errors are normalised by it (mean squared
    Mahalanobis distance ≈ 6, the number of pose parameters)."""
    _, _, _, errors, covariances = noisy_fits
    empirical = np.cov(errors.T)  # (6, 6)
    predicted = covariances.mean(0)
    std_e, std_p = np.sqrt(np.diag(empirical)), np.sqrt(np.diag(predicted))
    np.testing.assert_allclose(std_e, std_p, rtol=0.15)
    np.testing.assert_allclose(empirical / np.outer(std_e, std_e), predicted / np.outer(std_p, std_p), atol=0.15)
    mahalanobis = np.einsum("ni,nij,nj->n", errors, np.linalg.inv(covariances), errors)
    assert 5.0 < mahalanobis.mean() < 7.0
    # the partial view puts the origin off the centroid: translation and rotation are correlated, and the
    # formula says by how much (the test above would fail on a block-diagonal answer)
    assert np.abs(predicted[:3, 3:] / np.outer(std_p[:3], std_p[3:])).max() > 0.3


def test_more_noise_more_covariance_and_effective_points_scale_it(noisy_fits):
    source, sRT, clean, _, _ = noisy_fits
    noise = np.random.default_rng(1).normal(0, 1, clean.shape)
    small = pose_covariance(source, clean + 0.002 * noise, sRT)
    large = pose_covariance(source, clean + 0.008 * noise, sRT)
    np.testing.assert_allclose(large, 16 * small, rtol=1e-9, atol=1e-18)  # σ² scales the whole matrix
    assert np.all(np.linalg.eigvalsh(large - small) > 0)
    worth_10 = pose_covariance(source, clean + 0.002 * noise, sRT, effective_points=10)
    np.testing.assert_allclose(worth_10, small * 150 / 10, rtol=1e-12)
    np.testing.assert_array_equal(pose_covariance(source, clean + 0.002 * noise, sRT, effective_points=1e9), small)
    with pytest.raises(ValueError, match="effective_points"):
        pose_covariance(source, clean, sRT, effective_points=0)


def test_inliers_and_non_finite_points_are_left_out(noisy_fits):
    source, sRT, clean, _, _ = noisy_fits
    target = clean + np.random.default_rng(2).normal(0, 0.002, clean.shape)
    wild = target.copy()
    wild[:20] += 0.3  # outliers
    inliers = np.arange(len(source)) >= 20
    np.testing.assert_allclose(
        pose_covariance(source, wild, sRT, inliers), pose_covariance(source[20:], target[20:], sRT), rtol=1e-12
    )
    nan = target.copy()
    nan[:20] = np.nan
    np.testing.assert_allclose(pose_covariance(source, nan, sRT), pose_covariance(source[20:], target[20:], sRT))
    assert np.isnan(pose_covariance(source[:3], target[:3], sRT)).all()  # too few points
    line = np.linspace(0, 1, 30)[:, None] * [1.0, 0.5, 0.2]
    assert np.isnan(pose_covariance(line, line @ sRT[:3, :3].T + sRT[:3, 3], sRT)).all()  # collinear: undetermined


def test_a_symmetric_object_is_free_about_its_own_y_axis(noisy_fits):
    source, sRT, clean, _, _ = noisy_fits
    target = clean + np.random.default_rng(3).normal(0, 0.002, clean.shape)
    plain = pose_covariance(source, target, sRT)
    free = pose_covariance(source, target, sRT, symmetric_y=True)
    u = sRT[:3, 1] / np.linalg.norm(sRT[:3, 1])
    np.testing.assert_allclose(free[3:, 3:] @ u, FREE_ANGLE_VARIANCE * u, atol=1e-15)  # u: an eigenvector, π²/3
    np.testing.assert_allclose(free[:3, 3:] @ u, 0, atol=1e-18)
    # across u nothing changes, the translation not at all
    w = np.cross(u, [1.0, 0.0, 0.0])
    w /= np.linalg.norm(w)
    np.testing.assert_allclose(w @ free[3:, 3:] @ w, w @ plain[3:, 3:] @ w, rtol=1e-9)
    np.testing.assert_array_equal(free[:3, :3], plain[:3, :3])
    np.testing.assert_array_equal(free, free.T)
