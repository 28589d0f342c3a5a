"""Checkpoints: exact round trip and bit-identical resumption, atomicity, pruning, no pickle, errors, git commit."""

from __future__ import annotations

import json
import os
import pickle
import re
import stat
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import assert_same, assert_states_equal
from safetensors import safe_open
from torch import nn

from acr_pose_core.training.checkpoint import (
    CheckpointError,
    TrainingState,
    find_checkpoint,
    git_commit,
    latest_checkpoint,
    load_checkpoint,
    load_module_weights,
    save_checkpoint,
)

STEPS_PER_EPOCH = 3


class Net(nn.Module):
    """Linear → BatchNorm (buffers) → dropout (draws from the global RNG) → Linear."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, width)
        self.bn = nn.BatchNorm1d(width)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))


def lr_factor(epoch: int) -> float:
    """A plain function, as the trainer gives LambdaLR: torch stores nothing for it."""
    return 0.5 ** (epoch // 2)


def make_state(seed: int = 0, width: int = 8) -> TrainingState:
    torch.manual_seed(seed)
    recon, disc = Net(width), Net(6)
    opt_r = torch.optim.Adam(recon.parameters(), lr=1e-2)
    opt_d = torch.optim.Adam(disc.parameters(), lr=3e-3, betas=(0.5, 0.9))
    return TrainingState(
        step=0,
        epoch=0,
        step_in_epoch=0,
        modules={"reconstructor": recon, "discriminator": disc},
        optimisers={"reconstructor": opt_r, "discriminator": opt_d},
        schedulers={
            "reconstructor": torch.optim.lr_scheduler.LambdaLR(opt_r, lr_factor),
            "discriminator": torch.optim.lr_scheduler.MultiStepLR(opt_d, milestones=[1, 3], gamma=0.1),
        },
    )


def train(state: TrainingState, steps: int) -> list[tuple[float, float]]:
    """Alternating updates on random batches drawn from the global RNG; schedulers step per epoch."""
    recon, disc = state.modules["reconstructor"], state.modules["discriminator"]
    losses = []
    for _ in range(steps):
        x = torch.randn(5, 4)
        loss_r = (recon(x) - x.sum(1, keepdim=True)).pow(2).mean()
        state.optimisers["reconstructor"].zero_grad()
        loss_r.backward()
        state.optimisers["reconstructor"].step()
        loss_d = (disc(x) - 1).pow(2).mean()
        state.optimisers["discriminator"].zero_grad()
        loss_d.backward()
        state.optimisers["discriminator"].step()
        losses.append((loss_r.item(), loss_d.item()))
        state.step += 1
        state.step_in_epoch += 1
        if state.step_in_epoch == STEPS_PER_EPOCH:
            state.epoch, state.step_in_epoch = state.epoch + 1, 0
            for scheduler in state.schedulers.values():
                scheduler.step()
    return losses


def trained(tmp_path, steps: int = 4, **save_kwargs) -> tuple[TrainingState, object]:
    state = make_state()
    train(state, steps)
    state.rng = {"torch": torch.get_rng_state()}
    path = save_checkpoint(tmp_path, state, {"lr": 1e-2, "size": [1, 2]}, {"git_commit": "abc"}, **save_kwargs)
    return state, path


@pytest.fixture(autouse=True)
def keep_global_rng():
    """The tests draw from and reseed the global torch RNG: give it back as it was."""
    saved = torch.get_rng_state()
    yield
    torch.set_rng_state(saved)


def test_round_trip_restores_everything_and_training_continues_bit_identically(tmp_path):
    original, path = trained(tmp_path)
    assert original.epoch == 1 and original.step_in_epoch == 1  # the schedulers have stepped
    saved_rng = original.rng["torch"].clone()

    restored = make_state(seed=123)  # different weights, fresh optimisers and schedulers
    document = load_checkpoint(path, restored)
    assert_states_equal(original, restored)
    assert document["config"] == {"lr": 1e-2, "size": [1, 2]}
    assert document["metadata"] == {"git_commit": "abc"}
    assert restored.optimisers["discriminator"].param_groups[0]["betas"] == (0.5, 0.9)
    assert isinstance(restored.schedulers["discriminator"].milestones, Counter)

    torch.set_rng_state(saved_rng)
    losses_original = train(original, 5)  # crosses the next epoch boundary, with its milestone
    torch.set_rng_state(restored.rng["torch"])
    losses_restored = train(restored, 5)
    assert losses_original == losses_restored
    original.rng, restored.rng = {}, {}
    assert_states_equal(original, restored)


def test_document_is_readable_and_tensors_are_named(tmp_path):
    _, path = trained(tmp_path)
    assert path.name == "step_000000004.json"
    document = json.loads(path.read_text())
    assert document["format_version"] == 1
    assert (document["step"], document["epoch"], document["step_in_epoch"]) == (4, 1, 1)
    assert document["tensors"]["file"] == "step_000000004.safetensors"
    assert re.fullmatch(r"[0-9a-f]{64}", document["tensors"]["sha256"])
    groups = document["optimisers"]["discriminator"]["param_groups"]
    assert groups[0]["lr"] == pytest.approx(3e-3 * 0.1) and groups[0]["betas"] == {"__tuple__": [0.5, 0.9]}
    assert document["schedulers"]["reconstructor"]["state"]["lr_lambdas"] == [None]
    assert document["schedulers"]["discriminator"]["state"]["milestones"] == {"__counter__": [[1, 1], [3, 1]]}
    assert document["modules"]["reconstructor"]["type"] == "Net"
    assert document["rng"] == ["torch"]
    assert path.read_text().startswith('{\n  "format"')  # indented

    with safe_open(str(tmp_path / document["tensors"]["file"]), framework="pt") as f:
        keys = set(f.keys())
    assert {"module/reconstructor/fc1.weight", "module/discriminator/bn.running_mean", "rng/torch"} <= keys
    assert {"optimiser/reconstructor/state/0/exp_avg", "optimiser/discriminator/state/3/step"} <= keys


@pytest.mark.parametrize("form", ["json", "safetensors", "directory"])
def test_load_accepts_json_tensor_file_or_directory(tmp_path, form):
    original, path = trained(tmp_path)
    target = {"json": path, "safetensors": path.with_suffix(".safetensors"), "directory": tmp_path}[form]
    restored = make_state(seed=1)
    load_checkpoint(target, restored)
    assert_states_equal(original, restored)


def test_tensor_file_without_json_is_ignored(tmp_path):
    _, path = trained(tmp_path)
    orphan = tmp_path / "step_000000009.safetensors"  # a save killed before its .json
    orphan.write_bytes(path.with_suffix(".safetensors").read_bytes())
    assert latest_checkpoint(tmp_path) == path
    with pytest.raises(FileNotFoundError, match="step_000000009"):
        load_checkpoint(orphan, make_state())


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_tensor_file_is_ignored_and_refused(tmp_path, damage):
    state, first = trained(tmp_path)
    train(state, 2)
    second = save_checkpoint(tmp_path, state, {}, {})
    tensor_file = second.with_suffix(".safetensors")
    data = bytearray(tensor_file.read_bytes())
    if damage == "flip":
        data[-3] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    tensor_file.write_bytes(bytes(data))

    assert latest_checkpoint(tmp_path) == first
    with pytest.raises(CheckpointError, match=re.escape(tensor_file.name)):
        load_checkpoint(second, make_state())
    with pytest.raises(CheckpointError, match=re.escape(tensor_file.name)):
        load_module_weights(second, Net())
    restored = make_state(seed=5)
    load_checkpoint(tmp_path, restored)  # the directory means its newest complete checkpoint
    assert restored.step == 4


def test_keep_last_prunes_older_checkpoints(tmp_path):
    state = make_state()
    for _ in range(5):
        train(state, 1)
        save_checkpoint(tmp_path, state, {}, {}, keep_last=2)
    (tmp_path / ".step_000000001.safetensors.0123abcd.tmp").write_bytes(b"left by a killed save")
    train(state, 1)
    save_checkpoint(tmp_path, state, {}, {}, keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step_000000005.json",
        "step_000000005.safetensors",
        "step_000000006.json",
        "step_000000006.safetensors",
    ]

    everything = tmp_path / "all"
    for _ in range(4):
        train(state, 1)
        save_checkpoint(everything, state, {}, {}, keep_last=None)
    assert len(list(everything.glob("*.json"))) == 4


def test_keep_last_counts_complete_checkpoints_and_leaves_later_steps(tmp_path):
    state = make_state()
    for step in (1, 2, 3, 9):
        state.step = step
        save_checkpoint(tmp_path, state, {}, {}, keep_last=None)
    (tmp_path / "step_000000003.safetensors").write_bytes(b"corrupt")
    state.step = 4
    save_checkpoint(tmp_path, state, {}, {}, keep_last=2)
    # 3 is corrupt, so 2 is the one kept besides 4; 9 (another run's, later) stays; 1 goes.
    assert sorted(int(p.stem[5:]) for p in tmp_path.glob("*.json")) == [2, 4, 9]
    assert not (tmp_path / "step_000000003.safetensors").exists()

    state.step = 1
    written = save_checkpoint(tmp_path, state, {}, {}, keep_last=1)  # never removes the one just written
    assert written.exists() and latest_checkpoint(tmp_path).name == "step_000000009.json"


def test_resaving_a_step_replaces_it(tmp_path):
    state, path = trained(tmp_path)
    save_checkpoint(tmp_path, state, {}, {"time": "later"})
    assert load_checkpoint(path, make_state())["metadata"] == {"time": "later"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000000004.b.safetensors", "step_000000004.json"]
    save_checkpoint(tmp_path, state, {}, {"time": "latest"})  # and back to the first name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000000004.json", "step_000000004.safetensors"]


def test_a_kill_while_a_step_is_re_saved_leaves_it_complete(tmp_path, monkeypatch):
    """keep_last=1 and an end-of-epoch re-save of the step just saved: killed before its new .json lands, the old
    checkpoint must still be whole (it is the only one left), and a later save must find nothing in its way."""
    from acr_pose_core.training import checkpoint

    state = make_state()
    train(state, 1)
    save_checkpoint(tmp_path, state, {}, {"n": 1}, keep_last=1)
    train(state, 1)
    path = save_checkpoint(tmp_path, state, {}, {"n": 2}, keep_last=1)
    expected = {k: v.clone() for k, v in state.modules["reconstructor"].state_dict().items()}
    train(state, 1)  # the re-save carries other weights (a stand-in for changed counters or metrics)
    state.step -= 1
    real = checkpoint._replace_atomically

    def killed_at_the_json(tmp, target):
        if target.suffix == ".json":
            raise KeyboardInterrupt
        real(tmp, target)

    monkeypatch.setattr(checkpoint, "_replace_atomically", killed_at_the_json)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, state, {}, {"n": 3}, keep_last=1)
    monkeypatch.undo()
    assert find_checkpoint(tmp_path).path == path
    fresh = make_state()
    assert load_checkpoint(tmp_path, fresh)["metadata"] == {"n": 2}
    assert all(torch.equal(v, expected[k]) for k, v in fresh.modules["reconstructor"].state_dict().items())
    save_checkpoint(tmp_path, state, {}, {"n": 3}, keep_last=1)  # the rerun's save replaces it cleanly
    assert load_checkpoint(tmp_path, make_state())["metadata"] == {"n": 3}
    assert len(list(tmp_path.iterdir())) == 2


def test_loading_never_unpickles(tmp_path, monkeypatch):
    original, path = trained(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling while loading a checkpoint")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    restored = make_state(seed=7)
    load_checkpoint(path, restored)
    assert_states_equal(original, restored)
    net = Net()
    load_module_weights(tmp_path, net)
    assert_same(net.state_dict(), original.modules["reconstructor"].state_dict())


def test_load_module_weights_reads_one_module(tmp_path):
    original, path = trained(tmp_path)
    disc = Net(6)
    document = load_module_weights(path, disc, "discriminator")
    assert_same(disc.state_dict(), original.modules["discriminator"].state_dict())
    assert document["config"]["lr"] == 1e-2
    with pytest.raises(CheckpointError, match=r"no module 'critic'.*\['discriminator', 'reconstructor'\]"):
        load_module_weights(path, Net(), "critic")
    with pytest.raises(CheckpointError, match=r"step_000000004\.safetensors.*shape"):
        load_module_weights(path, Net(16))


def test_wrapped_modules_are_stored_unwrapped(tmp_path):
    state = make_state()
    state.modules["reconstructor"] = nn.DataParallel(state.modules["reconstructor"])  # CPU: a plain wrapper
    path = save_checkpoint(tmp_path, state, {}, {})
    with safe_open(str(path.with_suffix(".safetensors")), framework="pt") as f:
        assert "module/reconstructor/fc1.weight" in f.keys()
    load_checkpoint(path, state)
    load_module_weights(path, Net())


def test_tied_weights_and_tensor_hyper_parameters(tmp_path):
    torch.manual_seed(0)
    embed, head = nn.Embedding(5, 3), nn.Linear(3, 5, bias=False)
    head.weight = embed.weight  # one storage under two names: safetensors refuses those unless copied
    tied = nn.ModuleDict({"embed": embed, "head": head})
    sgd = torch.optim.SGD(tied.parameters(), lr=torch.tensor(0.1), momentum=0.9)
    head(embed(torch.tensor([1, 2]))).sum().backward()
    sgd.step()
    state = TrainingState(3, 0, 3, modules={"tied": tied}, optimisers={"sgd": sgd})
    path = save_checkpoint(tmp_path, state, {}, {})

    fresh = nn.ModuleDict({"embed": nn.Embedding(5, 3), "head": nn.Linear(3, 5, bias=False)})
    fresh.head.weight = fresh.embed.weight
    fresh_sgd = torch.optim.SGD(fresh.parameters(), lr=torch.tensor(0.5), momentum=0.9)
    restored = TrainingState(0, 0, 0, modules={"tied": fresh}, optimisers={"sgd": fresh_sgd})
    load_checkpoint(path, restored)
    assert_same(fresh.state_dict(), tied.state_dict())
    assert_same(fresh_sgd.state_dict(), sgd.state_dict())
    assert fresh.head.weight is fresh.embed.weight


class Factor:
    """A callable object: LambdaLR stores its ``__dict__``."""

    def __init__(self, rate: float, fn=None) -> None:
        self.rate, self.fn = rate, fn

    def __call__(self, epoch: int) -> float:
        return self.rate**epoch


def test_scheduler_with_callable_object(tmp_path):
    opt = torch.optim.Adam(Net().parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, Factor(0.9))
    opt.step()
    scheduler.step()
    state = TrainingState(1, 1, 0, modules={}, optimisers={"o": opt}, schedulers={"s": scheduler})
    path = save_checkpoint(tmp_path, state, {}, {})
    fresh_opt = torch.optim.Adam(Net().parameters(), lr=0.1)
    fresh = torch.optim.lr_scheduler.LambdaLR(fresh_opt, Factor(0.5))
    load_checkpoint(path, TrainingState(0, 0, 0, modules={}, optimisers={"o": fresh_opt}, schedulers={"s": fresh}))
    assert fresh.lr_lambdas[0].rate == 0.9 and fresh.get_last_lr() == scheduler.get_last_lr()

    unstorable = torch.optim.lr_scheduler.LambdaLR(opt, Factor(0.9, fn=lr_factor))
    state.schedulers = {"s": unstorable}
    with pytest.raises(CheckpointError, match=r"scheduler 's'.*lr_lambdas.*'fn'.*cannot store function"):
        save_checkpoint(tmp_path / "bad", state, {}, {})
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_unserialisable_config_is_refused_before_writing(tmp_path):
    state = make_state()
    with pytest.raises(CheckpointError, match="config cannot be stored as JSON"):
        save_checkpoint(tmp_path, state, {"model": object()}, {})
    assert not tmp_path.joinpath("step_000000000.safetensors").exists()
    path = save_checkpoint(tmp_path, state, {"root": tmp_path, "loss": torch.tensor(0.5)}, {})
    assert json.loads(path.read_text())["config"] == {"root": str(tmp_path), "loss": 0.5}


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="step_000000001.json"):
        load_checkpoint(tmp_path / "step_000000001.json", make_state())
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        load_checkpoint(tmp_path, make_state())

    original, path = trained(tmp_path)
    tensor_name = re.escape(path.with_suffix(".safetensors").name)
    untouched = make_state(seed=3, width=16)
    before = {k: v.clone() for k, v in untouched.modules["discriminator"].state_dict().items()}
    with pytest.raises(CheckpointError, match=rf"{tensor_name}.*'reconstructor'.*shape.*fc1.weight"):
        load_checkpoint(path, untouched)
    assert untouched.step == 0  # checked before anything changed
    assert_same(dict(untouched.modules["discriminator"].state_dict()), before)

    extra = make_state(seed=3)
    extra.modules["reconstructor"].extra = nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match=rf"{tensor_name}.*missing keys \['extra.bias', 'extra.weight'\]"):
        load_checkpoint(path, extra)
    load_checkpoint(path, extra, strict=False)
    assert torch.equal(extra.modules["reconstructor"].fc1.weight, original.modules["reconstructor"].fc1.weight)

    fewer = make_state(seed=3)
    del fewer.modules["discriminator"]
    with pytest.raises(CheckpointError, match=r"modules do not match.*unexpected \['discriminator'\]"):
        load_checkpoint(path, fewer)

    document = json.loads(path.read_text())
    del document["optimisers"]["reconstructor"]["param_groups"]
    path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match=rf"{re.escape(path.name)}: malformed checkpoint.*param_groups"):
        load_checkpoint(path, make_state())
    document["format_version"] = 99
    path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match=rf"{re.escape(path.name)}: unknown checkpoint format version 99"):
        load_checkpoint(path, make_state())


def test_git_commit(tmp_path):
    commit = git_commit()
    if (Path(__file__).parents[1] / ".git").exists():  # tests run from a checkout (not from an installed wheel)
        assert commit is not None and re.fullmatch(r"[0-9a-f]{40}(-dirty)?", commit), commit
    assert git_commit(repo=tmp_path) is None
    assert git_commit(repo=tmp_path / "missing") is None


def test_both_files_get_the_permissions_of_any_new_file(tmp_path):
    """safetensors' own writer makes its files 0600; a checkpoint's two files are as readable as the run's logs."""
    _, path = trained(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    for file in (path, path.with_suffix(".safetensors")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~umask, file.name
