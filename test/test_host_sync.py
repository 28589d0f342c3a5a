"""forbid_host_sync: the spellings that make a GPU wait for the host are caught on the CPU; the others pass."""

from __future__ import annotations

import pytest
import torch

from acr_pose_core.host_sync import HostSyncError, forbid_host_sync

X = torch.randn(4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

SYNCING = {
    "item": lambda: X.sum().item(),
    "bool": lambda: bool((X > 0).any()),
    "if": lambda: 1 if (X > 5).all() else 0,
    "int": lambda: int(X.argmax()),
    "tolist": lambda: X[0].tolist(),
    "numpy": lambda: X.numpy(),
    "cpu": lambda: X.cpu(),
    "mask index": lambda: X[X > 0],
    "mask assignment": lambda: X.clone().__setitem__(X > 0, 0.0),
    "nonzero": lambda: torch.nonzero(X > 0),
    "where one argument": lambda: torch.where(X > 0),
    "masked_select": lambda: torch.masked_select(X, X > 0),
    "unique": lambda: torch.unique(X.round()),
    "svd": lambda: torch.linalg.svd(X),
    "eigh": lambda: torch.linalg.eigh(X @ X.T),
    "allclose": lambda: torch.allclose(X, X),
    "equal": lambda: X.equal(X),
    "repeat_interleave": lambda: torch.repeat_interleave(torch.tensor([1, 2])),
}

FREE = {
    "arithmetic": lambda: (X * 2 + 1).exp().sum(1),
    "where three arguments": lambda: torch.where(X > 0, X, torch.zeros_like(X)),
    "long index": lambda: X[torch.tensor([0, 2])],
    "gather and sort": lambda: X.gather(1, X.argsort(1)),
    "topk and cummax": lambda: (X.topk(2, dim=1).values, X.cummax(1).values),
    "matmul": lambda: X @ X.T,
    "masked_fill": lambda: X.masked_fill(X > 0, 0.0),
    "shape reads": lambda: X.view(X.shape[1], X.shape[0]),
}


@pytest.mark.parametrize("name", list(SYNCING))
def test_each_host_read_is_caught(name):
    SYNCING[name]()  # fine outside the guard
    with pytest.raises(HostSyncError):
        with forbid_host_sync():
            SYNCING[name]()


@pytest.mark.parametrize("name", list(FREE))
def test_device_only_work_passes(name):
    with forbid_host_sync():
        FREE[name]()


def test_allow_lets_one_operator_through_and_the_guard_ends_with_its_block():
    with forbid_host_sync(allow=("aten::_local_scalar_dense",)):
        assert X.sum().item() == pytest.approx(float(X.sum()))
        with pytest.raises(HostSyncError, match="nonzero"):
            torch.nonzero(X)
    assert X.sum().item() == pytest.approx(float(X.sum()))  # outside: nothing raises
