"""Benchmark of the ROS 2 node over a real middleware (not a test): prints a table and writes JSON.

Starts ``acr_pose_ros.node`` in its own process (Fast DDS on localhost, its own domain) and publishes a generated
640×480 RGB-D frame of the camera profile (test-split instances, 6 objects) with camera info at ``--rate`` Hz for
``--seconds``, stamped with the publisher's clock. Measured on the receiving side: latency = arrival of the
Detection3DArray − its input stamp (same machine, same clock), achieved output rate, and the node's own counters
(sets received, posed, stale sets dropped). Masks: the model's segmenter (default) or ``--masks labels`` (the true
masks as an external segmenter would send them). Needs ``bash scripts/setup_ros.sh``.

Usage::

    python benchmarks/node.py [--device cpu|cuda] [--rate 30] [--seconds 20] [--masks segmenter|labels]
                              [--reliability reliable|best_effort] [--out benchmarks/results/node.json]
"""

from __future__ import annotations

import argparse
import array
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _report import write_result  # benchmarks/_report.py (run as python benchmarks/NAME.py)

from acr_pose_core.categories import category_name
from acr_pose_core.data.detection_frames import frame_objects
from acr_pose_core.synth.generate import GenerateConfig, scene_frame
from acr_pose_ros.conversions import image_fields


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rate", type=float, default=30.0, help="input frames a second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--masks", choices=("segmenter", "labels"), default="segmenter")
    parser.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/node.json"))
    args = parser.parse_args(argv)

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import String
    from vision_msgs.msg import Detection2D, Detection2DArray, Detection3DArray, ObjectHypothesisWithPose

    frame = scene_frame(GenerateConfig(out=Path("."), split="test", seed=5))
    _, class_ids, masks, _ = frame_objects(frame)
    labels = np.zeros(frame.depth.shape, np.uint16)
    dets = Detection2DArray()
    for i, (mask, class_id) in enumerate(zip(masks, class_ids, strict=True)):
        labels[mask] = i + 1
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = category_name(int(class_id)), 1.0
        dets.detections.append(Detection2D(id=str(i + 1), results=[hypothesis]))

    domain = 1 + os.getpid() % 100
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    topics = ["color", "depth", "info"] + (["labels", "dets"] if args.masks == "labels" else [])
    remaps = dict(zip(["color/image_raw", "aligned_depth_to_color/image_raw", "color/camera_info", "labels/image",
                       "labels/detections"], [f"/bench/{t}" for t in ["color", "depth", "info", "labels", "dets"]],
                      strict=True))  # fmt: skip
    command = [sys.executable, "-m", "acr_pose_ros.node", "--ros-args", "-p", f"device:={args.device}",
               "-p", f"mask_source:={args.masks}", "-p", f"input_reliability:={args.reliability}"]  # fmt: skip
    for source, target in remaps.items():
        command += ["-r", f"{source}:={target}"]
    node = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    context = Context()
    rclpy.init(context=context, domain_id=domain)
    bench = Node("acr_pose_bench", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(bench)
    policy = ReliabilityPolicy.RELIABLE if args.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    qos = QoSProfile(depth=10, reliability=policy)
    kinds = {"color": Image, "depth": Image, "info": CameraInfo, "labels": Image, "dets": Detection2DArray}
    pubs = {t: bench.create_publisher(kinds[t], f"/bench/{t}", qos) for t in topics}
    arrivals: list[tuple[float, float, int]] = []  # (stamp s, arrival s, objects)
    status: list[dict] = []

    def on_detections(msg):
        arrivals.append((msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, time.time(), len(msg.detections)))

    bench.create_subscription(Detection3DArray, "/acr_pose/detections", on_detections, QoSProfile(depth=100))
    bench.create_subscription(String, "/acr_pose/status", lambda m: status.append(json.loads(m.data)), 100)
    diagnostics: list[dict] = []  # the node's own figures (acr_pose_ros.diagnostics), for comparison
    bench.create_subscription(
        DiagnosticArray,
        "/diagnostics",
        lambda m: diagnostics.extend({kv.key: kv.value for kv in s.values} for s in m.status[:1]),
        100,
    )

    def image(pixels, encoding):
        fields = image_fields(pixels, encoding)
        fields["data"] = array.array("B", fields["data"].tobytes())
        return Image(**fields)

    messages = {
        "color": image(frame.color, "rgb8"),
        "depth": image(frame.depth, "16UC1"),
        "labels": image(labels, "16UC1"),
        "info": CameraInfo(height=480, width=640, k=np.asarray(frame.label.intrinsics, float).reshape(-1)),
        "dets": dets,
    }

    def publish():
        now = time.time()
        for t in topics:
            msg = messages[t]
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
            msg.header.frame_id = "camera_color_optical_frame"
            pubs[t].publish(msg)

    deadline = time.monotonic() + 120
    while bench.count_subscribers(f"/bench/{topics[-1]}") == 0 and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    while not arrivals and time.monotonic() < deadline:  # warm-up: the first answers include lazy start-up work
        publish()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    warm = len(arrivals)
    before = dict(status[-1]) if status else {}
    published = 0
    start = time.monotonic()
    next_time = start
    while time.monotonic() - start < args.seconds:
        if time.monotonic() >= next_time:
            publish()
            published += 1
            next_time += 1.0 / args.rate
        executor.spin_once(timeout_sec=max(0.0, min(0.005, next_time - time.monotonic())))
    own = diagnostics[-1] if diagnostics else {}  # the last report within the run: its window is the run's end
    end = time.monotonic() + 5.0
    while time.monotonic() < end:  # let the last answer arrive
        executor.spin_once(timeout_sec=0.05)
    node.terminate()
    node.wait(15)

    measured = arrivals[warm:]
    latency = np.array([arrival - stamp for stamp, arrival, _ in measured]) * 1000.0
    after = status[-1] if status else {}
    counts = {
        k: after.get(k, 0) - before.get(k, 0) for k in ("received", "posed", "dropped_stale", "skipped_bad_input")
    }
    result = {
        "device": args.device,
        "masks": args.masks,
        "reliability": args.reliability,
        "input_rate_hz": args.rate,
        "published": published,
        "answered": len(measured),
        "output_rate_hz": len(measured) / args.seconds,
        "latency_ms_median": float(np.median(latency)) if len(latency) else None,
        "latency_ms_p90": float(np.percentile(latency, 90)) if len(latency) else None,
        "objects_per_answer": float(np.mean([n for _, _, n in measured])) if measured else None,
        "node_counts": counts,
        # /diagnostics' figures over its last window (the node's parameter diagnostics_window, 10 s): they measure
        # stamp to publication on the node's side, these stamp to arrival here, so they must agree within the
        # middleware's delivery time
        "node_diagnostics": {
            k: own.get(k)
            for k in ("posed rate (Hz)", "input rate (Hz)", "latency median (ms)", "latency p90 (ms)")
            if k in own
        }
        | {k: v for k, v in own.items() if k.endswith("median (ms)") and not k.startswith("latency")},
    }
    print(f"{'input Hz':>9} {'published':>9} {'answered':>8} {'output Hz':>9} {'lat. med ms':>11} {'p90 ms':>8} "
          f"{'received':>8} {'dropped':>7}")  # fmt: skip
    print(f"{args.rate:9.1f} {published:9d} {len(measured):8d} {result['output_rate_hz']:9.2f} "
          f"{result['latency_ms_median'] or float('nan'):11.1f} {result['latency_ms_p90'] or float('nan'):8.1f} "
          f"{counts['received']:8d} {counts['dropped_stale']:7d}")  # fmt: skip
    if own:
        print(f"the node's /diagnostics (last 10 s): posed {own.get('posed rate (Hz)')} Hz, latency median "
              f"{own.get('latency median (ms)')} ms, p90 {own.get('latency p90 (ms)')} ms; stages (ms): "
              + ", ".join(f"{k[:-12]} {v}" for k, v in own.items() if k.endswith("median (ms)")
                          and not k.startswith("latency")))  # fmt: skip
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
