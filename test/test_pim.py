"""The Pose-Irrelevant Module: invariance to rotation and translation, equivariance to permutation, gradients at
degenerate clouds, the geometric inputs against a naive reference, and the PointMLP ablation baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acr_pose_core.geometry import random_rotations
from acr_pose_core.models.config import ReconstructorConfig
from acr_pose_core.models.pim import (
    NUM_GEOMETRIC_FEATURES,
    PointMLP,
    PoseIrrelevantModule,
    global_context,
    make_point_encoder,
    normalise_cloud,
    rotation_invariant_features,
)

TINY = ReconstructorConfig.tiny()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- objects and transforms


def gaussian_blob(rng: np.random.Generator, n: int) -> np.ndarray:
    """An anisotropic Gaussian blob, axes 10, 5 and 2 cm, randomly oriented (metres)."""
    return (rng.standard_normal((n, 3)) * [0.10, 0.05, 0.02]) @ random_rotations(1, rng)[0].T


def box_surface(rng: np.random.Generator, n: int, size=(0.20, 0.12, 0.06)) -> np.ndarray:
    """Points uniform on the surface of a box (metres): faces drawn by area."""
    size = np.asarray(size)
    areas = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]])
    axis = rng.choice(3, size=n, p=areas / areas.sum())
    points = rng.uniform(-0.5, 0.5, (n, 3)) * size
    points[np.arange(n), axis] = rng.choice([-0.5, 0.5], size=n) * size[axis]
    return points


def ellipsoid_surface(rng: np.random.Generator, n: int) -> np.ndarray:
    """Points on an ellipsoid with semi-axes 8, 4 and 3 cm (metres)."""
    direction = rng.standard_normal((n, 3))
    return direction / np.linalg.norm(direction, axis=1, keepdims=True) * [0.08, 0.04, 0.03]


def objects(n: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """(3, n, 3): one blob, one box surface and one ellipsoid surface, each somewhere in front of the camera."""
    rng = np.random.default_rng(seed)
    clouds = np.stack([gaussian_blob(rng, n), box_surface(rng, n), ellipsoid_surface(rng, n)])
    clouds += rng.normal(0, 0.2, (3, 1, 3)) + [0, 0, 1.0]
    return torch.as_tensor(clouds, dtype=dtype)


def rotated_copies(clouds: torch.Tensor, copies: int, seed: int = 1) -> torch.Tensor:
    """(copies, B, N, 3): each cloud rotated about the camera origin by a uniform random rotation and moved by a
    random offset; copy c uses the same transform for every cloud."""
    rng = np.random.default_rng(seed)
    R = torch.as_tensor(random_rotations(copies, rng), dtype=clouds.dtype)  # (copies, 3, 3)
    t = torch.as_tensor(rng.normal(0, 0.5, (copies, 1, 1, 3)), dtype=clouds.dtype)
    return torch.einsum("cij,bnj->cbni", R, clouds) + t


def invariance_error(model: torch.nn.Module, clouds: torch.Tensor, copies: int = 4) -> float:
    """Largest |f(R P + t) − f(P)| over random rotations and offsets, relative to the largest |f(P)|."""
    B, N, _ = clouds.shape
    moved = rotated_copies(clouds, copies).reshape(copies * B, N, 3)
    with torch.no_grad():
        reference = model(clouds)  # (B, N, C)
        out = model(moved).view(copies, B, N, -1)  # (copies, B, N, C)
    return ((out - reference).abs().max() / reference.abs().max()).item()


def tiny_pim(dtype=torch.float64, **overrides) -> PoseIrrelevantModule:
    torch.manual_seed(0)
    return PoseIrrelevantModule(ReconstructorConfig.tiny(**overrides)).to(dtype)


# ---------------------------------------------------------------- shapes and factory


@pytest.mark.parametrize("encoder", [PoseIrrelevantModule, PointMLP])
def test_shapes_tiny_config(encoder):
    torch.manual_seed(0)
    out = encoder(TINY)(objects(TINY.num_points, dtype=torch.float32))
    assert out.shape == (3, TINY.num_points, TINY.channels)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("encoder", [PoseIrrelevantModule, PointMLP])
def test_shapes_paper_config(encoder):
    config = ReconstructorConfig()
    assert (config.num_points, config.channels, config.pim_layers) == (1024, 64, 4)
    torch.manual_seed(0)
    with torch.no_grad():
        out = encoder(config)(objects(config.num_points, dtype=torch.float32)[:2])
    assert out.shape == (2, 1024, 64)
    assert torch.isfinite(out).all()


def test_factory_follows_the_switch():
    assert isinstance(make_point_encoder(TINY), PoseIrrelevantModule)
    assert isinstance(make_point_encoder(ReconstructorConfig.tiny(pose_irrelevant=False)), PointMLP)


def test_layer_widths_are_documented_ones():
    widths = [layer.out_channels for layer in PoseIrrelevantModule(ReconstructorConfig()).layers]
    assert widths == [32, 32, 64, 64]
    assert [layer.out_channels for layer in PoseIrrelevantModule(TINY).layers] == [8, 16]


def test_rejects_bad_input():
    model = PoseIrrelevantModule(TINY)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        model(torch.zeros(2, 64, 2))
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        model(torch.zeros(64, 3))
    with pytest.raises(ValueError, match="at least"):
        model(torch.randn(2, TINY.pim_k - 1, 3))
    with pytest.raises(ValueError, match="floating"):
        model(torch.zeros(2, 64, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="pim_k"):
        PoseIrrelevantModule(ReconstructorConfig.tiny(pim_k=1))
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        PointMLP(TINY)(torch.zeros(2, 64, 4))


# ---------------------------------------------------------------- invariance and equivariance


@pytest.mark.parametrize("context", [False, True])
@pytest.mark.parametrize("layers", [1, 2, 4])
def test_invariant_to_rotation_and_translation_float64(layers, context):
    error = invariance_error(tiny_pim(pim_layers=layers, pim_context=context), objects(TINY.num_points))
    assert error < 1e-6, f"pim_layers={layers}: relative change {error:.2e} under rotation and translation"


def test_global_context_by_hand_and_its_invariance():
    """Four points on a line and one off it, centred: coordinates in the sign-fixed principal frame (x: the line,
    signed so that the third moment is positive; y: across it, likewise; z = x × y), distance to the centroid and to
    the farthest point, worked out by hand; unchanged by a rotation."""
    cloud = torch.tensor([[-2.0, 0, 0], [-1.0, 0, 0], [0.0, 0, 0], [3.0, 0, 0], [0.0, 0.5, 0]], dtype=torch.float64)
    cloud = cloud - cloud.mean(0)  # centroid (0, 0.1, 0); Σ x³ = 18 > 0, Σ y³ = 0.06 > 0
    context = global_context(cloud[None])[0]  # (5, 5)
    torch.testing.assert_close(context[:, :3], cloud, atol=1e-9, rtol=0)  # the frame is x, y, z here
    torch.testing.assert_close(context[:, 3], cloud.norm(dim=1))
    torch.testing.assert_close(context[:, 4], (cloud - cloud[3]).norm(dim=1))  # (3, -0.1, 0) is the farthest
    rotation = torch.as_tensor(random_rotations(1, np.random.default_rng(4))[0])
    torch.testing.assert_close(global_context((cloud @ rotation.T)[None])[0], context, atol=1e-9, rtol=0)
    # the axes' signs follow the third moments, not the frame: the point-reflected cloud gets the same x and y
    torch.testing.assert_close(global_context(-cloud[None])[0, :, :2], cloud[:, :2], atol=1e-9, rtol=0)


def test_invariant_to_rotation_and_translation_paper_k():
    """The paper-size group (K = 20) on a smaller cloud."""
    error = invariance_error(tiny_pim(pim_k=20), objects(TINY.num_points, seed=3), copies=2)
    assert error < 1e-6, f"relative change {error:.2e}"


def test_invariant_to_rotation_and_translation_float32():
    error = invariance_error(tiny_pim(torch.float32), objects(TINY.num_points, dtype=torch.float32))
    assert error < 1e-3, f"relative change {error:.2e}"


def test_point_mlp_is_not_rotation_invariant():
    """The ablation's meaning (and the invariance check's negative control): raw coordinates change with rotation."""
    torch.manual_seed(0)
    model = PointMLP(TINY).double()
    error = invariance_error(model, objects(TINY.num_points))
    assert error > 1e-2, f"PointMLP changed only by {error:.2e} under rotation"
    # translation alone is filtered out by the centring
    clouds = objects(TINY.num_points)
    with torch.no_grad():
        torch.testing.assert_close(model(clouds + torch.tensor([0.3, -0.2, 0.5], dtype=clouds.dtype)), model(clouds))


def test_permutation_equivariant():
    model = tiny_pim()
    clouds = objects(TINY.num_points)
    permutation = torch.randperm(TINY.num_points, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(model(clouds[:, permutation]), model(clouds)[:, permutation])


def test_objects_of_a_batch_are_independent():
    model = tiny_pim()
    clouds = objects(TINY.num_points)
    with torch.no_grad():
        torch.testing.assert_close(model(clouds[1:2]), model(clouds)[1:2])


# ---------------------------------------------------------------- geometric inputs


def _angle_reference(a: np.ndarray, b: np.ndarray) -> float:
    cross, dot = np.linalg.norm(np.cross(a, b)), float(a @ b)
    return np.pi / 2 if cross == 0 and dot == 0 else float(np.arctan2(cross, dot))


def _unit_reference(v: np.ndarray, floor: float = 0.0) -> np.ndarray:
    norm = max(np.linalg.norm(v), floor)
    return v / norm if norm > 0 else v


def _features_reference(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The docstring's equations, one point and one neighbour at a time."""
    N = len(points)
    features, index = np.zeros((N, k, NUM_GEOMETRIC_FEATURES)), np.zeros((N, k), dtype=np.int64)
    for i in range(N):
        x = points[i]
        others = [j for j in range(N) if j != i]
        others.sort(key=lambda j: np.linalg.norm(points[j] - x))
        index[i] = [i, *others[: k - 1]]
        group = points[index[i]]
        m, n, f = group.mean(axis=0), group[1], group[-1]
        floor = 0.01 * np.linalg.norm(f - x)
        e1 = _unit_reference(m - x, floor)
        e2 = _unit_reference((f - x) - ((f - x) @ e1) * e1, floor)
        e3 = np.cross(e1, e2)
        for j, p in enumerate(group):
            u = p - x
            direction = _unit_reference(u)
            features[i, j] = [
                _angle_reference(u, m - x),
                _angle_reference(u, n - x),
                _angle_reference(u, f - x),
                _angle_reference(p - m, x - m),
                np.linalg.norm(u),
                np.linalg.norm(p - m),
                np.linalg.norm(p - n),
                np.linalg.norm(p - f),
                np.linalg.norm(x - m),
                direction @ e1,
                direction @ e2,
                direction @ e3,
            ]
    return features, index


