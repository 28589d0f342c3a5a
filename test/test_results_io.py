"""Tests of acr_pose_core.evaluation.results_io: the restricted unpickler, key mapping, acr files, directories."""

from __future__ import annotations

import codecs
import io
import json
import os
import pickle
import stat
import struct
import textwrap

import numpy as np
import pytest

from acr_pose_core.evaluation.results import FrameResult
from acr_pose_core.evaluation.results_io import (
    COMMUNITY_KEYS,
    ResultsFileError,
    frame_from_dict,
    frame_to_dict,
    load_frame,
    load_pickle,
    load_results,
    save_frame,
)


def _srt(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4, 4) random sRT: scale 0.05..0.3, a proper rotation, translation up to 1 m."""
    out = np.zeros((n, 4, 4))
    for i in range(n):
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        out[i, :3, :3] = rng.uniform(0.05, 0.3) * q
        out[i, :3, 3] = rng.uniform(-0.5, 1.0, size=3)
        out[i, 3, 3] = 1.0
    return out


def _community_dict(g: int = 3, p: int = 4, seed: int = 0, boxes: bool = True) -> dict[str, np.ndarray]:
    """A frame in the community's layout, with the dtypes the reference code writes."""
    rng = np.random.default_rng(seed)
    d = {
        "gt_class_ids": rng.integers(1, 7, size=g).astype(np.int32),
        "gt_RTs": _srt(rng, g).astype(np.float32),
        "gt_scales": rng.uniform(0.2, 1.0, size=(g, 3)),
        "gt_handle_visibility": rng.integers(0, 2, size=g),
        "pred_class_ids": rng.integers(1, 7, size=p),
        "pred_RTs": _srt(rng, p),
        "pred_scales": rng.uniform(0.2, 1.0, size=(p, 3)).astype(np.float32),
        "pred_scores": rng.uniform(0.0, 1.0, size=p).astype(np.float32),
    }
    if boxes:
        d["gt_bboxes"] = rng.integers(0, 480, size=(g, 4)).astype(np.int32)
        d["pred_bboxes"] = rng.integers(0, 480, size=(p, 4))
    return d


def _assert_frames_equal(a: FrameResult, b: FrameResult) -> None:
    for key in (
        "gt_class_ids",
        "gt_sRT",
        "gt_size",
        "gt_handle_visible",
        "pred_class_ids",
        "pred_sRT",
        "pred_size",
        "pred_scores",
    ):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    for key in ("gt_boxes_2d", "pred_boxes_2d"):
        x, y = getattr(a, key), getattr(b, key)
        assert (x is None) == (y is None), key
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=key)


