"""Teleop recording (scripted and keyboard leaders) -> raw layout -> ingestion -> a trainable BC policy;
and the whole four-step task through the TCP bridge."""

from __future__ import annotations

import io
import sys

import numpy as np

from envs.demos import DemoReader
from real_robot import teleop
from real_robot.decompose import decompose
from real_robot.ingest import ingest
from real_robot.recorder import RawRecorder
from real_robot.robot import make_robot
from real_robot.safety import SafeRobot
from real_robot.skills import TwinScriptedPolicy


def test_scripted_teleop_records_markers_and_ingests_with_step_labels(tmp_path):
    task = "open the middle drawer, pick up the tape"
    robot = SafeRobot(make_robot("mujoco_twin", cameras=("front",), image_size=(24, 24)))
    robot.connect()
    try:
        rec = RawRecorder(task, robot="mujoco_twin", cameras=("front",))
        ok = teleop.record_scripted(robot, rec, decompose(task), TwinScriptedPolicy())
    finally:
        robot.disconnect()
    assert ok and [m["label"] for m in rec.markers] == ["open the middle drawer", "pick up the tape"]
    rec.save(tmp_path / "raw" / "episode_0000")
    rep = ingest(tmp_path / "raw", "raw", tmp_path / "demos", rate=20.0)
    assert rep["status"] == "written", rep["problems"]
    with DemoReader(tmp_path / "demos" / "demos.hdf5") as r:
        d = r[0]
    assert len(d) == len(rec) and d.obs["agentview_rgb"].shape == (len(rec), 24, 24, 3)
    labels = [s for i, s in enumerate(d.skills) if i == 0 or s != d.skills[i - 1]]
    assert labels == ["open", "grasp"]

    # the learned step policy (policies/heads/twin.py) reads the same file through envs.episodes
    from envs.policy_api import build_policy
    from policies.heads.twin import TwinTrainConfig, train

    s = train(TwinTrainConfig(demos=str(tmp_path / "demos"), out=str(tmp_path / "twin"), steps=50, log_every=10,
                              progress=False, threads=1))
    assert s["frames"] == len(d) and np.isfinite(s["final_loss"])
    pol = build_policy(str(tmp_path / "twin" / "policy"))
    pol.reset()
    obs = {f"j{i}.pos": 0.1 for i in range(7)} | {"gripper.pos": 0.0}
    a = pol.act(obs, "open the middle drawer")
    assert a.shape == (9,) and np.all(np.isfinite(a)) and pol.done() in (True, False)


def test_keyboard_leader_reads_piped_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("m ffff g\nrr m q\n"))
    robot = SafeRobot(make_robot("mujoco_twin", cameras=()))
    robot.connect()
    try:
        rec = RawRecorder("open the middle drawer, pick up the tape", cameras=())
        teleop.record_keyboard(robot, rec, decompose(rec.instruction))
    finally:
        robot.disconnect()
    assert len(rec) == 9 and [m["label"] for m in rec.markers] == ["open the middle drawer", "pick up the tape"]
    z = np.array([robot.kin.fk(np.array(r[:7]))[0][2] for r in rec.rows["action"]])
    assert z[4] < z[0] - 0.03 and rec.rows["action"][5][7] == 1.0  # jogged down, then gripper shut


def test_four_step_task_through_the_tcp_bridge():
    from real_robot.executor import Executor
    from real_robot.tcp import BridgeServer, TcpRobot

    with BridgeServer(make_robot("mujoco_twin", cameras=()), port=0) as server:
        robot = SafeRobot(TcpRobot(port=server.port))
        robot.connect()
        try:
            ep = Executor(robot, TwinScriptedPolicy(), retries=0).run(teleop.TASK)
        finally:
            robot.disconnect()
    assert ep.success, ep.to_dict()
