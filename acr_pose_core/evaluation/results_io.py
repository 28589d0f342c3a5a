"""Reading and writing prediction sets: the community's result pickles and the project's own "acr" format.

Contents: :class:`ResultsFileError`, the restricted unpickler behind :func:`load_pickle`, the key mapping
:func:`frame_from_dict` / :func:`frame_to_dict`, the per-frame writer :func:`save_frame`, and
:func:`load_results`, which reads a whole directory of either format into :class:`FrameResult` records.

Community pickles ("spd")
-------------------------
NOCS, SPD and their successors share predictions as one pickle per frame, ``results_<scene>_<frame>.pkl``, each a
dict of numpy arrays with the keys listed below (some tools aggregate several such dicts into a list in one file;
both are read). Some were written by Python 2 (they are read with ``encoding="latin1"``), some by numpy 1.x (globals
under ``numpy.core.multiarray``) and some by numpy 2.x (``numpy._core.multiarray``). A pickle can run any code when
it is loaded, so :func:`load_pickle` uses an unpickler that admits only what numpy arrays, numpy scalars, dtypes and
plain containers need and refuses everything else before it is called.

The "acr" format
----------------
A directory of per-frame files, each either ``<name>.npz`` (written with ``np.savez_compressed``, read with
``allow_pickle=False``) or ``<name>.json`` (the arrays as nested lists). Files are read in order of file name; the
file name identifies the frame in messages. Each file holds exactly these keys (G ground-truth objects, P
predictions; both may be 0, and an empty array may be stored as ``[]`` / shape ``(0,)``):

==========================  ============  =======================  ==============================================
key                         shape         dtype                    meaning
==========================  ============  =======================  ==============================================
``gt_class_ids``            (G,)          int (int64)              class ids 1..6: bottle, bowl, camera, can,
                                                                   laptop, mug (:mod:`acr_pose_core.categories`)
``gt_RTs``                  (G, 4, 4)     float (float64)          pose ``sRT``: ``[:3, :3] = s·R``,
                                                                   ``[:3, 3] = t`` in metres, last row 0 0 0 1;
                                                                   ``p_camera = s·R·p_nocs + t``
``gt_scales``               (G, 3)        float (float64)          NOCS-unit box extents x, y, z (metric size =
                                                                   s · extents)
``gt_handle_visibility``    (G,)          bool (or 0/1 integers)   mug handle visible; true for every non-mug
``pred_class_ids``          (P,)          int (int64)              class ids 1..6
``pred_RTs``                (P, 4, 4)     float (float64)          predicted ``sRT``, as ``gt_RTs``
``pred_scales``             (P, 3)        float (float64)          predicted NOCS-unit box extents
``pred_scores``             (P,)          float (float64)          detection scores (higher = more confident)
``gt_bboxes`` (optional)    (G, 4)        int or float             image boxes ``y1, x1, y2, x2`` in pixels
``pred_bboxes`` (optional)  (P, 4)        int or float             image boxes ``y1, x1, y2, x2`` in pixels
``image_path`` (optional)   ()            str                      the colour image the frame came from
==========================  ============  =======================  ==============================================

Camera frame: OpenCV (x right, y down, z forward). Canonical frame: NOCS (y up, centred on the tight box, box
diagonal 1). Poses, sizes and scores must be finite; no other key is allowed. Example (one mug, one prediction)::

    {
      "image_path": "real_test/scene_1/0000_color.png",
      "gt_class_ids": [6],
      "gt_bboxes": [[180, 250, 300, 390]],
      "gt_RTs": [[[0.12, 0.0, 0.0, 0.02], [0.0, 0.12, 0.0, -0.05], [0.0, 0.0, 0.12, 0.62], [0.0, 0.0, 0.0, 1.0]]],
      "gt_scales": [[0.7, 0.5, 0.5]],
      "gt_handle_visibility": [true],
      "pred_class_ids": [6],
      "pred_bboxes": [[178, 252, 301, 388]],
      "pred_RTs": [[[0.118, 0.0, 0.021, 0.021], [0.0, 0.12, 0.0, -0.049], [-0.021, 0.0, 0.118, 0.63],
                    [0.0, 0.0, 0.0, 1.0]]],
      "pred_scales": [[0.68, 0.52, 0.5]],
      "pred_scores": [0.97]
    }
"""