def _assert_matches_dict(frame: FrameResult, d: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(frame.gt_class_ids, d["gt_class_ids"])
    np.testing.assert_array_equal(frame.gt_sRT, d["gt_RTs"].astype(np.float64))
    np.testing.assert_array_equal(frame.gt_size, d["gt_scales"])
    np.testing.assert_array_equal(frame.gt_handle_visible, d["gt_handle_visibility"] != 0)
    np.testing.assert_array_equal(frame.pred_class_ids, d["pred_class_ids"])
    np.testing.assert_array_equal(frame.pred_sRT, d["pred_RTs"])
    np.testing.assert_array_equal(frame.pred_size, d["pred_scales"].astype(np.float64))
    np.testing.assert_array_equal(frame.pred_scores, d["pred_scores"].astype(np.float64))
    if "gt_bboxes" in d:
        np.testing.assert_array_equal(frame.gt_boxes_2d, d["gt_bboxes"])
        np.testing.assert_array_equal(frame.pred_boxes_2d, d["pred_bboxes"])


# --------------------------------------------------------------------------------------------------------------------
# Key mapping and validation


def test_frame_from_dict_maps_keys() -> None:
    d = _community_dict()
    frame = frame_from_dict(d, "f.pkl")
    assert frame.name == "f.pkl"
    assert (frame.num_gt, frame.num_pred) == (3, 4)
    assert frame.gt_sRT.dtype == np.float64 and frame.gt_class_ids.dtype == np.int64
    _assert_matches_dict(frame, d)


def test_frame_to_dict_inverts() -> None:
    frame = frame_from_dict(_community_dict(), "f")
    d = frame_to_dict(frame)
    assert set(d) == set(COMMUNITY_KEYS)
    _assert_frames_equal(frame_from_dict(d, "f"), frame)
    no_boxes = frame_to_dict(frame_from_dict(_community_dict(boxes=False), "g"))
    assert "gt_bboxes" not in no_boxes and "pred_bboxes" not in no_boxes


def test_boxes_optional() -> None:
    frame = frame_from_dict(_community_dict(boxes=False), "f")
    assert frame.gt_boxes_2d is None and frame.pred_boxes_2d is None


@pytest.mark.parametrize("key", [k for k in COMMUNITY_KEYS if not k.endswith("bboxes")])
def test_missing_key(key: str) -> None:
    d = _community_dict()
    del d[key]
    with pytest.raises(ResultsFileError, match=rf"some/file\.pkl.*{key}"):
        frame_from_dict(d, "some/file.pkl")


def test_not_a_result_dict() -> None:
    with pytest.raises(ResultsFileError, match=r"mAP_Acc\.pkl: not a result file"):
        frame_from_dict({"iou_aps": np.zeros(3)}, "mAP_Acc.pkl")
    with pytest.raises(ResultsFileError, match=r"x\.pkl: expected a dict"):
        frame_from_dict([1, 2], "x.pkl")  # type: ignore[arg-type]


@pytest.mark.parametrize("key, bad", [("gt_class_ids", 7), ("pred_class_ids", 0), ("pred_class_ids", -1)])
def test_bad_class_id(key: str, bad: int) -> None:
    d = _community_dict()
    d[key] = d[key].copy()
    d[key][1] = bad
    with pytest.raises(ResultsFileError, match=rf"f\.pkl: {key}\[1\] is class id {bad}, not a NOCS category"):
        frame_from_dict(d, "f.pkl")


def test_non_integer_class_id() -> None:
    d = _community_dict()
    d["gt_class_ids"] = np.array([1.0, 2.5, 3.0])
    with pytest.raises(ResultsFileError, match="non-integer"):
        frame_from_dict(d, "f")
    d["gt_class_ids"] = np.array([1.0, 2.0, 3.0])  # integral floats are fine
    np.testing.assert_array_equal(frame_from_dict(d, "f").gt_class_ids, [1, 2, 3])


@pytest.mark.parametrize("key", ["gt_class_ids", "pred_class_ids"])
def test_boolean_class_ids_are_refused(key: str) -> None:
    d = _community_dict()
    d[key] = np.ones(len(d[key]), dtype=bool)  # would otherwise read as class 1 (bottle) everywhere
    with pytest.raises(ResultsFileError, match=rf"f: {key} holds booleans"):
        frame_from_dict(d, "f")


@pytest.mark.parametrize("key", ["gt_scales", "pred_scales"])
def test_negative_sizes_are_refused(key: str) -> None:
    d = _community_dict()
    d[key] = d[key].copy()
    d[key][1, 2] = -0.1
    with pytest.raises(ResultsFileError, match=rf"f: {key}\[1\] = .* has a negative box extent"):
        frame_from_dict(d, "f")


@pytest.mark.parametrize("key", ["gt_RTs", "pred_RTs"])
def test_bad_last_row(key: str) -> None:
    d = _community_dict()
    d[key] = d[key].copy()
    d[key][2, 3] = [0.0, 0.0, 0.1, 1.0]
    with pytest.raises(ResultsFileError, match=rf"f: {key}\[2\] has last row .* expected \[0, 0, 0, 1\]"):
        frame_from_dict(d, "f")


@pytest.mark.parametrize("key", ["gt_RTs", "pred_RTs"])
@pytest.mark.parametrize("block", ["zero", "mirrored"])
def test_a_zero_or_mirrored_scale_is_refused(key: str, block: str) -> None:
    d = _community_dict()
    d[key] = d[key].copy()
    d[key][1, :3, :3] = 0.0 if block == "zero" else d[key][1, :3, :3] @ np.diag([1.0, 1.0, -1.0])
    with pytest.raises(ResultsFileError, match=rf"f: {key}\[1\] is not a pose s·R with s > 0"):
        frame_from_dict(d, "f")


@pytest.mark.parametrize("key", ["gt_RTs", "pred_RTs", "gt_scales", "pred_scales", "pred_scores"])
def test_non_finite(key: str) -> None:
    d = _community_dict()
    d[key] = d[key].astype(np.float64)
    d[key].reshape(len(d[key]), -1)[1, 0] = np.nan
    with pytest.raises(ResultsFileError, match=rf"f: {key}\[1\] has a non-finite value"):
        frame_from_dict(d, "f")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("gt_RTs", np.zeros((3, 3, 3)), r"gt_RTs has shape \(3, 3, 3\), expected \(G, 4, 4\)"),
        ("pred_scales", np.zeros((4, 2)), r"pred_scales has shape \(4, 2\), expected \(P, 3\)"),
        ("pred_scores", np.zeros(3), "pred_scores has 3 rows but pred_class_ids has 4 entries"),
        ("gt_handle_visibility", np.ones(4), "gt_handle_visibility has 4 rows but gt_class_ids has 3"),
        ("gt_bboxes", np.zeros((2, 4)), "gt_bboxes has 2 rows"),
        ("gt_scales", np.array(["a", "b", "c"]), "dtype <U1, expected numbers"),
        ("pred_RTs", [[1, 2], [3]], "cannot be read as an array"),
    ],
)
def test_inconsistent_shapes(key: str, value: object, message: str) -> None:
    d = _community_dict()
    d[key] = value  # type: ignore[assignment]
    with pytest.raises(ResultsFileError, match=message):
        frame_from_dict(d, "f")