def test_geometric_features_match_naive_reference():
    rng = np.random.default_rng(7)
    clouds = np.stack([gaussian_blob(rng, 24), box_surface(rng, 24)])
    features, index = rotation_invariant_features(torch.as_tensor(clouds), k=6)
    assert features.shape == (2, 24, 6, NUM_GEOMETRIC_FEATURES) and index.shape == (2, 24, 6)
    for b in range(2):
        expected_features, expected_index = _features_reference(clouds[b], k=6)
        np.testing.assert_array_equal(index[b].numpy(), expected_index)
        np.testing.assert_allclose(features[b].numpy(), expected_features, rtol=1e-9, atol=1e-12)


def test_normalise_cloud_centres_and_scales():
    clouds = objects(64)
    out = normalise_cloud(clouds)
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(3, 3, dtype=clouds.dtype))
    torch.testing.assert_close(out.square().sum(-1).mean(-1), torch.ones(3, dtype=clouds.dtype))
    # a cloud of one repeated point: centred, not divided by zero
    assert torch.equal(normalise_cloud(torch.ones(1, 5, 3)), torch.zeros(1, 5, 3))


def test_geometric_features_gradcheck():
    rng = np.random.default_rng(11)
    points = torch.as_tensor(gaussian_blob(rng, 10)[None], dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: rotation_invariant_features(p, 4)[0], (points,), fast_mode=True)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("context", [False, True])