from __future__ import annotations

import io
import json
import os
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from acr_pose_core.categories import CATEGORIES, NUM_CATEGORIES
from acr_pose_core.evaluation.results import FrameResult
from acr_pose_core.fileio import write_atomically

__all__ = [
    "COMMUNITY_KEYS",
    "OPTIONAL_KEYS",
    "RestrictedUnpickler",
    "ResultsFileError",
    "frame_from_dict",
    "frame_to_dict",
    "load_frame",
    "load_pickle",
    "load_results",
    "save_frame",
]

COMMUNITY_KEYS: tuple[str, ...] = (
    "gt_class_ids",
    "gt_bboxes",
    "gt_RTs",
    "gt_scales",
    "gt_handle_visibility",
    "pred_class_ids",
    "pred_bboxes",
    "pred_scores",
    "pred_RTs",
    "pred_scales",
)
"""The keys of a community result dict (and of an "acr" file)."""
OPTIONAL_KEYS: frozenset[str] = frozenset({"gt_bboxes", "pred_bboxes"})
"""Community keys that may be missing."""

_IMAGE_PATH_KEY = "image_path"
_PROGRESS_MIN_FILES = 200  # below this many files a progress bar is noise
_PATTERNS = {"spd": ("results_*.pkl",), "acr": ("*.npz", "*.json")}  # spd: as SPD's own evaluate script globs
_LAST_ROW = np.array([0.0, 0.0, 0.0, 1.0])


class ResultsFileError(ValueError):
    """A result file cannot be read or holds invalid data. The message names the file."""


# ---------------------------------------------------------------------------------------------------------------------
# Restricted unpickling


class _CheckedArray(np.ndarray):
    """What ``numpy.ndarray`` means while a pickle loads: numpy builds an array as an empty shell (``_reconstruct``
    with shape ``(0,)``) and then fills it from its state (``__setstate__``). Both steps are checked here before
    numpy runs them: a shell must be empty, and a state's data must be exactly what its shape and dtype say, bytes
    for a plain dtype, a list of that many elements for an object array. numpy trusts the state: a 199-byte pickle
    with a huge shape and a short list crashed the interpreter (segmentation fault), a huge shape with short bytes
    reserved gigabytes before it was refused. :func:`_plain` turns the loaded arrays back into ``numpy.ndarray``."""

    def __new__(cls, shape: Any = (0,), dtype: Any = float, *args: Any, **kwargs: Any) -> _CheckedArray:
        if args or kwargs or _elements(shape) != 0:
            raise pickle.UnpicklingError(f"an array may only be built empty and then filled, got shape {shape!r}")
        return np.ndarray.__new__(cls, shape, dtype)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("malformed array state")
        shape, dtype, _, data = state[-4:]
        n = _elements(shape)
        dtype = np.dtype(dtype)
        if dtype.hasobject:
            ok = isinstance(data, list) and len(data) == n
        else:
            ok = isinstance(data, (bytes, bytearray, str)) and len(data) == n * dtype.itemsize
        if not ok:
            raise pickle.UnpicklingError(
                f"array state of shape {tuple(shape)} and dtype {dtype} holds {type(data).__name__} of "
                f"{len(data) if hasattr(data, '__len__') else '?'} entries, not what the shape says"
            )
        np.ndarray.__setstate__(self, state)


