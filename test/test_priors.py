"""Shape priors: the autoencoder, its training, the priors file, the shipped default and ``acr-pose priors``."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from acr_pose_core.categories import CATEGORIES, CLASS_IDS
from acr_pose_core.cli.main import main
from acr_pose_core.data import nocs_format
from acr_pose_core.data.priors import ShapePriors, default_priors_path, load_priors, save_priors
from acr_pose_core.geometry import chamfer_distance
from acr_pose_core.models.prior_autoencoder import PriorAutoencoder, PriorAutoencoderConfig
from acr_pose_core.synth.shapes import model_from_id, split_model_ids
from acr_pose_core.training.priors import PriorTrainingConfig, train_priors

TINY = PriorAutoencoderConfig(num_points=128, code_size=32, local_channels=(16, 32), global_channels=(32, 64),
                              decoder_channels=(64, 128))  # fmt: skip


def tiny_clouds(per_category: int = 2, points: int = 256) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    rng = np.random.default_rng(0)
    clouds, classes = {}, {}
    for category in CATEGORIES:
        for model_id in split_model_ids("train", category)[:per_category]:
            clouds[model_id] = model_from_id(model_id).sample_surface(points, rng).astype(np.float32)
            classes[model_id] = CLASS_IDS[category]
    return clouds, classes


def test_autoencoder_shapes_and_point_order_invariance():
    model = PriorAutoencoder(TINY).eval()
    points = torch.rand(3, 200, 3) - 0.5
    recon, code = model(points)
    assert recon.shape == (3, 128, 3) and code.shape == (3, 32)
    shuffled = points[:, torch.randperm(200)]
    torch.testing.assert_close(model.encode(shuffled), code)  # PointNet: a set function
    with pytest.raises(ValueError, match="B, N, 3"):
        model.encode(torch.rand(3, 200))


def test_training_lowers_the_chamfer_and_leaves_the_global_rng_alone():
    clouds, classes = tiny_clouds()
    state = torch.get_rng_state()
    config = PriorTrainingConfig(model=TINY, epochs=40, batch_size=4, learning_rate=3e-3, input_points=128)
    result = train_priors(clouds, classes, config, progress=False)
    assert torch.equal(state, torch.get_rng_state())
    assert result.history[-1] < 0.5 * result.history[0], result.history
    assert result.priors.points.shape == (6, 128, 3)
    assert np.isfinite(result.priors.points).all()
    assert result.priors.info["instances"] == {c: 2 for c in CATEGORIES}
    again = train_priors(clouds, classes, config, progress=False)  # seeded: the same priors
    np.testing.assert_allclose(again.priors.points, result.priors.points, atol=1e-5)


def test_training_needs_every_category():
    clouds, classes = tiny_clouds(per_category=1)
    mugs = [m for m in clouds if classes[m] == CLASS_IDS["mug"]]
    for m in mugs:
        del clouds[m]
    with pytest.raises(ValueError, match="mug"):
        train_priors(clouds, classes, PriorTrainingConfig(model=TINY, epochs=1), progress=False)


def test_priors_file_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(1)
    priors = ShapePriors(rng.uniform(-0.5, 0.5, (6, 64, 3)), {"data": "test"})
    path = save_priors(tmp_path / "p.npz", priors)
    back = load_priors(path)
    np.testing.assert_array_equal(back.points, priors.points.astype(np.float32))
    assert back.info == {"data": "test"}
    np.testing.assert_array_equal(back.for_class(CLASS_IDS["can"]), back.points[3])
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_priors(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        load_priors(tmp_path / "bad.npz")
    np.savez(tmp_path / "order.npz", points=priors.points, categories=np.array(CATEGORIES[::-1]))
    with pytest.raises(ValueError, match="order.npz.*categories"):
        load_priors(tmp_path / "order.npz")
    np.savez(tmp_path / "shape.npz", points=priors.points[:5], categories=np.array(CATEGORIES))
    with pytest.raises(ValueError, match="shape.npz"):
        load_priors(tmp_path / "shape.npz")
    with pytest.raises(ValueError, match="class id 7"):
        back.for_class(7)


def test_shipped_priors_resemble_their_categories():
    """Unseen test instances, classified by their nearest shipped prior (chamfer), are mostly put in their own
    category: far above chance (1/6), and every category's prior wins most often for its own instances except where
    shapes overlap (a mean can is a mid-height cylinder, near mugs and bottles)."""
    priors = load_priors()
    assert default_priors_path().is_file()
    assert priors.points.shape == (6, 1024, 3)
    rng = np.random.default_rng(2)
    confusion = np.zeros((6, 6), dtype=int)  # rows: true category, columns: nearest prior
    for k, category in enumerate(CATEGORIES):
        for model_id in split_model_ids("test", category)[:8]:
            cloud = model_from_id(model_id).sample_surface(1024, rng).astype(np.float32)
            distances = chamfer_distance(priors.points, np.broadcast_to(cloud, (6, 1024, 3)))
            confusion[k, int(np.argmin(distances))] += 1
        extent = priors.points[k].max(0) - priors.points[k].min(0)
        assert 0.8 < np.linalg.norm(extent) < 1.2  # a NOCS-sized shape
    accuracy = np.trace(confusion) / confusion.sum()
    assert accuracy > 0.75, confusion
    assert (confusion.diagonal() >= 3).all(), confusion  # every prior is the nearest for some of its own instances


def test_priors_command(tmp_path, capsys):
    clouds, _ = tiny_clouds(per_category=1, points=256)
    (tmp_path / "obj_models").mkdir()
    nocs_format.write_models(tmp_path / "obj_models" / "train.npz", clouds)
    out = tmp_path / "priors.npz"
    args = ["priors", "--data", str(tmp_path), "--out", str(out), "--epochs", "1", "--preset", "cpu"]
    assert main([*args, "--input-points", "64", "--target-points", "128"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert load_priors(out).points.shape == (6, 1024, 3)
    assert main(["priors", "--data", str(tmp_path / "nothing"), "--out", str(out)]) == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--epochs", "0"], "epochs \\(0\\), batch_size"),
        (["--batch-size", "0"], "batch_size \\(0\\)"),
        (["--target-points", "0"], "target_points must be at least 1"),
        (["--out", "{tmp}/file.txt/priors.npz"], "file.txt/priors.npz: cannot be written"),
        (["--out", "{tmp}"], "is a folder"),
    ],
)
def test_priors_command_checks_its_settings_before_training(tmp_path, capsys, monkeypatch, extra, message):
    import acr_pose_core.training.priors as training

    monkeypatch.setattr(
        training, "train_priors", lambda *a, **k: pytest.fail("trained before the settings were checked")
    )
    (tmp_path / "file.txt").write_text("a file, not a folder")
    args = ["priors", "--data", str(tmp_path), "--out", str(tmp_path / "priors.npz")]
    assert main([*args, *[a.format(tmp=tmp_path) for a in extra]]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "priors.npz").exists()