@pytest.mark.parametrize("g, p", [(0, 0), (0, 2), (2, 0)])
def test_empty_frames(g: int, p: int) -> None:
    d = _community_dict(g, p)
    # The reference code writes empty predictions as shape (0,) arrays, not (0, 4, 4).
    for key, value in list(d.items()):
        if value.size == 0:
            d[key] = np.zeros((0,))
    frame = frame_from_dict(d, "empty")
    assert (frame.num_gt, frame.num_pred) == (g, p)
    assert frame.gt_sRT.shape == (g, 4, 4) and frame.pred_sRT.shape == (p, 4, 4)
    assert frame.gt_size.shape == (g, 3) and frame.pred_size.shape == (p, 3)
    assert frame.gt_boxes_2d.shape == (g, 4) and frame.pred_boxes_2d.shape == (p, 4)


# --------------------------------------------------------------------------------------------------------------------
# Pickles


def _write_pickle(path, obj, protocol: int) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_round_trip(tmp_path, protocol: int) -> None:
    d = _community_dict()
    _write_pickle(tmp_path / "results_scene_1_0000.pkl", d, protocol)
    frames = load_results(tmp_path, "spd")
    assert [f.name for f in frames] == ["results_scene_1_0000.pkl"]
    _assert_matches_dict(frames[0], d)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_pickle_admits_numpy_variety(tmp_path, protocol: int) -> None:
    """Arrays and scalars of many dtypes, 0-d, empty, strided, object arrays of numbers, plain containers."""
    from collections import OrderedDict

    obj = {
        "f4": np.arange(6, dtype=np.float32).reshape(2, 3),
        "i8_0d": np.array(7),
        "bool": np.array([True, False]),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "strided": np.arange(10.0)[::3],
        "empty": np.zeros((0, 4, 4)),
        "big_endian": np.arange(3, dtype=">f8"),
        "unicode": np.array(["a", "bc"]),
        "record": np.zeros(2, dtype=[("a", "f4"), ("b", "i2")]),
        "objects": np.array([1, 2.5, "x", None], dtype=object),
        "scalar": np.float64(2.5),
        "int_scalar": np.int32(3),
        "containers": [(1, 2), {3, 4}, frozenset({5}), 1 + 2j, b"raw", bytearray(b"ba"), OrderedDict(a=1)],
    }
    _write_pickle(tmp_path / "x.pkl", obj, protocol)
    back = load_pickle(tmp_path / "x.pkl")
    assert back.keys() == obj.keys()
    for key in obj:
        if isinstance(obj[key], np.ndarray):
            np.testing.assert_array_equal(back[key], obj[key], err_msg=key)
            # numpy itself restores byte order as native under protocols < 5
            assert back[key].dtype.newbyteorder("=") == obj[key].dtype.newbyteorder("="), key
        else:
            assert back[key] == obj[key], key