def test_every_parameter_gets_a_gradient(context):
    model = tiny_pim(pim_context=context)
    clouds = objects(TINY.num_points)
    out = model(clouds)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=out.dtype)
    (out * weights).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().max() > 0, name


def _loss_and_point_gradient(model: torch.nn.Module, clouds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    points = clouds.clone().requires_grad_(True)
    out = model(points)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=out.dtype)
    (out * weights).sum().backward()
    return out.detach(), points.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_point_gradient_finite_with_duplicate_points(dtype):
    clouds = objects(TINY.num_points, dtype=dtype)
    clouds[:, 5] = clouds[:, 3]  # two coincident points (each is the other's nearest neighbour)
    clouds[:, 9] = clouds[:, 3]  # and a third
    out, gradient = _loss_and_point_gradient(tiny_pim(dtype), clouds)
    assert torch.isfinite(out).all() and torch.isfinite(gradient).all()
    torch.testing.assert_close(out[:, 5], out[:, 3])  # coincident points have the same features


def _symmetric_cloud() -> torch.Tensor:
    """(1, 33, 3): the origin and 16 pairs ±a (dyadic coordinates, distinct norms), so the origin is exactly the mean
    of the cloud and of its group of 7 (itself and the 3 nearest pairs)."""
    rng = np.random.default_rng(13)
    halves = rng.integers(-64, 65, (16, 3)) / 1024.0
    halves = halves[np.argsort(np.linalg.norm(halves, axis=1))]
    assert len(np.unique(np.linalg.norm(halves, axis=1))) == 16 and np.linalg.norm(halves, axis=1).min() > 0
    return torch.as_tensor(np.concatenate([np.zeros((1, 3)), halves, -halves])[None])


