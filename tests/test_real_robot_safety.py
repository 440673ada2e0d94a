"""Safety layer: limits never exceeded under random and adversarial commands (hypothesis), rate limit,
latching e-stop, wrist-force trip, and the watchdog's stopping time measured on the real-time twin."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from real_robot.kinematics import ArmKinematics
from real_robot.robot import FT_KEYS, JOINT_KEYS, action_dict, joints_of, make_robot
from real_robot.safety import SafeRobot, SafetyError, SafetyLimits
from real_robot.twin_scene import HOME_Q

KIN = ArmKinematics()


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakeArm:
    """Tracks its target perfectly; records every command it receives."""

    name = "fake"

    def __init__(self, q0: np.ndarray = HOME_Q) -> None:
        self.q = np.asarray(q0, float).copy()
        self.sent: list[dict] = []
        self.force = np.zeros(3)
        self._connected = False

    observation_features = {k: float for k in JOINT_KEYS}
    action_features = {k: float for k in JOINT_KEYS}

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def get_observation(self) -> dict:
        obs = {k: float(v) for k, v in zip(JOINT_KEYS, self.q)}
        obs.update({k: float(v) for k, v in zip(FT_KEYS, [*self.force, 0, 0, 0])})
        obs["gripper.pos"] = 0.0
        return obs

    def send_action(self, action: dict) -> dict:
        self.sent.append(dict(action))
        self.q = np.array([action[k] for k in JOINT_KEYS])
        return action


def _safe(limits: SafetyLimits | None = None) -> tuple[SafeRobot, FakeArm, FakeClock]:
    arm, clock = FakeArm(), FakeClock()
    robot = SafeRobot(arm, limits or SafetyLimits(), kinematics=KIN, clock=clock, watchdog=False)
    robot.connect()
    return robot, arm, clock


BIG = st.floats(allow_nan=True, allow_infinity=True, width=64)
SANE = st.floats(-4.0, 4.0)
joint_vec = st.lists(st.one_of(SANE, SANE, SANE, BIG), min_size=7, max_size=7)
command = st.tuples(
    joint_vec,
    st.one_of(st.floats(-2, 3), BIG),  # gripper
    st.one_of(st.floats(-100, 500), BIG),  # grip force
    st.one_of(st.just(0.0), st.floats(0.0, 0.3), st.floats(0.0, 5.0)),  # dt before the command
    st.booleans(),  # drop a key (malformed)
)


def _check_invariants(robot: SafeRobot, lim: SafetyLimits) -> None:
    lo, hi = np.asarray(lim.joint_lower), np.asarray(lim.joint_upper)
    prev = None
    last_cmd_t = -math.inf
    for s in robot.log:
        assert np.all(np.isfinite(s.q))
        assert np.all(s.q >= lo - 1e-12) and np.all(s.q <= hi + 1e-12), "joint position limit"
        p, _ = KIN.fk(s.q)
        assert np.all(p >= np.asarray(lim.workspace_lo) - 1e-9), f"workspace lo {p}"
        assert np.all(p <= np.asarray(lim.workspace_hi) + 1e-9), f"workspace hi {p}"
        assert 0.0 <= s.gripper <= 1.0 and 0.0 <= s.force <= lim.max_gripper_force
        if s.kind == "cmd":
            if prev is not None:
                dt = min(s.t - prev.t, lim.max_dt)
                assert np.max(np.abs(s.q - prev.q)) <= lim.max_joint_vel * dt + 1e-9, "joint velocity limit"
            assert s.t - last_cmd_t >= 1.0 / lim.max_rate_hz - 1e-12, "rate limit"
            last_cmd_t = s.t
        else:
            last_cmd_t = -math.inf
        prev = s


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(command, min_size=1, max_size=40))
def test_limits_hold_under_random_and_adversarial_commands(cmds):
    lim = SafetyLimits()
    robot, arm, clock = _safe(lim)
    for q, g, f, dt, drop in cmds:
        clock.t += dt
        a = {k: v for k, v in zip(JOINT_KEYS, q)}
        a["gripper.pos"], a["gripper.force"] = g, f
        if drop:
            a.pop("j3.pos")
        robot.send_action(a)
    assert len(arm.sent) == len(robot.log)  # everything the arm got is in the log
    _check_invariants(robot, lim)


@settings(max_examples=25, deadline=None, database=None)
@given(st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1)), min_size=5, max_size=30))
def test_workspace_box_holds_when_a_policy_pushes_outward(dirs):
    """Adversarial: every command jumps far toward a random Cartesian direction (via IK) -- the fingertip
    must stay in the box however hard it is pushed."""
    lim = SafetyLimits(workspace_lo=(0.2, -0.2, 0.1), workspace_hi=(0.5, 0.2, 0.4))
    robot, arm, clock = _safe(lim)
    q = HOME_Q.copy()
    for d in dirs:
        clock.t += 0.05
        p, R = KIN.fk(q)
        q, _ = KIN.ik(p + 0.5 * np.asarray(d), None, q, iters=20)
        robot.send_action(action_dict(q, 0.0, 10.0))
        q = joints_of(arm.get_observation())
    _check_invariants(robot, lim)


def test_starting_outside_the_box_is_refused():
    with pytest.raises(SafetyError):
        _safe(SafetyLimits(workspace_lo=(0.5, -0.1, 0.5), workspace_hi=(0.6, 0.1, 0.6)))


def test_rate_limit_drops_floods():
    robot, arm, clock = _safe()
    n0 = len(arm.sent)
    for _ in range(50):  # 50 commands at the same instant
        robot.send_action(action_dict(HOME_Q, 0.0, 5.0))
    assert len(arm.sent) - n0 == 1 and robot.events["rate"] == 49


def test_estop_latches_until_reset_and_force_trips_it():
    robot, arm, clock = _safe()
    robot.estop("test")
    n = len(arm.sent)
    for _ in range(5):
        clock.t += 0.1
        robot.send_action(action_dict(HOME_Q + 0.05, 1.0, 10.0))
    assert len(arm.sent) == n and robot.events["refused_estop"] == 5
    robot.reset_estop()
    clock.t += 0.1
    robot.send_action(action_dict(HOME_Q + 0.05, 1.0, 10.0))
    assert len(arm.sent) == n + 1
    arm.force = np.array([0.0, 0.0, 1000.0])
    robot.get_observation()
    assert robot.estopped is not None and "wrist force" in robot.estopped


def test_watchdog_stops_the_realtime_twin_within_its_deadline():
    """Measured on the real-time twin: stream a motion, stop commanding, time the hold and the stop."""
    lim = SafetyLimits(watchdog_s=0.2, max_joint_vel=1.0)
    twin = make_robot("mujoco_twin", realtime_scale=1.0, cameras=())
    robot = SafeRobot(twin, lim)
    robot.connect()
    try:
        q = joints_of(robot.get_observation())
        t0, moving = time.monotonic(), 0.0
        # j0 sweeps at the velocity limit for 0.4 s, longer (up to 3 s) until it moves: on a loaded
        # CPU the real-time twin lags behind the commands
        while time.monotonic() < t0 + 3.0:
            q[0] += 0.02
            robot.send_action(action_dict(q, 0.0, 10.0))
            time.sleep(0.02)
            if time.monotonic() > t0 + 0.4:
                moving = abs(robot.get_observation()["j0.vel"])
                if moving > 0.3:
                    break
        t_last = [s for s in robot.log if s.kind == "cmd"][-1].t
        deadline = time.monotonic() + 3.0
        stop_t = None
        while time.monotonic() < deadline:
            obs = robot.get_observation()
            if robot.held and stop_t is None and abs(obs["j0.vel"]) < 0.02:
                stop_t = robot.clock()
                break
            time.sleep(0.005)
        # the hold that answers the end of the stream: the first one after the last command. (An
        # earlier one can happen mid-stream on a loaded CPU, rightly: a send_action that steps the
        # lagging real-time twin up to the wall clock can take longer than watchdog_s, and no other
        # command arrives meanwhile. CI saw one 0.39 s before the last command.)
        holds = [s for s in robot.log if s.kind == "hold" and s.t > t_last]
    finally:
        robot.disconnect()
    assert moving > 0.3, "the arm was moving when commands stopped"
    assert holds, "the watchdog never held the arm"
    hold_latency = holds[0].t - t_last
    # the watchdog polls every deadline/10; allow scheduling slack on a loaded CPU
    assert lim.watchdog_s <= hold_latency <= lim.watchdog_s + 0.15, hold_latency
    assert stop_t is not None and stop_t - t_last <= lim.watchdog_s + 0.5, (stop_t, t_last)