def test_numpy1_global_names(tmp_path) -> None:
    """numpy 1.x writes numpy.core.multiarray; protocol 2 stores module names as text, so rewrite them."""
    d = _community_dict()
    data = pickle.dumps(d, protocol=2)
    assert b"numpy._core.multiarray\n" in data
    old = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"numpy._core" not in old
    (tmp_path / "results_old.pkl").write_bytes(old)
    _assert_matches_dict(load_results(tmp_path, "spd")[0], d)


def _py2_array_pickle(arr: np.ndarray) -> bytes:
    """Protocol-2 opcodes for a little-endian float64 1-D array as Python 2 numpy writes it (data as py2 str)."""
    assert arr.dtype == np.dtype("<f8") and arr.ndim == 1 and len(arr) < 256
    data = arr.tobytes()
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
        + b"(K\x01K"
        + bytes([len(arr)])
        + b"\x85cnumpy\ndtype\nU\x02f8K\x00K\x01\x87R(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89"
        + b"T"
        + struct.pack("<i", len(data))
        + data
        + b"tb"
    )


def test_python2_pickle(tmp_path) -> None:
    """A Python 2 pickle: py2 str keys and raw array bytes as py2 str, read back through latin-1."""
    values = np.array([0.0, 1.5, -2.25, 1e-300, 255.0 / 7])  # bytes above 0x7f, as latin-1 must keep them
    payload = b"\x80\x02}(U\x06gt_RTs" + _py2_array_pickle(values) + b"U\x04nameU\x03abcu."
    (tmp_path / "py2.pkl").write_bytes(payload)
    back = load_pickle(tmp_path / "py2.pkl")
    assert back["name"] == "abc"
    np.testing.assert_array_equal(back["gt_RTs"], values)


def test_aggregated_list_pickle(tmp_path) -> None:
    ds = [_community_dict(seed=s) for s in range(3)]
    _write_pickle(tmp_path / "results_all.pkl", ds, 4)
    _write_pickle(tmp_path / "results_a_single.pkl", ds[0], 4)
    frames = load_results(tmp_path, "spd")
    assert [f.name for f in frames] == [
        "results_a_single.pkl",
        "results_all.pkl[0]",
        "results_all.pkl[1]",
        "results_all.pkl[2]",
    ]
    for f, d in zip(frames[1:], ds, strict=True):
        _assert_matches_dict(f, d)


def test_bad_item_in_list_names_index(tmp_path) -> None:
    ds = [_community_dict(seed=s) for s in range(2)]
    ds[1]["pred_class_ids"][0] = 9
    _write_pickle(tmp_path / "results_all.pkl", ds, 4)
    with pytest.raises(ResultsFileError, match=r"results_all\.pkl\[1\]: pred_class_ids\[0\] is class id 9"):
        load_results(tmp_path, "spd")


def test_spd_reads_results_pickles_only(tmp_path) -> None:
    _write_pickle(tmp_path / "results_a.pkl", _community_dict(seed=1), 4)
    _write_pickle(tmp_path / "mAP_Acc.pkl", {"iou_aps": np.zeros(3)}, 4)  # SPD's summary, kept beside the results
    assert [f.name for f in load_results(tmp_path, "spd")] == ["results_a.pkl"]


def test_pickle_of_wrong_type(tmp_path) -> None:
    _write_pickle(tmp_path / "results_n.pkl", 42, 4)
    with pytest.raises(ResultsFileError, match=r"results_n\.pkl: expected a dict of arrays or a list"):
        load_results(tmp_path, "spd")


