"""The ROS 2 node: synchronised RGB-D (+ camera info) in, ``vision_msgs/Detection3DArray`` and TF out.

Topics (relative names: remap them, or set the namespace, as ``launch/pose.launch.py`` does):

- in: ``color/image_raw`` (rgb8/bgr8/rgba8/bgra8/mono8), ``aligned_depth_to_color/image_raw`` (16UC1 mm or
  32FC1 m, aligned to colour), ``color/camera_info``; with ``mask_source: labels`` also ``labels/image``
  (mono8/16UC1 instance labels) and ``labels/detections`` (vision_msgs/Detection2DArray naming the labels);
- out: ``~/detections`` (``/acr_pose/detections``; reliable), ``/tf`` (one frame per object), ``~/markers``
  (visualization_msgs/MarkerArray) and ``~/debug_image`` (sensor_msgs/Image) built only while subscribed, and
  ``~/status`` (std_msgs/String, after each handled set: JSON counters of sets received, posed, skipped and dropped,
  live tracks, and ``last_stamp_ns``, the stamp of the set just handled; once a second while no set arrives, with
  ``waiting_s``);
- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, once a second: rates, latency, stage times, counters, device;
  :mod:`acr_pose_ros.diagnostics`);
- with ``target_frame``: poses, boxes, covariances and TF in that frame, through TF at the image's stamp
  (``tf2_ros.Buffer`` where importable, else :class:`~acr_pose_ros.transforms.TransformBuffer` on /tf and
  /tf_static); a frame whose transform does not come within ``transform_timeout`` is skipped and counted;
- service: ``~/reset`` (std_srvs/Trigger) drops the object tracks (:mod:`acr_pose_ros.tracking`).

Threads: the executor only receives and synchronises; a worker thread runs the estimator on the newest
synchronised set (:class:`~acr_pose_ros.sync.LatestSlot`), so a slow model drops stale frames instead of queueing
them. Bad input is a throttled warning and a skipped frame, never a dead node. The work itself is in
:mod:`acr_pose_ros.frame` and :mod:`acr_pose_ros.messages` (plain functions); this module wires ROS to them and
stays valid for Humble and Jazzy.
"""

from __future__ import annotations

import array
import dataclasses
import json
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from typing import Any

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2DArray, Detection3DArray
from visualization_msgs.msg import MarkerArray

from acr_pose_core.detection import InputError
from acr_pose_core.pipeline import PoseEstimator, choose_device
from acr_pose_ros.conversions import MessageError, image_fields
from acr_pose_ros.diagnostics import FrameStatistics, diagnostic_array
from acr_pose_ros.frame import debug_image, estimate_frame, frame_inputs
from acr_pose_ros.messages import detection_array, marker_array, ros_types, transform_message
from acr_pose_ros.params import INPUT_TOPICS, LABEL_TOPICS, NODE_NAME, RUNTIME, NodeParameters, ParameterError
from acr_pose_ros.sync import ApproximateSync, LatestSlot, stamp_ns
from acr_pose_ros.tracking import Tracker
from acr_pose_ros.transforms import TransformBuffer, matrix_from_transform, transform_estimate

__all__ = ["ManagedPoseNode", "PoseNode", "lifecycle_main", "main"]

HEARTBEAT_S = 1.0
"""While no synchronised set arrives, ``~/status`` is published this often (seconds)."""


class TransformMissingError(Exception):
    """TF cannot give the target frame's transform at an image's stamp (the frame is skipped and counted)."""


