"""Counting the ATen operators a call dispatches: a CPU-side stand-in for the kernels it would launch on a GPU.

Views (transpose, select, expand, ...) launch nothing and are not counted; an operator can launch more than one
kernel (a reduction, a matrix product with a copy), so the count is a lower bound of the launches, good for
comparing two versions of the same computation. Run the call on the ``meta`` device to take the choices a GPU would
take (anything not on the CPU picks the GPU path) without needing one: meta tensors have shapes and no values, so a
path that read a value on the host would fail there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode

_VIEWS_WITHOUT_ALIAS = frozenset({"aten::_unsafe_view"})  # reshapes a fresh result in place: no kernel


class _Count(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch's signature)
        returns = func._schema.returns
        view = (returns and returns[0].alias_info is not None) or func.name() in _VIEWS_WITHOUT_ALIAS
        if not view:
            self.counts[func.name()] += 1
        return func(*args, **(kwargs or {}))


def count_operators(fn: Callable[[], Any]) -> tuple[int, Counter[str]]:
    """``(operators, per operator name)`` that calling ``fn()`` dispatched, views excluded."""
    with _Count() as mode:
        fn()
    return sum(mode.counts.values()), mode.counts
