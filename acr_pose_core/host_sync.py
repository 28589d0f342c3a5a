"""Find the places where torch code makes the host wait for the device, on any device, the CPU included.

A GPU runs ahead of the Python that feeds it until something needs a value on the host: ``.item()``, ``bool(t)``,
``if (x < 0).any():``, a boolean-mask index (its output size is data-dependent), ``torch.nonzero``, an SVD or an
eigen-decomposition (torch checks their LAPACK status on the host), a copy to the CPU. Each such point stalls the
launch queue, and CUDA graph capture refuses it. :func:`forbid_host_sync` raises :class:`HostSyncError` at the first
operator of that kind inside its block, naming it, so that a test on the CPU can assert that a GPU path has none
(the operators are the same whatever the device). On a CUDA device it also sets
``torch.cuda.set_sync_debug_mode("error")``, which catches the syncs this list does not know.

The list is of ATen operators as the dispatcher sees them (below autograd), so it holds whatever Python spelling
reached them; it covers the usual suspects, not every operator a future torch adds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["HOST_READ_METHODS", "HOST_SYNC_OPERATORS", "HostSyncError", "forbid_host_sync"]

HOST_SYNC_OPERATORS = frozenset(
    {
        "aten::_local_scalar_dense",  # .item(), bool(), int(), float(), .tolist()
        "aten::is_nonzero",
        "aten::equal",
        "aten::allclose",
        "aten::nonzero",  # and torch.where(cond) with one argument
        "aten::masked_select",
        "aten::_unique",
        "aten::_unique2",
        "aten::unique_dim",
        "aten::unique_consecutive",
        "aten::bincount",
        "aten::repeat_interleave",  # without output_size the output size is read on the host
        "aten::_linalg_svd",  # linalg.svd, svdvals: LAPACK / cuSOLVER status checked on the host
        "aten::_linalg_eigh",
        "aten::linalg_eig",
        "aten::linalg_inv_ex",  # linalg.inv / solve check the status unless the _ex form is used
        "aten::linalg_solve_ex",
        "aten::_linalg_solve_ex",
        "aten::linalg_cholesky_ex",
    }
)
"""ATen operators that read a device value on the host (some only when their result is checked; listed anyway)."""


HOST_READ_METHODS = ("tolist", "numpy", "__array__", "cpu")
"""Tensor methods that hand data to the host; on a CPU tensor they read memory without an operator, so they are
caught where Python calls them (and ``cpu`` always: on a GPU it is a copy the host waits for)."""


class HostSyncError(RuntimeError):
    """An operator that makes the host wait for the device ran inside :func:`forbid_host_sync`."""


def _bool_index(args: tuple[Any, ...]) -> bool:
    """True when ``aten.index`` / ``index_put`` gets a boolean mask among its indices (a data-dependent size)."""
    indices = args[1] if len(args) > 1 else None
    return isinstance(indices, (list, tuple)) and any(
        isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices
    )


class _Guard(TorchDispatchMode):
    def __init__(self, allowed: frozenset[str]) -> None:
        super().__init__()
        self.allowed = allowed

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch's signature)
        kwargs = kwargs or {}
        name = func._schema.name  # e.g. "aten::nonzero"
        if name not in self.allowed:
            if name in HOST_SYNC_OPERATORS:
                raise HostSyncError(f"{name} reads a device value on the host")
            if name in ("aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_") and (
                _bool_index(args)
            ):
                raise HostSyncError(f"{name} with a boolean mask has a data-dependent size, read on the host")
            if name in ("aten::_to_copy", "aten::copy_"):
                source = args[1] if name == "aten::copy_" else args[0]
                out_device = args[0].device if name == "aten::copy_" else kwargs.get("device")
                if (
                    isinstance(source, torch.Tensor)
                    and source.device.type != "cpu"
                    and out_device is not None
                    and torch.device(out_device).type == "cpu"
                ):
                    raise HostSyncError(f"{name} copies a {source.device} tensor to the host")
        return func(*args, **kwargs)


class _MethodGuard(TorchFunctionMode):
    def __init__(self, allowed: frozenset[str]) -> None:
        super().__init__()
        self.forbidden = {getattr(torch.Tensor, m) for m in HOST_READ_METHODS if f"Tensor.{m}" not in allowed}

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch's signature)
        if func in self.forbidden:
            raise HostSyncError(f"Tensor.{func.__name__} hands a tensor to the host")
        return func(*args, **(kwargs or {}))


@contextmanager
def forbid_host_sync(allow: tuple[str, ...] = (), cuda: bool = True) -> Iterator[None]:
    """Raise :class:`HostSyncError` at the first operator in the block that makes the host wait for the device.

    Args:
        allow: ATen operator names (e.g. ``"aten::_local_scalar_dense"``) or ``"Tensor.<method>"`` names of
            :data:`HOST_READ_METHODS` to let through.
        cuda: also set ``torch.cuda.set_sync_debug_mode("error")`` for the block when CUDA is initialised.

    Example::

        with forbid_host_sync():
            out = reconstructor(points, rgb, choose, category, prior)
    """
    use_cuda = cuda and torch.cuda.is_available() and torch.cuda.is_initialized()
    previous = torch.cuda.get_sync_debug_mode() if use_cuda else 0
    if use_cuda:
        torch.cuda.set_sync_debug_mode("error")
    try:
        with _MethodGuard(frozenset(allow)), _Guard(frozenset(allow)):
            yield
    finally:
        if use_cuda:
            torch.cuda.set_sync_debug_mode(previous)
