"""NOCS evaluation: per-frame records, the metric procedure, result files (restricted unpickler), tables and plots.

- :mod:`~acr_pose_core.evaluation.results`: :class:`FrameResult`, one frame's ground truth and predictions.
- :mod:`~acr_pose_core.evaluation.metrics`: :func:`evaluate_frames` → :class:`NocsMetrics` (3D IoU and pose AP).
- :mod:`~acr_pose_core.evaluation.results_io`: the community's result pickles and our own npz/JSON format.
- :mod:`~acr_pose_core.evaluation.report`: tables like the paper's Tables 1 and 4, ``metrics.json``, Figure-5 plots.
- :mod:`~acr_pose_core.evaluation.examples`: synthetic prediction sets with known ground truth.
"""

from acr_pose_core.evaluation.examples import make_example_frames
from acr_pose_core.evaluation.metrics import NocsMetrics, average_precision, chamfer_by_category, evaluate_frames
from acr_pose_core.evaluation.report import format_table, metrics_to_dict, plot_ap_curves, write_metrics_json
from acr_pose_core.evaluation.results import FrameResult
from acr_pose_core.evaluation.results_io import ResultsFileError, load_pickle, load_results, save_frame

__all__ = [
    "FrameResult",
    "NocsMetrics",
    "ResultsFileError",
    "average_precision",
    "chamfer_by_category",
    "evaluate_frames",
    "format_table",
    "load_pickle",
    "load_results",
    "make_example_frames",
    "metrics_to_dict",
    "plot_ap_curves",
    "save_frame",
    "write_metrics_json",
]