class _PoseBehaviour:
    """What both nodes do, in the stages of a managed node's life; ``self`` is an rclpy ``Node``.

    - :meth:`_declare_parameters` (construction): every parameter, its description and rules;
    - :meth:`_configure`: read and check the parameters, load the model, create the publishers, the ``~/reset``
      service and the status and diagnostics timers;
    - :meth:`_activate`: subscribe to the inputs and start the worker;
    - :meth:`_deactivate`: unsubscribe, stop the worker, free the device's cached memory (the model stays loaded);
    - :meth:`_cleanup`: destroy what :meth:`_configure` made and drop the model.
    """

    params: NodeParameters
    estimator: PoseEstimator | None

    def _declare_parameters(self) -> None:
        defaults = NodeParameters().to_mapping()
        for name in NodeParameters.names():
            # dynamic typing: rclpy accepts any type and NodeParameters applies the rules (so `score_threshold:=1`
            # is 1.0, and a wrong type is refused with our message naming the parameter, not an rclpy traceback).
            # not rclpy's read_only: the callback refuses changes to the start-up parameters once configured (so a
            # managed node takes them while unconfigured, and an integer given for a float can be stored as DOUBLE)
            fixed = "" if name in RUNTIME else " (fixed once configured: restart, or cleanup and configure)"
            descriptor = ParameterDescriptor(description=NodeParameters.description(name) + fixed, dynamic_typing=True)
            self.declare_parameter(name, defaults[name], descriptor)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.counts: Counter[str] = Counter()
        self.estimator = None
        self._active = False
        self._made: list[Any] = []  # what _configure created, for _cleanup
        self._inputs: list[Any] = []

    def _configure(self, estimator: PoseEstimator | None = None) -> None:
        try:
            self.params = NodeParameters.from_mapping(
                {name: self.get_parameter(name).value for name in NodeParameters.names()}
            )
        except ParameterError as error:
            self.get_logger().fatal(str(error))
            raise
        params = self.params
        # `score_threshold:=1` arrives as an INTEGER parameter (dynamic typing): store it as the DOUBLE it means, so
        # that `ros2 param get` and a later `ros2 param set ... 0.5` see one type
        as_double = [
            Parameter(name, Parameter.Type.DOUBLE, getattr(params, name))
            for name in NodeParameters.names()
            if isinstance(getattr(params, name), float) and self.get_parameter(name).type_ == Parameter.Type.INTEGER
        ]
        if as_double:
            self.set_parameters(as_double)  # accepted: the model is not loaded yet
        if estimator is None:
            self.get_logger().info(f"loading the model {params.model or '(shipped default)'} on {params.device}")
            device = choose_device(params.device)
            graphs = params.cuda_graphs and device.type == "cuda"
            if params.cuda_graphs and not graphs:
                self.get_logger().warning(f"parameter 'cuda_graphs' = True is ignored: the model runs on {device}")
            estimator = PoseEstimator(params.model or None, device=device, cuda_graphs=graphs)
        if params.mask_source == "segmenter" and estimator.mask_source is None:
            raise ParameterError("parameter 'mask_source' = 'segmenter': the model folder has no segmenter")
        self.estimator = estimator

        output_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.detections_pub = self.create_publisher(Detection3DArray, "~/detections", output_qos)
        self.markers_pub = self.create_publisher(MarkerArray, "~/markers", output_qos)
        self.debug_pub = self.create_publisher(Image, "~/debug_image", output_qos)
        self.status_pub = self.create_publisher(String, "~/status", output_qos)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", output_qos)
        self._made = [self.detections_pub, self.markers_pub, self.debug_pub, self.status_pub, self.diagnostics_pub]
        self._tf_broadcaster = None
        self._tf_pub = None
        if params.publish_tf:
            try:
                from tf2_ros import TransformBroadcaster

                self._tf_broadcaster = TransformBroadcaster(self)
            except ImportError:  # no tf2_ros (e.g. the wheels-only test environment): publish what it would
                from tf2_msgs.msg import TFMessage

                tf_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
                self._tf_pub = self.create_publisher(TFMessage, "/tf", tf_qos)
                self._made.append(self._tf_pub)

        self._tf_listener: Any = None
        if params.target_frame:
            self._listen_to_tf()
        self.tracker = Tracker(params.track_max_distance, params.track_timeout, params.pose_smoothing)
        self._tracker_lock = threading.Lock()  # the worker updates it, the reset service (executor) clears it
        self.reset_service = self.create_service(Trigger, "~/reset", self._on_reset)
        self._last_stamp: int | None = None
        self._last_arrival = time.monotonic()  # of the last synchronised set (the node's start before the first)
        self.statistics = FrameStatistics(params.diagnostics_window, start=time.monotonic())
        self._slot: LatestSlot[tuple[Any, ...]] = LatestSlot()
        self._made += [
            self.reset_service,
            self.create_timer(HEARTBEAT_S, self._heartbeat),
            self.create_timer(1.0, self._publish_diagnostics),
        ]

    def _activate(self) -> None:
        params = self.params
        reliability = (
            ReliabilityPolicy.BEST_EFFORT if params.input_reliability == "best_effort" else ReliabilityPolicy.RELIABLE
        )
        # reliable: depth 2 keeps the newest sets without queueing old ones (the synchroniser and the worker drop the
        # stale); best effort: the sensor-data profile's 5
        depth = 2 if reliability == ReliabilityPolicy.RELIABLE else 5
        sensor_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability)
        inputs = list(zip((Image, Image, CameraInfo), INPUT_TOPICS, strict=True))
        if params.mask_source == "labels":
            inputs += list(zip((Image, Detection2DArray), LABEL_TOPICS, strict=True))
        self._slot = LatestSlot()
        self._last_arrival = time.monotonic()
        self._inputs = self._synchronise(inputs, sensor_qos)
        self._running = True
        self._worker = threading.Thread(target=self._work, name="acr_pose_inference", daemon=True)
        self._worker.start()
        self._active = True
        tf = "off" if not params.publish_tf else "tf2_ros" if self._tf_broadcaster is not None else "own /tf publisher"
        self.get_logger().info(
            f"active: {len(inputs)} synchronised inputs ({self._sync_kind}), publishing on "
            f"{self.detections_pub.topic_name}, TF: {tf}"
        )

    def _deactivate(self) -> None:
        if not self._active:
            return
        self._active = False
        for subscription in self._inputs:
            self.destroy_subscription(getattr(subscription, "sub", subscription))  # message_filters keeps it in .sub
        self._inputs = []
        self._running = False
        self._slot.close()
        if self._worker.is_alive():
            self._worker.join(timeout=5.0)
        if self.estimator is not None and self.estimator.device.type == "cuda":
            torch.cuda.empty_cache()  # the allocator's cached blocks; the weights stay for a quick activate
        self.get_logger().info("inactive: unsubscribed from the inputs")

    def _cleanup(self) -> None:
        self._deactivate()
        for entity in self._made:
            if hasattr(entity, "timer_period_ns"):
                self.destroy_timer(entity)
            elif hasattr(entity, "srv_type"):
                self.destroy_service(entity)
            else:
                self.destroy_publisher(entity)
        self._made = []
        device = self.estimator.device if self.estimator is not None else None
        self.estimator = None
        if device is not None and device.type == "cuda":
            torch.cuda.empty_cache()

    # -- input ------------------------------------------------------------------------------------------------
    def _synchronise(self, inputs: list[tuple[type, str]], qos: QoSProfile) -> list[Any]:
        """Subscribe to ``inputs`` through message_filters' ApproximateTimeSynchronizer where importable, else
        through :class:`~acr_pose_ros.sync.ApproximateSync` (same rules); both call :meth:`_on_synchronised`."""
        params = self.params
        try:
            import message_filters
        except ImportError:
            self._sync_kind = "acr_pose_ros.sync.ApproximateSync"
            sync = ApproximateSync(len(inputs), params.sync_queue_size, params.sync_slop, self._on_synchronised)
            return [
                self.create_subscription(kind, topic, lambda msg, i=i: sync.add(i, msg), qos)
                for i, (kind, topic) in enumerate(inputs)
            ]
        self._sync_kind = "message_filters.ApproximateTimeSynchronizer"
        subscribers = [message_filters.Subscriber(self, kind, topic, qos_profile=qos) for kind, topic in inputs]
        synchroniser = message_filters.ApproximateTimeSynchronizer(
            subscribers, params.sync_queue_size, params.sync_slop
        )
        synchroniser.registerCallback(self._on_synchronised)
        self._message_filters = synchroniser  # keep it alive
        return subscribers

    def _on_synchronised(self, *msgs: Any) -> None:
        """Executor thread: keep the newest set for the worker; sets older than the last one are skipped."""
        self.counts["received"] += 1
        self._last_arrival = time.monotonic()
        self.statistics.received(self._last_arrival)
        stamp = stamp_ns(msgs[0])
        if self._last_stamp is not None and stamp <= self._last_stamp:
            self._skip("out_of_order", f"stamp {stamp * 1e-9:.3f} s is not after the last frame's; skipped")
            self._last_stamp = stamp  # a restarted bag or simulation is accepted from its next frame on
            return
        self._last_stamp = stamp
        if self._slot.put(msgs):
            self.get_logger().warning(
                f"inference is slower than the input: {self._slot.dropped} stale frames dropped so far",
                throttle_duration_sec=5.0,
            )

    # -- work -------------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while self._running:
            msgs = self._slot.take(timeout=0.1)
            if msgs is None:
                continue
            try:
                latency, stages = self._process(msgs)
                self.statistics.handled(time.monotonic(), True, latency, stages)
            except TransformMissingError as error:
                self._skip("no_transform", f"frame skipped: {error}")
                self.statistics.handled(time.monotonic(), False)
            except (MessageError, InputError) as error:
                self._skip("bad_input", f"frame skipped: {error}")
                self.statistics.handled(time.monotonic(), False)
            except Exception:  # a bug must not kill the node: log it whole, count it, go on
                self.counts["errors"] += 1
                self.get_logger().error(f"frame failed:\n{traceback.format_exc()}", throttle_duration_sec=5.0)
                self.statistics.handled(time.monotonic(), False, failed=True)
            self._publish_status(stamp_ns(msgs[0]))

    def _process(self, msgs: tuple[Any, ...]) -> tuple[float, dict[str, float]]:
        """Pose one set and publish the outputs; returns the latency (seconds from the input's stamp to the
        detections' publication, ROS clock) and the stages' milliseconds."""
        params = self.params  # one consistent set for the whole frame, even if changed meanwhile
        color, depth, info, *labels = msgs
        start = time.perf_counter()
        inputs = frame_inputs(color, depth, info, params, *labels)
        converted = time.perf_counter()
        estimate = estimate_frame(self.estimator, inputs, params)
        in_camera = estimate  # the debug image is drawn in the camera
        header = color.header
        if params.target_frame:
            T = self._transform(params.target_frame, header.frame_id, stamp_ns(color), params.transform_timeout)
            estimate = transform_estimate(estimate, T)
            header = type(header)(stamp=header.stamp, frame_id=params.target_frame)
        estimated = time.perf_counter()
        names = None  # without tracking: <category>_<i> within the frame
        if params.tracking:
            with self._tracker_lock:
                names, objects = self.tracker.update(stamp_ns(color), estimate.objects)
            estimate = dataclasses.replace(estimate, objects=objects)
        self.detections_pub.publish(detection_array(ros_types, header, estimate, names))
        latency = (self.get_clock().now().nanoseconds - stamp_ns(color)) * 1e-9
        if params.publish_tf and estimate.objects:
            tf = transform_message(ros_types, header, estimate, params.frame_prefix, names)
            if self._tf_broadcaster is not None:
                self._tf_broadcaster.sendTransform(list(tf.transforms))
            elif self._tf_pub is not None:
                self._tf_pub.publish(tf)
        if params.publish_markers and self.markers_pub.get_subscription_count() > 0:
            self.markers_pub.publish(marker_array(ros_types, header, estimate, names=names))
        if params.publish_debug_image and self.debug_pub.get_subscription_count() > 0:
            fields = image_fields(debug_image(inputs, in_camera, names))
            fields["data"] = array.array("B", fields["data"].tobytes())
            self.debug_pub.publish(Image(header=header, **fields))
        self.counts["posed"] += 1
        self.counts["objects"] += len(estimate.objects)
        done = time.perf_counter()
        self.get_logger().debug(f"{len(estimate.objects)} objects in {done - start:.3f} s")
        stages = {"conversion": 1e3 * (converted - start), **estimate.timings_ms, "messages": 1e3 * (done - estimated)}
        return latency, stages

    # -- target frame -----------------------------------------------------------------------------------------
    def _listen_to_tf(self) -> None:
        """Executor thread: hear /tf and /tf_static through tf2_ros where importable, else through
        :class:`~acr_pose_ros.transforms.TransformBuffer` (same rules)."""
        if self._tf_listener is not None:
            return
        try:
            from tf2_ros import Buffer, TransformListener

            self._tf_buffer = Buffer()
            self._tf_listener = TransformListener(self._tf_buffer, self)
            self._tf_kind = "tf2_ros"
        except ImportError:
            from rclpy.qos import DurabilityPolicy
            from tf2_msgs.msg import TFMessage

            self._tf_buffer = TransformBuffer()
            self._tf_buffer_lock = threading.Lock()
            latched = QoSProfile(
                depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
            )
            self._tf_listener = [
                self.create_subscription(TFMessage, "/tf", lambda m: self._heard(m, False), QoSProfile(depth=100)),
                self.create_subscription(TFMessage, "/tf_static", lambda m: self._heard(m, True), latched),
            ]
            self._made += self._tf_listener
            self._tf_kind = "acr_pose_ros.transforms.TransformBuffer"
        self.get_logger().info(f"target frame: transforms through {self._tf_kind}")

    def _heard(self, msg: Any, static: bool) -> None:
        with self._tf_buffer_lock:
            for t in msg.transforms:
                r, q = t.transform.translation, t.transform.rotation
                T = matrix_from_transform([r.x, r.y, r.z], [q.x, q.y, q.z, q.w])
                try:
                    self._tf_buffer.add(t.header.frame_id, t.child_frame_id, stamp_ns(t), T, static=static)
                except ValueError:
                    continue

    def _transform(self, target: str, source: str, stamp: int, timeout: float) -> np.ndarray:
        """Worker thread: ``T_target_source`` at ``stamp``, waiting at most ``timeout`` seconds; MessageError
        (the frame is skipped and counted) when TF cannot give it."""
        if self._tf_kind == "tf2_ros":
            from rclpy.duration import Duration
            from rclpy.time import Time
            from tf2_ros import TransformException

            try:
                t = self._tf_buffer.lookup_transform(
                    target, source, Time(nanoseconds=stamp), timeout=Duration(seconds=timeout)
                )
            except TransformException as error:
                raise TransformMissingError(f"no transform {source} -> {target}: {error}") from None
            r, q = t.transform.translation, t.transform.rotation
            return matrix_from_transform([r.x, r.y, r.z], [q.x, q.y, q.z, q.w])
        end = time.monotonic() + timeout
        while True:
            try:
                with self._tf_buffer_lock:
                    return self._tf_buffer.lookup(target, source, stamp)
            except LookupError as error:
                if time.monotonic() >= end:
                    raise TransformMissingError(f"no transform {source} -> {target}: {error}") from None
            time.sleep(0.005)

    def _on_reset(self, request: Any, response: Any) -> Any:
        """``~/reset`` (std_srvs/Trigger): drop every track; the next poses start new ids."""
        with self._tracker_lock:
            dropped = self.tracker.reset()
        self.counts["resets"] += 1
        response.success, response.message = True, f"dropped {dropped} tracks"
        self.get_logger().info(f"~/reset: {response.message}")
        return response

    def _skip(self, reason: str, message: str) -> None:
        self.counts[f"skipped_{reason}"] += 1
        self.get_logger().warning(message, throttle_duration_sec=5.0)

    def _publish_status(self, stamp: int | None) -> None:
        """``~/status`` after each handled set (``last_stamp_ns`` its stamp) and, while no set comes, once a
        second from the executor (``last_stamp_ns`` null before the first, ``waiting_s`` how long since the last
        set arrived): a silent status means a dead node, a waiting one a missing camera."""
        status: dict[str, Any] = dict(self.counts)
        status["dropped_stale"] = self._slot.dropped
        status["tracks"] = len(self.tracker.tracks)
        status["active"] = self._active
        if stamp is None:
            status["last_stamp_ns"] = self._last_stamp
            status["waiting_s"] = round(time.monotonic() - self._last_arrival, 3)
        else:
            status["last_stamp_ns"] = stamp  # the set just handled (posed or skipped)
        self.status_pub.publish(String(data=json.dumps(status, sort_keys=True)))

    def _publish_diagnostics(self) -> None:
        """``/diagnostics`` once a second (:mod:`acr_pose_ros.diagnostics`)."""
        counts = dict(self.counts, dropped_stale=self._slot.dropped)
        self.diagnostics_pub.publish(
            diagnostic_array(
                ros_types,
                self.get_clock().now().to_msg(),
                self.get_name(),
                str(self.estimator.device),
                self.statistics.summary(time.monotonic()),
                counts,
                self.params.min_posed_rate,
                active=self._active,
            )
        )

    def _heartbeat(self) -> None:
        if self._active and time.monotonic() - self._last_arrival >= HEARTBEAT_S:
            self._publish_status(None)

    # -- parameters -------------------------------------------------------------------------------------------
    def _on_set_parameters(self, changes: list[Any]) -> SetParametersResult:
        """Parameter changes: those outside ``RUNTIME`` only while no model is loaded (before configure, after
        cleanup); every change checked by :class:`NodeParameters`' rules."""
        base = getattr(self, "params", None)  # None: not configured yet (configure reads every value anyway)
        fixed = sorted(p.name for p in changes if p.name not in RUNTIME)
        if base is not None and self.estimator is not None and fixed:
            return SetParametersResult(
                successful=False,
                reason=f"parameter(s) {fixed} are fixed once the node is configured: restart it (managed: cleanup, "
                "set, configure)",
            )
        try:
            checked = NodeParameters.from_mapping({p.name: p.value for p in changes}, base=base)
        except ParameterError as error:
            return SetParametersResult(successful=False, reason=str(error))
        if base is not None:
            self.params = checked
            if checked.target_frame and not base.target_frame:
                self._listen_to_tf()
        return SetParametersResult(successful=True)