def test_degenerate_group_centre_is_exact_and_finite():
    cloud = _symmetric_cloud()
    features, _ = rotation_invariant_features(cloud, k=7)
    assert features[0, 0, :, 8].eq(0).all(), "the origin should coincide with its group centre (d5 = 0)"
    assert torch.isfinite(features).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_point_gradient_finite_when_a_point_is_its_group_centre(dtype):
    cloud = _symmetric_cloud().to(dtype)
    out, gradient = _loss_and_point_gradient(tiny_pim(dtype, pim_k=7), cloud)
    assert torch.isfinite(out).all() and torch.isfinite(gradient).all()


def test_point_gradient_finite_for_a_single_repeated_point():
    """The most degenerate cloud: every point the same (radius 0, every vector zero)."""
    out, gradient = _loss_and_point_gradient(tiny_pim(), torch.full((1, 16, 3), 0.5, dtype=torch.float64))
    assert torch.isfinite(out).all() and torch.isfinite(gradient).all()


# ---------------------------------------------------------------- devices and dtypes


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("encoder", [PoseIrrelevantModule, PointMLP])
def test_devices_and_dtypes(encoder, dtype, device):
    torch.manual_seed(0)
    model = encoder(TINY).to(device=device, dtype=dtype)
    clouds = objects(TINY.num_points, dtype=dtype).to(device)
    out = model(clouds)
    assert out.dtype == dtype and out.device == clouds.device
    assert torch.isfinite(out).all()
    out.sum().backward()


def test_geometry_stays_in_float32_under_bf16_autocast(monkeypatch):
    """Under bf16 autocast the groups and geometric inputs are exactly the float32 ones; the layers run in bf16."""
    import acr_pose_core.models.pim as pim

    seen = []

    def spy(points, k):
        seen.append(rotation_invariant_features(points, k))
        return seen[-1]

    monkeypatch.setattr(pim, "rotation_invariant_features", spy)
    model = tiny_pim(torch.float32)
    clouds = objects(TINY.num_points, dtype=torch.float32)
    reference = model(clouds)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(clouds)
    assert out.dtype == torch.bfloat16  # the convolutions did run in bf16
    (geometry_fp32, index_fp32), (geometry_amp, index_amp) = seen
    assert geometry_amp.dtype == torch.float32
    assert torch.equal(index_amp, index_fp32) and torch.equal(geometry_amp, geometry_fp32)
    # bf16 layers: about 3 significant digits on the way, the result still close to the float32 one
    assert ((out.float() - reference).abs().max() / reference.abs().max()).item() < 0.05