class _Evil:
    """Runs a shell command when unpickled by an unrestricted unpickler."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _LoadsFile:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (np.load, (self.path,))


class _Rot13:
    def __reduce__(self):
        return (codecs.encode, ("abc", "rot13"))


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_malicious_pickle_refused_and_not_run(tmp_path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    d = _community_dict()
    d["pred_scores"] = _Evil(f"touch {marker}")  # hidden among valid arrays
    path = tmp_path / "results_evil.pkl"
    _write_pickle(path, d, protocol)
    with pytest.raises(ResultsFileError, match=r"results_evil\.pkl.*refusing to unpickle '(posix|nt|os)\.system'"):
        load_pickle(path)
    with pytest.raises(ResultsFileError, match="refusing"):
        load_results(tmp_path, "spd")
    assert not marker.exists(), "the pickled command ran"


@pytest.mark.parametrize("payload, refused", [(_LoadsFile("x.npy"), "numpy.load"), (_Rot13(), "rot13")])
def test_other_dangerous_globals_refused(tmp_path, payload: object, refused: str) -> None:
    path = tmp_path / "bad.pkl"
    _write_pickle(path, {"x": payload}, 2)
    with pytest.raises(ResultsFileError, match=rf"bad\.pkl.*{refused}"):
        load_pickle(path)


def test_persistent_id_refused(tmp_path) -> None:
    path = tmp_path / "pid.pkl"
    path.write_bytes(b"\x80\x02X\x03\x00\x00\x00abcQ.")  # BINPERSID
    with pytest.raises(ResultsFileError, match=r"pid\.pkl.*persistent id"):
        load_pickle(path)


@pytest.mark.parametrize("protocol", [2, 5])
def test_truncated_pickle(tmp_path, protocol: int) -> None:
    data = pickle.dumps(_community_dict(), protocol=protocol)
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultsFileError, match=r"cut\.pkl: not a readable pickle"):
        load_pickle(path)


class _ForgedArray:
    """Pickles as numpy does (an empty ``_reconstruct`` shell, then ``__setstate__``) with a state that lies."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        function, args, _ = np.zeros(0).__reduce__()
        return function, args, self.state


@pytest.mark.parametrize(
    "state, message",
    [
        ((1, (200_000_000,), np.dtype("O"), False, [1]), "holds list of 1 entries"),  # numpy itself segfaulted
        ((1, (400_000_000,), np.dtype("f4"), False, b"abc"), "holds bytes of 3 entries"),  # reserved 1.6 GB first
        ((1, (-1,), np.dtype("f4"), False, b""), "malformed array shape"),
        ((1, "x", np.dtype("f4"), False, b""), "malformed array shape"),
    ],
)
def test_a_forged_array_state_is_refused_before_numpy_sees_it(tmp_path, state, message) -> None:
    path = tmp_path / "forged.pkl"
    path.write_bytes(pickle.dumps({"pred_scores": _ForgedArray(state)}, protocol=2))
    with pytest.raises(ResultsFileError, match=rf"forged\.pkl: not a readable pickle .*{message}"):
        load_pickle(path)
    # numpy's own pickles of the same dtypes load, as plain arrays
    path.write_bytes(pickle.dumps({"a": np.arange(6, dtype="f4").reshape(2, 3), "o": np.array([1, "x"], object)}))
    loaded = load_pickle(path)
    assert type(loaded["a"]) is np.ndarray and type(loaded["o"]) is np.ndarray
    np.testing.assert_array_equal(loaded["a"], np.arange(6, dtype="f4").reshape(2, 3))
    assert loaded["o"].tolist() == [1, "x"]


def test_numpy_ndarray_cannot_be_called_to_allocate(tmp_path) -> None:
    path = tmp_path / "alloc.pkl"
    # push numpy.ndarray, the tuple ((10**12,),), REDUCE: ndarray((10**12,)) would reserve a terabyte
    path.write_bytes(b"\x80\x02cnumpy\nndarray\n\x8a\x06\x00\x10\xa5\xd4\xe8\x00\x85\x85R.")
    with pytest.raises(ResultsFileError, match="an array may only be built empty"):
        load_pickle(path)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(tmp_path, seed: int) -> None:
    path = tmp_path / "noise.pkl"
    path.write_bytes(b"\x80\x04" + np.random.default_rng(seed).bytes(300))
    with pytest.raises(ResultsFileError, match=r"noise\.pkl"):
        load_pickle(path)


def test_empty_pickle_file(tmp_path) -> None:
    path = tmp_path / "zero.pkl"
    path.write_bytes(b"")
    with pytest.raises(ResultsFileError, match=r"zero\.pkl"):
        load_pickle(path)


# --------------------------------------------------------------------------------------------------------------------
# The acr format


