"""The six NOCS categories: names, class ids and symmetry.

Class ids follow the NOCS datasets: 0 is background or a distractor, 1..6 are the categories below.
Bottle, bowl and can are symmetric about their canonical y axis; a mug is too when its handle is not visible.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CATEGORIES", "CLASS_IDS", "NUM_CATEGORIES", "Y_SYMMETRIC", "category_name", "is_y_symmetric"]

CATEGORIES: tuple[str, ...] = ("bottle", "bowl", "camera", "can", "laptop", "mug")
"""Category names; the class id of ``CATEGORIES[i]`` is ``i + 1``."""

NUM_CATEGORIES = len(CATEGORIES)
CLASS_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(CATEGORIES)}
Y_SYMMETRIC: frozenset[str] = frozenset({"bottle", "bowl", "can"})
"""Categories whose shape is symmetric about the canonical y axis whatever the view."""

_MUG = CLASS_IDS["mug"]
_Y_SYMMETRIC_IDS = np.array([CLASS_IDS[n] for n in sorted(Y_SYMMETRIC)])


def category_name(class_id: int) -> str:
    """Name of a class id in 1..6; raises ``ValueError`` otherwise."""
    if not 1 <= int(class_id) <= NUM_CATEGORIES:
        raise ValueError(f"class id {class_id} is not a NOCS category id (1..{NUM_CATEGORIES})")
    return CATEGORIES[int(class_id) - 1]


def is_y_symmetric(class_ids: np.ndarray, handle_visible: np.ndarray | None = None) -> np.ndarray:
    """Whether each object is symmetric about its canonical y axis, as the NOCS evaluation treats it.

    Args:
        class_ids: (B,) class ids.
        handle_visible: (B,) mug handle visibility (non-zero = visible); ``None`` means visible.

    Returns:
        (B,) bool: bottle, bowl and can always; mug only where its handle is not visible.
    """
    class_ids = np.asarray(class_ids).reshape(-1)
    sym = np.isin(class_ids, _Y_SYMMETRIC_IDS)
    if handle_visible is not None:
        hidden = np.asarray(handle_visible).reshape(-1) == 0
        sym = sym | ((class_ids == _MUG) & hidden)
    return sym