def _elements(shape: Any) -> int:
    if not isinstance(shape, tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise pickle.UnpicklingError(f"malformed array shape {shape!r}")
    return int(np.prod(shape, dtype=object)) if shape else 1


def _plain(obj: Any) -> Any:
    """``obj`` with every :class:`_CheckedArray` (inside containers and object arrays too) as a plain ndarray."""
    if isinstance(obj, _CheckedArray):
        arr = obj.view(np.ndarray)
        if arr.dtype.hasobject:
            for index, value in np.ndenumerate(arr):
                arr[index] = _plain(value)
        return arr
    if isinstance(obj, dict):
        for key in list(obj):
            obj[key] = _plain(obj[key])
        return obj
    if isinstance(obj, list):
        obj[:] = [_plain(v) for v in obj]
        return obj
    if isinstance(obj, tuple):
        return type(obj)(_plain(v) for v in obj) if type(obj) is tuple else obj
    return obj


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """``(module, name) -> object`` that result pickles may reference.

    What numpy emits (checked with numpy 2 and pickle protocols 0..5, for arrays of numeric, bool, string, record
    and object dtypes, 0-d, empty, Fortran-ordered and strided arrays, numpy scalars and dtypes):
    ``multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype`` (protocols 0..4, and 5 for object or strided
    arrays), ``numeric._frombuffer`` (protocol 5), ``multiarray.scalar`` (numpy scalars), and under protocols < 3
    ``_codecs.encode`` for the raw bytes. numpy 1 writes ``numpy.core.*``, numpy 2 ``numpy._core.*``; both map to
    the functions of the installed numpy, taken from what its own objects reduce to rather than from private
    modules. Plain containers are built by opcodes; only ``set``, ``frozenset``, ``complex``, ``bytes``,
    ``bytearray`` and ``OrderedDict`` are ever referenced by name. ``copyreg._reconstructor`` is not needed by
    numpy and not admitted.

    The two Python functions are fresh closures on every call: a pickle can set attributes on any object it names
    (the BUILD opcode), and that must not outlive one load nor reach numpy's own functions. Everything else admitted
    is an immutable type or a builtin function.
    """
    scalar = np.float64(0.0).__reduce__()[0]

    def reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        # numpy's multiarray._reconstruct(ndarray, (0,), b"b"): the empty shell its __setstate__ then fills
        return _CheckedArray.__new__(_CheckedArray, shape, dtype)

    numpy_frombuffer = np.zeros(1).__reduce_ex__(5)[0]

    def frombuffer(buf: Any, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
        return numpy_frombuffer(buf, dtype, shape, order)

    def latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        # Protocols 0-2 rebuild ``bytes`` as ``_codecs.encode(text, "latin1")``; no other codec is admitted.
        if not isinstance(obj, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError(f"_codecs.encode is only admitted for latin-1 text, not {encoding!r}")
        return obj.encode("latin-1", errors)

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): _CheckedArray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): latin1_encode,
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "bytes"): bytes,
        ("builtins", "bytearray"): bytearray,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    # numpy >= 1.25: the DType classes (Float64DType, ...). numpy 2 names them when a DType class itself was pickled
    # (arrays and dtype instances don't need them); they are immutable types whose call only builds a dtype.
    dtypes = getattr(np, "dtypes", None)
    for name in dir(dtypes) if dtypes is not None else ():
        cls = getattr(dtypes, name)
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            allowed[("numpy.dtypes", name)] = cls
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that builds only numpy arrays, numpy scalars, dtypes and plain containers.

    Any other global (``os.system``, ``numpy.load``, a user class, ...) raises :class:`ResultsFileError` naming the
    source and the refused ``module.name`` before it is looked up, so nothing it names runs. Object arrays are
    admitted, but their elements are unpickled by this same class, so they too can only be the types above.

    Args:
        file: binary file object holding the pickle.
        source: file path (or other label) named in errors.
        encoding: how Python 2 ``str`` objects are decoded; ``latin1`` keeps numpy's raw bytes intact.
    """

    def __init__(self, file: io.BufferedIOBase, source: str, encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)
        self._source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        """The admitted object for ``module.name``; raise :class:`ResultsFileError` for anything else."""
        if module == "__builtin__":  # Python 2 name of builtins
            module = "builtins"
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise ResultsFileError(
                f"{self._source}: refusing to unpickle '{module}.{name}': result pickles may only hold numpy "
                "arrays, numpy scalars and plain containers"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids: result pickles never use them."""
        raise ResultsFileError(f"{self._source}: refusing a pickle persistent id ({pid!r})")