class PoseNode(_PoseBehaviour, Node):
    """The acr-pose node (see the module docstring), active from its construction to its end: ``ros2 run
    acr_pose_ros pose_node``. ``estimator`` replaces the model the parameters name."""

    def __init__(self, estimator: PoseEstimator | None = None, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._declare_parameters()
        self._configure(estimator)
        self._activate()

    def destroy_node(self) -> None:
        self._deactivate()
        super().destroy_node()


class ManagedPoseNode(_PoseBehaviour, LifecycleNode):
    """The same node as a managed (lifecycle) node, ``ros2 run acr_pose_ros pose_lifecycle_node``: unconfigured at
    start; configure loads the model and checks the parameters (a bad one fails the transition, naming it),
    activate subscribes and publishes, deactivate stops the work and frees the device's cached memory, cleanup
    drops the model. ``launch/pose.launch.py`` drives it to active unless ``autostart:=false``."""

    def __init__(self, estimator: PoseEstimator | None = None, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._declare_parameters()
        self._given_estimator = estimator

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure(self._given_estimator)
        except (ParameterError, ValueError, OSError) as error:
            self.get_logger().error(f"configure failed: {error}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._activate()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._deactivate()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._deactivate()
        super().destroy_node()


def main(args: list[str] | None = None, managed: bool = False) -> int:
    """``ros2 run acr_pose_ros pose_node [--ros-args ...]`` (``managed``: :class:`ManagedPoseNode`, the
    ``pose_lifecycle_node`` executable): run the node until shut down."""
    rclpy.init(args=args)
    # SIGINT (Ctrl-C, ros2 launch's first signal) and SIGTERM (docker stop, systemd, launch's escalation) both end
    # the loop below, and nothing else: rclpy's own handlers shut the context down at once, so a frame in
    # inference met RCLErrors and a KeyboardInterrupt could surface anywhere (issue 24: tracebacks in 8 of 11 Ctrl-Cs
    # under ros2 launch), and its handling of SIGTERM differs between distributions (the Jazzy wheels: an idle node
    # ignored it). Ours replace them: the executor wakes every 0.2 s to notice, the worker finishes its frame, the
    # node is destroyed, then rclpy shuts down.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: stop.set())
    node = None
    try:
        node = ManagedPoseNode() if managed else PoseNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok() and not stop.is_set():
            executor.spin_once(timeout_sec=0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ParameterError as error:
        print(f"acr_pose: {error}", flush=True)
        return 2
    finally:
        if node is not None:
            node.get_logger().info(f"stopping: {json.dumps(dict(node.counts), sort_keys=True)}")
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def lifecycle_main(args: list[str] | None = None) -> int:
    """``ros2 run acr_pose_ros pose_lifecycle_node [--ros-args ...]``: :func:`main` with the managed node."""
    return main(args, managed=True)


if __name__ == "__main__":
    if "--lifecycle" in sys.argv:  # python -m acr_pose_ros.node --lifecycle --ros-args ...
        sys.argv.remove("--lifecycle")
        raise SystemExit(lifecycle_main())
    raise SystemExit(main())
