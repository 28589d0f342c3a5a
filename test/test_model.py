"""The Reconstructor, Discriminator and losses: shapes, invariants, gradients in every ablation configuration."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from acr_pose_core.models.config import ReconstructorConfig
from acr_pose_core.models.deformation import CategoryLinear
from acr_pose_core.models.discriminator import Discriminator, DiscriminatorConfig
from acr_pose_core.models.losses import (
    chamfer_loss,
    correspondence_loss,
    deformation_regulariser,
    discriminator_loss,
    entropy_loss,
    generator_loss,
)
from acr_pose_core.models.reconstructor import Reconstructor
from acr_pose_core.models.rrm import init_linear, knn_indices, pointwise_mlp

TABLE_3 = {  # the paper's ablation rows (adversarial training is a trainer switch)
    "baseline": dict(pose_irrelevant=False, relational_instance=False, relational_deformation=False,
                     relational_assignment=False),
    "+instance": dict(pose_irrelevant=False, relational_instance=True, relational_deformation=False,
                      relational_assignment=False),
    "+PIM": dict(pose_irrelevant=True, relational_instance=True, relational_deformation=False,
                 relational_assignment=False),
    "+deformation": dict(pose_irrelevant=True, relational_instance=True, relational_deformation=True,
                         relational_assignment=False),
    "full": dict(pose_irrelevant=True, relational_instance=True, relational_deformation=True,
                 relational_assignment=True),
}  # fmt: skip


def batch(config: ReconstructorConfig, B: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    N, M, S = config.num_points, config.prior_points, config.image_size
    return {
        "points": torch.randn(B, N, 3, generator=g) * torch.tensor([0.05, 0.08, 0.03]) + torch.tensor([0, 0, 0.8]),
        "rgb": torch.randn(B, 3, S, S, generator=g),
        "choose": torch.randint(0, S * S, (B, N), generator=g),
        "category": torch.arange(B) % config.num_categories,
        "prior": torch.rand(B, M, 3, generator=g) - 0.5,
    }


def make(config: ReconstructorConfig, seed: int = 0) -> Reconstructor:
    torch.manual_seed(seed)  # tests only: parameter initialisation
    return Reconstructor(config)


def test_shapes_and_invariants_of_the_output():
    config = ReconstructorConfig.tiny()
    model = make(config)
    inputs = batch(config)
    out = model(**inputs)
    B, N, M = 3, config.num_points, config.prior_points
    assert out.nocs.shape == (B, N, 3) and out.assignment.shape == (B, N, M)
    assert out.deformation.shape == (B, M, 3) and out.deformed_prior.shape == (B, M, 3)
    torch.testing.assert_close(out.assignment.sum(-1), torch.ones(B, N))
    assert (out.assignment >= 0).all()
    assert out.deformation.abs().max() < 1e-2  # the prior starts (almost) undeformed
    torch.testing.assert_close(out.deformed_prior, inputs["prior"] + out.deformation)
    torch.testing.assert_close(out.nocs, out.assignment @ out.deformed_prior)
    # a convex combination of the deformed prior's points stays inside its bounding box
    lo, hi = out.deformed_prior.amin(1, keepdim=True), out.deformed_prior.amax(1, keepdim=True)
    assert ((out.nocs >= lo - 1e-6) & (out.nocs <= hi + 1e-6)).all()
    assert out.size.shape == (B, 3)


def test_he_initialisation_keeps_the_feature_scale_through_a_deep_mlp():
    torch.manual_seed(0)  # tests only: parameter initialisation
    x = torch.randn(4, 256, 64)  # root mean square 1
    he = pointwise_mlp([64] * 11)  # ten Linear + LeakyReLU layers
    default = nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(64, 64), nn.LeakyReLU(0.2))])
    rms = lambda t: float(t.pow(2).mean().sqrt())  # noqa: E731
    assert 0.5 < rms(he(x)) < 2.0, rms(he(x))
    assert rms(default(x)) < 0.1  # PyTorch's default initialisation: about ×0.75 a layer
    final = init_linear(nn.Linear(512, 8), activation=False)
    assert abs(float(final.weight.std()) * math.sqrt(512) - 1) < 0.1 and not final.bias.any()


def test_assignment_starts_neither_uniform_nor_saturated():
    """At initialisation the assignment logits spread by about 1 over the prior points (paper widths, small crops)."""
    config = ReconstructorConfig(image_size=32)
    out = make(config)(**batch(config, B=2))
    spread = float(out.assignment_logits.std(-1).mean())
    assert 0.5 < spread < 3.0, spread
    top = out.assignment.amax(-1)  # (B, N) the largest weight of each row; uniform would be 1/M
    assert float(top.mean()) > 5 / config.prior_points and float(top.max()) < 0.5


def test_paper_configuration_builds_with_the_paper_sizes():
    config = ReconstructorConfig()
    assert (config.channels, config.num_points, config.prior_points, config.graph_k, config.image_size) == (
        64, 1024, 1024, 36, 192
    )  # fmt: skip
    model = Reconstructor(config)
    out = model(**batch(config, B=1))
    assert out.nocs.shape == (1, 1024, 3)


@pytest.mark.parametrize("row", list(TABLE_3))
def test_every_parameter_gets_a_gradient_in_every_ablation_configuration(row):
    config = ReconstructorConfig.tiny(**TABLE_3[row])
    model = make(config)
    inputs = batch(config, B=6)  # all six categories, so every category-specific output group is used
    out = model(**inputs)
    target = torch.rand_like(out.nocs) - 0.5
    loss = correspondence_loss(out.nocs, target) + chamfer_loss(out.deformed_prior, inputs["prior"] * 0.9)
    loss = loss + entropy_loss(out.assignment) + deformation_regulariser(out.deformation)
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"{row}: no finite gradient for {missing}"
    silent = [name for name, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not silent, f"{row}: zero gradient for {silent}"


def test_the_unchecked_forward_and_the_gpu_alignment_run_on_the_meta_device():
    """Meta tensors have shapes and no values: the forward without input checks and the alignment with a GPU's
    choices (one chunk, quaternion fits, parallel Jacobi) run there, so neither reads a value on the host, and the
    benchmarks can count their operators without a GPU; the checked forward cannot run there (it reads indices)."""
    from acr_pose_core.geometry import poses_from_nocs

    config = ReconstructorConfig.tiny()
    model = make(config).to("meta").eval()
    inputs = {k: v.to("meta") for k, v in batch(config).items()}
    with torch.no_grad():
        out = model(**inputs, check_inputs=False)
        fit = poses_from_nocs(out.nocs, inputs["points"], seed=0)
    assert out.nocs.shape == (3, config.num_points, 3) and out.nocs.device.type == "meta"
    assert fit.sRT.shape == (3, 4, 4) and fit.sRT.dtype == torch.float64
    with pytest.raises((RuntimeError, NotImplementedError)):
        model(**inputs)


def test_ablation_switches_change_the_modules():
    full = Reconstructor(ReconstructorConfig.tiny())
    base = Reconstructor(ReconstructorConfig.tiny(**TABLE_3["baseline"]))
    assert full.rrm.instance_graph.graph and not base.rrm.instance_graph.graph
    assert type(full.point_encoder) is not type(base.point_encoder)


def test_batched_equals_looped_and_categories_matter():
    """Each item of a batch gets what it gets alone. Compared in float64, where the claim holds exactly: in float32
    the layers before a k-NN graph differ by ~1e-7 between a batch and one item, and a near-tie of two neighbours
    can then rank either way (see "Ranking neighbours" in ``models/rrm.py``)."""
    config = ReconstructorConfig.tiny()
    model = make(config).eval().double()
    inputs = {k: v.double() if v.is_floating_point() else v for k, v in batch(config, B=4).items()}
    out = model(**inputs)
    for b in range(4):
        single = model(**{k: v[b : b + 1] for k, v in inputs.items()})
        torch.testing.assert_close(single.nocs[0], out.nocs[b], atol=1e-10, rtol=0)
        torch.testing.assert_close(single.assignment[0], out.assignment[b], atol=1e-10, rtol=0)
    other = dict(inputs, category=(inputs["category"] + 1) % 6)
    assert not torch.allclose(model(**other).assignment, out.assignment)


def test_knn_indices_are_the_nearest_by_direct_distance_whatever_the_offset():
    """The fast matrix-product ranking against the slow obvious one (direct distances, a stable sort), in float64,
    also for features far from the origin (where uncentred ``|a|² + |b|² − 2a·b`` loses the most digits)."""
    g = torch.Generator().manual_seed(3)
    features = torch.randn(3, 50, 8, generator=g, dtype=torch.float64)
    for offset in (0.0, 1e6):
        shifted = features + offset
        idx = knn_indices(shifted, 6)
        direct = torch.cdist(shifted, shifted, compute_mode="donot_use_mm_for_euclid_dist")
        expected = direct.argsort(dim=-1, stable=True)[..., :6]
        assert torch.equal(idx, expected), offset
    assert torch.equal(idx[..., 0], torch.arange(50).expand(3, 50))  # each node is its own nearest


def test_category_linear_computes_only_each_items_group_and_equals_selecting_from_all_groups():
    torch.manual_seed(0)
    layer = CategoryLinear(5, 7, groups=6).double()
    x = torch.randn(4, 9, 5, dtype=torch.float64)
    category = torch.tensor([5, 0, 3, 3])
    out = layer(x, category)
    assert out.shape == (4, 9, 7)
    torch.testing.assert_close(out, layer.forward_all_groups(x, category), rtol=0, atol=1e-12)
    # by hand: item 0 uses rows 35..41 of the shared weight
    torch.testing.assert_close(out[0], x[0] @ layer.weight[35:42].T + layer.bias[35:42], rtol=0, atol=1e-12)
    out.sum().backward()
    grown = layer.weight.grad.view(6, 7, 5).abs().sum(dim=(1, 2)) > 0
    assert grown.tolist() == [True, False, False, True, False, True]  # only the groups that were used learn
    with pytest.raises(IndexError, match="category"):
        layer(x, torch.tensor([0, 1, 2, 6]))
    with pytest.raises(ValueError, match="category"):
        layer(x, category[:2])


def test_bf16_autocast_keeps_the_outputs_in_float32_and_trains():
    """Under bf16 autocast (the trainer's mode on CUDA; CPU autocast here) the outputs are float32 and close to the
    float32 model's, assignment rows still sum to 1, and every parameter gets a finite gradient."""
    config = ReconstructorConfig.tiny()
    model = make(config)
    inputs = batch(config)
    reference = model(**inputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**inputs)
        knn = knn_indices(torch.randn(2, 64, 16, generator=torch.Generator().manual_seed(0)), 8)
    assert knn.equal(knn_indices(torch.randn(2, 64, 16, generator=torch.Generator().manual_seed(0)), 8))
    for name in ("nocs", "assignment", "assignment_logits", "deformation", "deformed_prior"):
        assert getattr(out, name).dtype == torch.float32, name
    torch.testing.assert_close(out.assignment.sum(-1), torch.ones(3, config.num_points), atol=1e-6, rtol=0)
    # bf16 keeps 8 significant bits (0.4 %) of the assignment logits; the NOCS points move by a fraction of a per cent
    # of the prior's extent on average (0.3 % measured), a few per cent at worst (2.4 % here, 4.4 % on another CPU's
    # bf16 kernels), while a differently initialised model differs by 8 % on average: the mean is the tight check,
    # the worst point only a loose one, since its size depends on the machine's kernels.
    error = (out.nocs - reference.nocs).abs()
    extent = reference.deformed_prior.abs().max()
    assert error.mean() < 0.02 * extent
    assert error.max() < 0.15 * extent
    out.nocs.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_input_checks():
    config = ReconstructorConfig.tiny()
    model = make(config)
    inputs = batch(config)
    with pytest.raises(ValueError, match="batch shapes"):
        model(**dict(inputs, choose=inputs["choose"][:2]))
    with pytest.raises(ValueError, match="prior has"):
        model(**dict(inputs, prior=inputs["prior"][:, :10]))
    with pytest.raises(ValueError, match="graph_k"):
        ReconstructorConfig(num_points=16, prior_points=16, graph_k=36)


@pytest.mark.parametrize("row", ["baseline", "full", "full+context"])
def test_unchecked_forward_reads_nothing_on_the_host_and_equals_the_checked_one(row):
    """``check_inputs=False`` (the estimator's, for CUDA graphs) leaves out only the host-side index checks."""
    from acr_pose_core.host_sync import HostSyncError, forbid_host_sync

    switches = dict(TABLE_3["full"], pim_context=True) if row == "full+context" else TABLE_3[row]
    config = ReconstructorConfig.tiny(**switches)
    model = make(config).eval()
    inputs = batch(config)
    with torch.no_grad():
        checked = model(**inputs)
        with forbid_host_sync():
            unchecked = model(**inputs, check_inputs=False)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(**inputs, check_inputs=False)
        with pytest.raises(HostSyncError, match="_local_scalar_dense"):  # the checks themselves read on the host
            with forbid_host_sync():
                model(**inputs)
    for a, b in zip(checked, unchecked, strict=True):
        assert a.equal(b)
    bad_choose = inputs["choose"].clone()
    bad_choose[0, 0] = config.image_size**2
    with pytest.raises(IndexError, match="pixel indices"):
        model(**dict(inputs, choose=bad_choose))
    with pytest.raises(IndexError, match="category"):
        model(**dict(inputs, category=torch.tensor([0, 1, 6])))


def test_discriminator_outputs_probabilities_and_learns():
    torch.manual_seed(0)
    disc = Discriminator(DiscriminatorConfig(point_channels=(16, 32), hidden=16))
    real = torch.rand(8, 64, 3) - 0.5  # a cube's volume
    fake = 0.05 * torch.randn(8, 64, 3)  # a blob at the centre
    p = disc(torch.cat([real, fake]))
    assert p.shape == (16,) and ((p >= 0) & (p <= 1)).all()
    opt = torch.optim.Adam(disc.parameters(), lr=1e-2)
    for _ in range(60):
        loss = discriminator_loss(disc(real), disc(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert disc(real).min() > 0.8 and disc(fake).max() < 0.2
    with pytest.raises(ValueError, match="B, N, 3"):
        disc(torch.rand(8, 64))


def test_losses_on_hand_worked_cases():
    target = torch.zeros(1, 2, 3)
    nocs = torch.tensor([[[0.05, 0.0, 0.0], [0.3, 0.0, -0.3]]])
    # 0.05 < τ: 0.05²/0.2 = 0.0125; 0.3 > τ: 0.3 − 0.05 = 0.25 (twice); sum per point, mean over 2 points
    assert correspondence_loss(nocs, target).item() == pytest.approx((0.0125 + 0.5) / 2)
    uniform = torch.full((2, 5, 8), 1 / 8)
    assert entropy_loss(uniform).item() == pytest.approx(math.log(8), rel=1e-5)
    assert entropy_loss(torch.nn.functional.one_hot(torch.arange(8)).float()[None]).item() == pytest.approx(0, abs=1e-6)
    deformation = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]])
    assert deformation_regulariser(deformation).item() == pytest.approx(2.5)
    ones, zeros = torch.ones(4), torch.zeros(4)
    assert discriminator_loss(ones, zeros).item() == 0.0 and discriminator_loss(zeros, ones).item() == 2.0
    assert generator_loss(ones).item() == 0.0 and generator_loss(zeros).item() == 1.0
    a = torch.tensor([[[0.0, 0, 0], [1, 0, 0]]])
    b = torch.tensor([[[0.0, 0, 0.5]]])
    assert chamfer_loss(a, b).item() == pytest.approx(1.0)  # (0.25 + 1.25)/2 + 0.25


def test_reconstruction_losses_are_the_weighted_sum_of_the_terms():
    from acr_pose_core.models.losses import LossWeights, reconstruction_losses

    g = torch.Generator().manual_seed(3)
    nocs, target = torch.rand(2, 8, 3, generator=g), torch.rand(2, 8, 3, generator=g)
    deformed, model = torch.rand(2, 5, 3, generator=g), torch.rand(2, 6, 3, generator=g)
    assignment = torch.softmax(torch.randn(2, 8, 5, generator=g), -1)
    deformation = torch.randn(2, 5, 3, generator=g)
    w = LossWeights(correspondence=2.0, chamfer=3.0, entropy=0.5, regulariser=0.25)
    terms = reconstruction_losses(nocs, deformed, assignment, deformation, target, model, w)
    expected = (
        2.0 * correspondence_loss(nocs, target)
        + 3.0 * chamfer_loss(deformed, model)
        + 0.5 * entropy_loss(assignment)
        + 0.25 * deformation_regulariser(deformation)
    )
    torch.testing.assert_close(terms["total"], expected)
    assert set(terms) == {"correspondence", "chamfer", "entropy", "regulariser", "total"}