@pytest.mark.parametrize("suffix", [".npz", ".json"])
@pytest.mark.parametrize("g, p", [(3, 4), (0, 0), (0, 2), (2, 0)])
def test_acr_round_trip(tmp_path, suffix: str, g: int, p: int) -> None:
    frame = frame_from_dict(_community_dict(g, p), "orig")
    path = save_frame(tmp_path / f"f{suffix}", frame, image_path="scene_1/0000_color.png")
    assert path.exists()
    assert [q.name for q in tmp_path.iterdir()] == [f"f{suffix}"], "temporary file left behind"
    back = load_frame(path)
    assert back.name == f"f{suffix}"
    _assert_frames_equal(back, frame)


def test_acr_npz_loads_without_pickle(tmp_path) -> None:
    path = save_frame(tmp_path / "f.npz", frame_from_dict(_community_dict(), "f"), image_path="a.png")
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == set(COMMUNITY_KEYS) | {"image_path"}
        assert str(z["image_path"]) == "a.png"


def test_acr_json_is_plain(tmp_path) -> None:
    path = save_frame(tmp_path / "f.json", frame_from_dict(_community_dict(2, 1), "f"))
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert set(doc) == set(COMMUNITY_KEYS)
    assert np.array(doc["gt_RTs"]).shape == (2, 4, 4)
    assert doc["gt_handle_visibility"] in ([True, True], [True, False], [False, True], [False, False])


def test_acr_hand_written_json(tmp_path) -> None:
    """JSON written by hand, with empty predictions as [] and 0/1 handle visibility."""
    doc = {
        "gt_class_ids": [6],
        "gt_RTs": [[[0.12, 0, 0, 0.02], [0, 0.12, 0, -0.05], [0, 0, 0.12, 0.62], [0, 0, 0, 1]]],
        "gt_scales": [[0.7, 0.5, 0.5]],
        "gt_handle_visibility": [0],
        "pred_class_ids": [],
        "pred_RTs": [],
        "pred_scales": [],
        "pred_scores": [],
    }
    (tmp_path / "0000.json").write_text(json.dumps(doc), encoding="utf-8")
    (frame,) = load_results(tmp_path, "acr")
    assert frame.num_gt == 1 and frame.num_pred == 0
    assert not frame.gt_handle_visible[0]
    assert frame.gt_sRT[0, 2, 3] == 0.62


def test_acr_unknown_key(tmp_path) -> None:
    d = {k: v.tolist() for k, v in _community_dict().items()}
    d["pred_RT"] = d.pop("pred_RTs")
    (tmp_path / "typo.json").write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(ResultsFileError, match=r"typo\.json: unknown key\(s\) \['pred_RT'\]"):
        load_results(tmp_path, "acr")


@pytest.mark.parametrize("name, content", [("bad.json", b"{not json"), ("bad.npz", b"PK\x03\x04garbage")])
def test_acr_corrupt_file(tmp_path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ResultsFileError, match=rf"{name}: not a readable acr"):
        load_results(tmp_path, "acr")


def test_acr_npz_with_object_array_refused(tmp_path) -> None:
    d = _community_dict()
    d["pred_scores"] = np.array([1.0, None, 2, 3], dtype=object)
    np.savez(tmp_path / "obj.npz", **d)
    with pytest.raises(ResultsFileError, match=r"obj\.npz: not a readable acr"):
        load_results(tmp_path, "acr")


def test_save_frame_refuses_what_it_cannot_read(tmp_path) -> None:
    frame = frame_from_dict(_community_dict(), "f")
    frame.pred_sRT[0, 0, 0] = np.nan
    with pytest.raises(ResultsFileError, match=r"f\.json: pred_RTs\[0\] has a non-finite"):
        save_frame(tmp_path / "f.json", frame)
    with pytest.raises(ValueError, match=r"npz or \.json"):
        save_frame(tmp_path / "f.pkl", frame_from_dict(_community_dict(), "f"))
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------------------------------
# Directories


def test_acr_directory_sorted_by_name(tmp_path) -> None:
    frames = [frame_from_dict(_community_dict(seed=s), f"{s}") for s in range(4)]
    names = ["b.json", "a.npz", "d.npz", "c.json"]
    for frame, name in zip(frames, names, strict=True):
        save_frame(tmp_path / name, frame)
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    save_frame(tmp_path / "sub" / "nested.npz", frames[0])  # not read: only files directly in the directory
    loaded = load_results(tmp_path, "acr")
    assert [f.name for f in loaded] == sorted(names)
    by_name = dict(zip(names, frames, strict=True))
    for f in loaded:
        _assert_frames_equal(f, by_name[f.name])