def load_pickle(path: str | os.PathLike) -> object:
    """Load a pickle with :class:`RestrictedUnpickler` (Python 2 strings decoded as latin-1).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ResultsFileError: the pickle references anything but numpy arrays, scalars, dtypes and plain containers, or
            is corrupt or truncated. The message names ``path``.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        return _plain(RestrictedUnpickler(io.BytesIO(data), source=str(path)).load())
    except ResultsFileError:
        raise
    except Exception as e:  # the unpickler's guts raise many types (EOFError, ValueError, struct.error, ...)
        raise ResultsFileError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e


# ---------------------------------------------------------------------------------------------------------------------
# Dict <-> FrameResult


def _numeric(d: Mapping, key: str, source: str) -> np.ndarray:
    """``d[key]`` as a numeric (bool, int or float) array."""
    try:
        arr = np.asarray(d[key])
        if arr.dtype == object:
            arr = arr.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ResultsFileError(f"{source}: {key} cannot be read as an array of numbers ({e})") from e
    if arr.dtype.kind not in "biuf":
        raise ResultsFileError(f"{source}: {key} has dtype {arr.dtype}, expected numbers")
    return arr


def _shaped(arr: np.ndarray, key: str, source: str, rows: str, tail: tuple[int, ...]) -> np.ndarray:
    """Check ``arr`` has shape ``(n, *tail)``; an empty array of any shape becomes ``(0, *tail)``."""
    if arr.size == 0:
        return arr.reshape((0, *tail))
    if arr.ndim != 1 + len(tail) or arr.shape[1:] != tail:
        expected = ", ".join([rows, *map(str, tail)])
        raise ResultsFileError(f"{source}: {key} has shape {arr.shape}, expected ({expected})")
    return arr


def _check_rows(arr: np.ndarray, key: str, source: str, n: int, ids_key: str) -> None:
    if len(arr) != n:
        raise ResultsFileError(f"{source}: {key} has {len(arr)} rows but {ids_key} has {n} entries")


def _check_finite(arr: np.ndarray, key: str, source: str) -> None:
    bad = ~np.isfinite(arr).reshape(len(arr), -1).all(axis=1) if arr.size else np.zeros(0, dtype=bool)
    if bad.any():
        raise ResultsFileError(f"{source}: {key}[{int(np.flatnonzero(bad)[0])}] has a non-finite value")


def _class_ids(d: Mapping, key: str, source: str) -> np.ndarray:
    arr = _numeric(d, key, source)
    arr = _shaped(arr, key, source, "G" if key.startswith("gt") else "P", ())
    if arr.dtype.kind == "b":  # True would read as class 1 (bottle): a mask is not a list of class ids
        raise ResultsFileError(f"{source}: {key} holds booleans, expected integer class ids 1..{NUM_CATEGORIES}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise ResultsFileError(f"{source}: {key} holds non-integer class ids")
    ids = arr.astype(np.int64)
    bad = np.flatnonzero((ids < 1) | (ids > NUM_CATEGORIES))
    if len(bad):
        names = ", ".join(f"{i + 1} {n}" for i, n in enumerate(CATEGORIES))
        raise ResultsFileError(
            f"{source}: {key}[{int(bad[0])}] is class id {int(ids[bad[0]])}, not a NOCS category id ({names})"
        )
    return ids


def _poses(d: Mapping, key: str, source: str, n: int, ids_key: str) -> np.ndarray:
    arr = _shaped(_numeric(d, key, source), key, source, ids_key[0].upper(), (4, 4)).astype(np.float64)
    _check_rows(arr, key, source, n, ids_key)
    _check_finite(arr, key, source)
    bad = np.flatnonzero(np.any(np.abs(arr[:, 3, :] - _LAST_ROW) > 1e-6, axis=1))
    if len(bad):
        row = arr[bad[0], 3].tolist()
        raise ResultsFileError(f"{source}: {key}[{int(bad[0])}] has last row {row}, expected [0, 0, 0, 1]")
    det = np.linalg.det(arr[:, :3, :3]) if len(arr) else np.zeros(0)  # s³ for s·R
    flat = np.flatnonzero(~(det > 1e-12))
    if len(flat):
        raise ResultsFileError(
            f"{source}: {key}[{int(flat[0])}] is not a pose s·R with s > 0 (determinant {det[flat[0]]:.3g}: a zero "
            "or mirrored scale)"
        )
    return arr


def frame_from_dict(d: Mapping, name: str) -> FrameResult:
    """Build a :class:`FrameResult` from a dict with the community's keys, checking everything on the way.

    Key mapping: ``gt_RTs → gt_sRT``, ``gt_scales → gt_size``, ``gt_handle_visibility → gt_handle_visible``,
    ``pred_RTs → pred_sRT``, ``pred_scales → pred_size``, ``gt_bboxes → gt_boxes_2d``,
    ``pred_bboxes → pred_boxes_2d``; the others keep their names. Shapes, dtypes and units: see the module docstring.
    The two ``*_bboxes`` keys are optional; other keys (such as ``image_path``) are ignored.

    Args:
        d: the frame's arrays (numpy arrays or nested lists). Empty arrays may have shape ``(0,)``.
        name: the frame's name (usually its file name); becomes ``FrameResult.name`` and is named in errors.

    Raises:
        ResultsFileError: a required key is missing; shapes disagree; a pose, size or score is not finite; a class id
            is outside 1..6 or boolean; a size is negative; a pose's last row is not ``[0, 0, 0, 1]``.
    """
    return _frame_from_dict(d, name, source=name)


def _frame_from_dict(d: Mapping, name: str, source: str) -> FrameResult:
    if not isinstance(d, Mapping):
        raise ResultsFileError(f"{source}: expected a dict of arrays, got {type(d).__name__}")
    missing = [k for k in COMMUNITY_KEYS if k not in OPTIONAL_KEYS and k not in d]
    if missing:
        if not any(k in d for k in COMMUNITY_KEYS):
            raise ResultsFileError(
                f"{source}: not a result file (none of the keys {', '.join(COMMUNITY_KEYS)}; "
                f"found {', '.join(map(str, list(d)[:8])) or 'no keys'}). Is it a summary file, such as SPD's "
                "mAP_Acc.pkl? Move it out of the directory"
            )
        raise ResultsFileError(
            f"{source}: missing key {missing[0]!r}" + (f" (and {missing[1:]})" if missing[1:] else "")
        )

    gt_ids = _class_ids(d, "gt_class_ids", source)
    pred_ids = _class_ids(d, "pred_class_ids", source)
    g, p = len(gt_ids), len(pred_ids)
    gt_srt = _poses(d, "gt_RTs", source, g, "gt_class_ids")
    pred_srt = _poses(d, "pred_RTs", source, p, "pred_class_ids")

    arrays: dict[str, np.ndarray] = {}
    for key, tail, n, ids_key, finite in (
        ("gt_scales", (3,), g, "gt_class_ids", True),
        ("gt_handle_visibility", (), g, "gt_class_ids", False),
        ("pred_scales", (3,), p, "pred_class_ids", True),
        ("pred_scores", (), p, "pred_class_ids", True),
        ("gt_bboxes", (4,), g, "gt_class_ids", False),
        ("pred_bboxes", (4,), p, "pred_class_ids", False),
    ):
        if key not in d or d[key] is None:  # only the optional boxes get here
            continue
        arr = _shaped(_numeric(d, key, source), key, source, ids_key[0].upper(), tail)
        _check_rows(arr, key, source, n, ids_key)
        if finite:
            _check_finite(arr, key, source)
        if key.endswith("_scales") and arr.size and (arr < 0).any():
            row = int(np.flatnonzero((arr < 0).any(axis=1))[0])
            raise ResultsFileError(f"{source}: {key}[{row}] = {arr[row].tolist()} has a negative box extent")
        arrays[key] = arr

    return FrameResult(
        gt_class_ids=gt_ids,
        gt_sRT=gt_srt,
        gt_size=arrays["gt_scales"],
        gt_handle_visible=arrays["gt_handle_visibility"] != 0,
        pred_class_ids=pred_ids,
        pred_sRT=pred_srt,
        pred_size=arrays["pred_scales"],
        pred_scores=arrays["pred_scores"],
        name=name,
        gt_boxes_2d=arrays.get("gt_bboxes"),
        pred_boxes_2d=arrays.get("pred_bboxes"),
    )


def frame_to_dict(frame: FrameResult) -> dict[str, np.ndarray]:
    """The inverse of :func:`frame_from_dict`: ``frame``'s arrays under the community keys.

    ``gt_bboxes`` / ``pred_bboxes`` are present only when the frame has boxes. ``gt_handle_visibility`` is bool.
    """
    out: dict[str, np.ndarray] = {
        "gt_class_ids": np.asarray(frame.gt_class_ids, dtype=np.int64),
        "gt_RTs": np.asarray(frame.gt_sRT, dtype=np.float64),
        "gt_scales": np.asarray(frame.gt_size, dtype=np.float64),
        "gt_handle_visibility": np.asarray(frame.gt_handle_visible, dtype=bool),
        "pred_class_ids": np.asarray(frame.pred_class_ids, dtype=np.int64),
        "pred_RTs": np.asarray(frame.pred_sRT, dtype=np.float64),
        "pred_scales": np.asarray(frame.pred_size, dtype=np.float64),
        "pred_scores": np.asarray(frame.pred_scores, dtype=np.float64),
    }
    if frame.gt_boxes_2d is not None:
        out["gt_bboxes"] = np.asarray(frame.gt_boxes_2d)
    if frame.pred_boxes_2d is not None:
        out["pred_bboxes"] = np.asarray(frame.pred_boxes_2d)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The "acr" format: one .npz or .json per frame


def save_frame(path: str | os.PathLike, frame: FrameResult, *, image_path: str | None = None) -> Path:
    """Write one frame in the "acr" format; ``.npz`` or ``.json`` by the suffix of ``path``.

    The file is written atomically (temporary file, then rename) and only after checking that it would load back.

    Args:
        path: destination ending in ``.npz`` or ``.json``; its directory must exist.
        frame: the frame to write.
        image_path: optional colour image path stored under ``image_path``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: the suffix is neither ``.npz`` nor ``.json``.
        ResultsFileError: the frame would not load back (non-finite pose, class id outside 1..6, ...).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".json"):
        raise ValueError(f"{path}: the acr format is .npz or .json, not {path.suffix or 'no suffix'!r}")
    arrays = frame_to_dict(frame)
    _frame_from_dict(arrays, frame.name, source=str(path))  # refuse to write what we could not read back
    if suffix == ".npz":
        payload: dict[str, Any] = dict(arrays)
        if image_path is not None:
            payload[_IMAGE_PATH_KEY] = np.array(str(image_path))  # 0-d unicode: loads without pickle
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **payload)
        write_atomically(path, buffer.getvalue())
    else:
        doc: dict[str, Any] = {} if image_path is None else {_IMAGE_PATH_KEY: str(image_path)}
        doc.update({k: arrays[k].tolist() for k in COMMUNITY_KEYS if k in arrays})
        write_atomically(path, (json.dumps(doc, allow_nan=False) + "\n").encode("utf-8"))
    return path


