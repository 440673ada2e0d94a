"""Robot protocol conformance (twin and TCP bridge), TCP robustness, decomposition, executor on the twin."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from real_robot.decompose import DecompositionError, decompose, steps_from_reply
from real_robot.robot import (
    ACTION_KEYS,
    ROBOTS,
    DeviceNotConnectedError,
    Robot,
    action_dict,
    joints_of,
    make_robot,
)
from real_robot.tcp import BridgeServer, RemoteError, TcpRobot

TASK = "open the middle drawer, pick up the tape, place it on the table, close the drawer"


@pytest.fixture
def twin():
    r = make_robot("mujoco_twin", cameras=("front",), image_size=(32, 32))
    yield r
    if r.is_connected:
        r.disconnect()


@pytest.fixture
def bridge():
    twin = make_robot("mujoco_twin", cameras=("front",), image_size=(32, 32))
    with BridgeServer(twin, port=0) as server:
        yield server


def _conformance(robot: Robot) -> None:
    """What every backend must do, as LeRobot code would use it."""
    assert isinstance(robot, Robot)
    assert set(ACTION_KEYS) <= set(robot.action_features)
    feats = robot.observation_features
    assert not robot.is_connected
    with pytest.raises((DeviceNotConnectedError, RemoteError)):
        robot.get_observation()
    robot.connect()
    assert robot.is_connected
    obs = robot.get_observation()
    assert set(obs) == set(feats)
    for k, v in feats.items():
        if v is float:
            assert isinstance(obs[k], float), k
        else:
            assert tuple(np.asarray(obs[k]).shape) == tuple(v), k
    assert obs["front"].dtype == np.uint8 and obs["front.depth"].dtype == np.float32
    q = joints_of(obs)
    sent = robot.send_action(action_dict(q + 0.02, 1.0, 10.0))
    assert set(sent) == set(ACTION_KEYS)
    assert sent["j0.pos"] == pytest.approx(q[0] + 0.02)
    for _ in range(5):
        robot.send_action(sent)
    assert joints_of(robot.get_observation())[0] > q[0] + 0.005  # it moved toward the target
    robot.disconnect()
    assert not robot.is_connected


def test_registry_lists_both_backends():
    assert {"mujoco_twin", "tcp"} <= set(ROBOTS.names())


def test_twin_conforms(twin):
    _conformance(twin)


def test_tcp_conforms(bridge):
    _conformance(TcpRobot(port=bridge.port))


def _asker(f):
    def ask(raw: bytes) -> dict:
        f.write(raw)
        f.flush()
        return json.loads(f.readline())

    return ask


def test_tcp_malformed_and_oversized_lines_keep_serving(bridge):
    small = BridgeServer(make_robot("mujoco_twin", cameras=()), port=0, max_line=256).start()
    try:
        for server in (bridge, small):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
                f = s.makefile("rwb")
                ask = _asker(f)
                assert ask(b"not json\n")["ok"] is False
                assert ask(b"[1, 2]\n")["ok"] is False
                assert ask(b"\xff\xfe\n")["ok"] is False
                assert ask(b'{"id": 3, "op": "fly"}\n') == {"id": 3, "ok": False, "error": "ValueError: unknown op 'fly'"}
                r = ask(b'{"id": 4, "op": "send_action", "args": {"action": {"j0.pos": "x"}}}\n')
                assert r["id"] == 4 and not r["ok"]
                if server is small:
                    r = ask(b'{"id": 5, "op": "hello", "pad": "' + b"x" * 5000 + b'"}\n')
                    assert not r["ok"] and "exceeds 256 bytes" in r["error"]
                r = ask(b'{"id": 6, "op": "is_connected"}\n')
                assert r == {"id": 6, "ok": True, "result": False}  # still serving on the same connection
    finally:
        small.close()


def test_tcp_server_binds_loopback_by_default(bridge):
    assert bridge.host == "127.0.0.1"


def test_decompose_paper_task():
    steps = decompose(TASK)
    assert [(s.verb, s.object) for s in steps] == [("open", "middle drawer"), ("pick", "tape"), ("place", "tape"),
                                                   ("close", "middle drawer")]
    assert steps[2].target == "table" and [s.skill for s in steps] == ["open", "grasp", "place", "close"]
    assert steps[1].instruction == "pick up the tape"


@pytest.mark.parametrize("text, expected", [
    ("Open the top drawer then pick up the roll of tape and put it on the table; close the drawer.",
     [("open", "top drawer"), ("pick", "tape"), ("place", "tape"), ("close", "top drawer")]),
    ("pick up and place the tape on the table", [("pick", "tape"), ("place", "tape")]),
    ("put the tape in the drawer and shut it", [("place", "tape"), ("close", "drawer")]),
    ("push the mug to the left", [("push", "mug")]),
])  # fmt: skip
def test_decompose_cases(text, expected):
    assert [(s.verb, s.object) for s in decompose(text)] == expected


def test_decompose_errors():
    with pytest.raises(DecompositionError):
        decompose("")
    with pytest.raises(DecompositionError, match="dance"):
        decompose("open the drawer, dance wildly")


def test_decompose_llm_reply_uses_the_same_rules():
    content = json.dumps({"num_actions": 2, "actions": [{"verb": "opens", "object": "the middle drawer"},
                                                        {"verb": "grabs", "object": "the tape"}]})
    steps = steps_from_reply({"choices": [{"message": {"content": content}}]})
    assert [(s.verb, s.object) for s in steps] == [("open", "middle drawer"), ("pick", "tape")]
    with pytest.raises(DecompositionError):
        steps_from_reply({"choices": []})


def test_executor_runs_the_paper_task_on_the_twin():
    from real_robot.executor import Executor, table_v
    from real_robot.safety import SafeRobot
    from real_robot.skills import TwinScriptedPolicy

    robot = SafeRobot(make_robot("mujoco_twin", cameras=()), watchdog=False)
    robot.connect()
    try:
        ep = Executor(robot, TwinScriptedPolicy(), retries=0).run(TASK)
    finally:
        robot.disconnect()
    assert ep.success, ep.to_dict()
    tv = table_v([ep])
    assert tv["task_success_rate"] == 100.0 and tv["subtasks"]["close"]["rate"] == 100.0
    assert robot.events["estop"] == 0 and robot.events["workspace"] == 0


class _FakeRoboAct:
    """Stands in for a RoboAct-CLIP export: classify / encode / recombine with fixed answers."""

    class cfg:  # noqa: N801 -- mirrors the export's attribute
        actions = ["open", "close", "pick up", "put down"]
        objects = ["drawer", "tape"]

    def __init__(self, predicted: str) -> None:
        self.k = self.cfg.actions.index(predicted)

    def classify(self, video):
        import torch

        assert video.dtype == torch.uint8 and video.shape[:3] == (1, 16, 3)
        p = torch.full((1, 4), 0.02)
        p[0, self.k] = 0.94
        return {"action": p}

    def encode(self, video):
        import torch

        return torch.nn.functional.one_hot(torch.tensor([self.k]), 4).float()

    def recombine(self, subject, action, obj):
        import torch

        return torch.nn.functional.one_hot(torch.tensor([self.cfg.actions.index(action)]), 4).float()


def test_classifier_checker_uses_classifier_and_recombination():
    from real_robot.executor import ClassifierChecker

    step = decompose("open the middle drawer")[0]
    frames = [np.zeros((8, 8, 3), np.uint8)] * 5
    assert ClassifierChecker(_FakeRoboAct("open"))({}, step, frames)
    assert not ClassifierChecker(_FakeRoboAct("close"))({}, step, frames)
    assert not ClassifierChecker(_FakeRoboAct("open"))({}, step, [])


def test_renamed_robot_wraps_a_lerobot_style_arm():
    """A LeRobot-named arm (degrees, its own key names) behind our names, under the safety layer."""
    from real_robot.robot import JOINT_KEYS, RenamedRobot
    from real_robot.safety import SafeRobot

    names = ["shoulder_pan", "shoulder_lift", "upper_roll", "elbow_flex", "fore_roll", "wrist_flex", "wrist_roll"]

    class LeRobotStyle:
        name = "so_like"
        action_features = {f"{n}.pos": float for n in names} | {"gripper.pos": float}
        observation_features = action_features
        is_connected = False

        def __init__(self):
            from real_robot.twin_scene import HOME_Q

            self.state = {f"{n}.pos": float(np.degrees(q)) for n, q in zip(names, HOME_Q)} | {"gripper.pos": 0.0}

        def connect(self, calibrate=True):
            self.is_connected = True

        def disconnect(self):
            self.is_connected = False

        def get_observation(self):
            return dict(self.state)

        def send_action(self, action):
            assert set(action) == set(self.action_features)
            self.state.update(action)
            return action

    mapping = {k: f"{n}.pos" for k, n in zip(JOINT_KEYS, names)}
    robot = SafeRobot(RenamedRobot(LeRobotStyle(), mapping, scale={k: float(np.degrees(1)) for k in JOINT_KEYS}),
                      watchdog=False)
    robot.connect()
    q = joints_of(robot.get_observation())
    sent = robot.send_action(action_dict(q + 1.0, 1.0, 10.0))  # a 1 rad jump: velocity-limited
    assert 0 < sent["j0.pos"] - q[0] <= robot.limits.max_joint_vel * robot.limits.max_dt + 1e-9
    assert robot.robot.robot.state["shoulder_pan.pos"] == pytest.approx(np.degrees(sent["j0.pos"]))