def test_a_frame_saved_in_both_forms_is_refused_not_counted_twice(tmp_path) -> None:
    frame = frame_from_dict(_community_dict(seed=1), "a")
    save_frame(tmp_path / "a.npz", frame)
    save_frame(tmp_path / "b.npz", frame)
    assert len(load_results(tmp_path, "acr")) == 2
    save_frame(tmp_path / "a.json", frame)
    with pytest.raises(ResultsFileError, match=r"1 frame\(s\) saved twice \(a\.json and a\.npz\)"):
        load_results(tmp_path, "acr")


def test_missing_directory(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        load_results(tmp_path / "nope", "spd")
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="file"):
        load_results(tmp_path / "file", "acr")


def test_unknown_format(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown results format 'nocs'"):
        load_results(tmp_path, "nocs")  # type: ignore[arg-type]


def test_empty_directory(tmp_path) -> None:
    with pytest.raises(ResultsFileError, match=r"no 'results_\*\.pkl' files for format 'spd'"):
        load_results(tmp_path, "spd")
    with pytest.raises(ResultsFileError, match=r"no '\*\.npz' or '\*\.json' files"):
        load_results(tmp_path, "acr")


def test_wrong_format_suggests_other(tmp_path) -> None:
    save_frame(tmp_path / "a.npz", frame_from_dict(_community_dict(), "a"))
    with pytest.raises(ResultsFileError, match=r"holds 1 \*\.npz / \*\.json file\(s\): use format 'acr'"):
        load_results(tmp_path, "spd")
    other = tmp_path / "pkls"
    other.mkdir()
    _write_pickle(other / "results_r.pkl", _community_dict(), 2)
    with pytest.raises(ResultsFileError, match=r"holds 1 results_\*\.pkl file\(s\): use format 'spd'"):
        load_results(other, "acr")


def test_many_files_with_progress(tmp_path) -> None:
    """More files than the progress-bar threshold: still read in order (the bar is off when not a TTY)."""
    d = _community_dict(1, 1)
    for i in range(210):
        _write_pickle(tmp_path / f"results_{i:04d}.pkl", d, 5)
    frames = load_results(tmp_path, "spd")
    assert len(frames) == 210 and frames[-1].name == "results_0209.pkl"


def test_pickle_cannot_set_attributes_on_admitted_functions(tmp_path) -> None:
    """BUILD with slot state on an admitted global must not change numpy's own functions (or ours)."""
    from acr_pose_core.evaluation import results_io

    numpy_frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    for module, name in (("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode")):
        path = tmp_path / "build.pkl"
        # push the global, state (None, {"zzz": 1}), BUILD -> setattr(obj, "zzz", 1)
        path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"N}U\x03zzzK\x01s\x86b.")
        obj = load_pickle(path)
        assert getattr(obj, "zzz", None) == 1  # the copy handed to this load was changed ...
        assert not hasattr(numpy_frombuffer, "zzz")  # ... numpy's function was not
        assert not hasattr(results_io.RestrictedUnpickler(io.BytesIO(b""), "x").find_class(module, name), "zzz")


def test_module_docstring_example_loads(tmp_path) -> None:
    """The example JSON in the module docstring is a valid acr file."""
    from acr_pose_core.evaluation import results_io

    doc = results_io.__doc__
    start = doc.index("    {\n", doc.index("Example"))
    end = doc.index("\n    }\n", start) + len("\n    }")
    (tmp_path / "example.json").write_text(textwrap.dedent(doc[start:end]), encoding="utf-8")
    (frame,) = load_results(tmp_path, "acr")
    assert frame.num_gt == 1 and frame.num_pred == 1 and frame.gt_class_ids[0] == 6


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_files_get_ordinary_permissions(tmp_path) -> None:
    reference = tmp_path / "plain.txt"
    reference.write_text("x")
    path = save_frame(tmp_path / "f.npz", frame_from_dict(_community_dict(), "f"))
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)