def _read_acr_file(path: Path) -> dict[str, Any]:
    """The raw key -> value mapping of one "acr" file."""
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                d: dict[str, Any] = {k: npz[k] for k in npz.files}
        else:
            d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except Exception as e:  # zipfile.BadZipFile, JSONDecodeError, pickled-object refusal, UnicodeDecodeError, ...
        raise ResultsFileError(f"{path}: not a readable acr {path.suffix} file ({type(e).__name__}: {e})") from e
    if not isinstance(d, dict):
        raise ResultsFileError(f"{path}: expected a JSON object of arrays, got {type(d).__name__}")
    unknown = sorted(set(d) - set(COMMUNITY_KEYS) - {_IMAGE_PATH_KEY})
    if unknown:
        raise ResultsFileError(f"{path}: unknown key(s) {unknown}; the acr format holds {', '.join(COMMUNITY_KEYS)}")
    if _IMAGE_PATH_KEY in d:
        image = d[_IMAGE_PATH_KEY]
        if isinstance(image, np.ndarray) and image.ndim == 0 and image.dtype.kind == "U":
            image = str(image)
        if not isinstance(image, str):
            raise ResultsFileError(f"{path}: image_path must be a string")
        d[_IMAGE_PATH_KEY] = image
    return d


def load_frame(path: str | os.PathLike) -> FrameResult:
    """Read one "acr" file (``.npz`` or ``.json``); the frame's name is the file name.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ResultsFileError: the file is unreadable, has unknown keys or invalid data (see :func:`frame_from_dict`).
    """
    path = Path(path)
    return _frame_from_dict(_read_acr_file(path), path.name, source=str(path))


# ---------------------------------------------------------------------------------------------------------------------
# Directories


def _frames_from_pickle(path: Path) -> list[FrameResult]:
    obj = load_pickle(path)
    if isinstance(obj, (list, tuple)):
        return [_frame_from_dict(item, f"{path.name}[{i}]", source=f"{path}[{i}]") for i, item in enumerate(obj)]
    if isinstance(obj, Mapping):
        return [_frame_from_dict(obj, path.name, source=str(path))]
    raise ResultsFileError(f"{path}: expected a dict of arrays or a list of them, got {type(obj).__name__}")


def _matching(directory: Path, patterns: tuple[str, ...]) -> list[Path]:
    found = {p for pattern in patterns for p in directory.glob(pattern) if p.is_file()}
    return sorted(found, key=lambda p: p.name)


def load_results(pred_dir: str | os.PathLike, fmt: Literal["acr", "spd"]) -> list[FrameResult]:
    """Read every frame of a prediction set, in order of file name.

    Args:
        pred_dir: directory holding the files (not searched recursively).
        fmt: ``"spd"``: every ``results_*.pkl`` (community pickles, one frame dict or a list of them per file;
            the name pattern of NOCS and SPD, which also keep summaries such as ``mAP_Acc.pkl`` in the folder);
            ``"acr"``: every ``*.npz`` and ``*.json`` (see the module docstring).

    Returns:
        One :class:`FrameResult` per frame, named by its file name (``name[i]`` for the items of a list).

    Raises:
        ValueError: ``fmt`` is not ``"acr"`` or ``"spd"``.
        FileNotFoundError / NotADirectoryError: ``pred_dir`` does not exist or is not a directory.
        ResultsFileError: no file matches, a frame is saved both as ``NAME.npz`` and ``NAME.json``, or a file is
            unreadable or invalid (the message names it).
    """
    if fmt not in _PATTERNS:
        raise ValueError(f"unknown results format {fmt!r}; expected one of {sorted(_PATTERNS)}")
    directory = Path(pred_dir)
    if not directory.exists():
        raise FileNotFoundError(f"{directory}: results directory does not exist")
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory}: not a directory")

    paths = _matching(directory, _PATTERNS[fmt])
    if not paths:
        patterns = " or ".join(repr(p) for p in _PATTERNS[fmt])
        message = f"{directory}: no {patterns} files for format {fmt!r}"
        for other, other_patterns in _PATTERNS.items():
            n = len(_matching(directory, other_patterns)) if other != fmt else 0
            if n:
                message += f"; it holds {n} {' / '.join(other_patterns)} file(s): use format {other!r}"
        raise ResultsFileError(message)
    stems: dict[str, list[str]] = {}
    for path in paths:
        stems.setdefault(path.stem, []).append(path.name)
    twice = [" and ".join(names) for names in stems.values() if len(names) > 1]
    if fmt == "acr" and twice:  # one frame saved in both forms would count twice in every metric
        raise ResultsFileError(
            f"{directory}: {len(twice)} frame(s) saved twice ({'; '.join(twice[:3])}): keep one file per frame"
        )

    frames: list[FrameResult] = []
    disable = None if len(paths) > _PROGRESS_MIN_FILES else True  # None: tqdm shows a bar only on a TTY
    for path in tqdm(paths, desc=f"reading {fmt} results", unit="file", disable=disable):
        frames.extend(_frames_from_pickle(path) if fmt == "spd" else [load_frame(path)])
    return frames
