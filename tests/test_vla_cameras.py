"""Stage 3 reads the heads' cameras and runs their chunk execution (issue 22, vla/views.py): several
camera views through one tower (tokens concatenated in camera order), the cameras declared by the
policy and recorded in its checkpoint (an older one loads as agentview only), ACT ensembling through
the rollout loop's TemporalEnsemble."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.rollout import EnvStepper, TemporalEnsemble, run_loop
from tests.line_env import LineEnv

torch.set_num_threads(1)

BOTH = ["agentview_rgb", "eye_in_hand_rgb"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_cam(tmp_path_factory) -> dict[str, Path]:
    """Tiny demos with both cameras and a 2-step two-camera, ensembled stage-3 export (init none)."""
    from test_vla_pipeline import make_demos, posttrain_cfg

    from vla.posttrain import train

    tmp = tmp_path_factory.mktemp("cams")
    demos = make_demos(tmp / "demos", files=1, demos=2, T=6)
    run = train(posttrain_cfg("none", demos, tmp / "s3", cameras=BOTH, execution="ensemble", val_windows=2),
                progress=False)
    return {"tmp": tmp, "demos": demos, "policy": run / "policy"}


def test_two_camera_batch_and_twice_the_visual_tokens(two_cam, tmp_path):
    from test_vla_model import write_openvla

    from envs import protocol
    from envs.episodes import read_episodes
    from vla.data import DemoSet, read_demos
    from vla.modeling import build_vla
    from vla.views import view_pixels

    ds = DemoSet(read_demos(two_cam["demos"], image_size=16, center_crop=False, cameras=BOTH), chunk=2,
                 cameras=BOTH)
    b = ds.items(np.array([0, 3]))
    assert b["images"].shape == (2, 2, 16, 16, 3)  # (b, V, S, S, 3): both cameras, in order
    ref = read_episodes(two_cam["demos"], keys=tuple(BOTH))[0]
    for v, cam in enumerate(BOTH):
        want = [protocol.vla_image(ref.data[cam][t], size=16, crop=False) for t in (0, 3)]
        np.testing.assert_array_equal(b["images"][:, v], np.stack(want))

    # every registered model type: V views -> V N image tokens, view v's block = that image alone
    rng = np.random.default_rng(0)
    for vla in (build_vla("tiny"), build_vla(str(write_openvla(tmp_path / "openvla")))):
        imgs = rng.integers(0, 255, (2, 2, 40, 40, 3), dtype=np.uint8)  # (B, V, H, W, 3)
        ids, mask = vla.tokenize(["turn on the stove", "open the drawer"])
        one, two = view_pixels(vla, imgs[:, 0]), view_pixels(vla, imgs)
        assert two.shape[:2] == (2, 2)
        n = vla.num_image_tokens
        with torch.no_grad():
            tok = vla.encode_images(two)
            assert tok.shape[1] == 2 * n == 2 * vla.encode_images(one).shape[1]
            for v in range(2):
                torch.testing.assert_close(tok[:, v * n:(v + 1) * n], vla.encode_images(two[:, v]))
            h1, h2 = vla(one, ids, mask), vla(two, ids, mask)
        assert h2.shape[1] - h1.shape[1] == n and h1.shape[1] == n + ids.shape[1]
        # the last text token sits V N + len - 1 into the sequence, as last_text_index says
        last = vla.last_text_index(mask, views=2)
        assert int(last[0]) == 2 * n + int(mask[0].sum()) - 1


def test_two_camera_policy_declares_reads_and_records_both(two_cam):
    from envs.policy_api import build_policy

    meta = json.loads((two_cam["policy"] / "policy.json").read_text())
    assert meta["cameras"] == BOTH and meta["execution"] == "ensemble"
    pol = build_policy(str(two_cam["policy"]))
    assert pol.inputs.cameras == tuple(BOTH) and pol.inputs.execution == "ensemble"
    rng = np.random.default_rng(1)
    s = pol.image_size
    obs = {c: rng.integers(0, 255, (s, s, 3), dtype=np.uint8) for c in BOTH}
    obs["proprio"] = rng.normal(size=8).astype(np.float32)
    a = pol.act(obs, "turn on stove 0")
    assert a.shape == (4, 7) and np.all(np.isfinite(a))
    # the wrist view reaches the model: another wrist frame, other actions
    other = dict(obs, eye_in_hand_rgb=255 - obs["eye_in_hand_rgb"])
    assert not np.allclose(pol.act(other, "turn on stove 0"), a)
    with pytest.raises(ValueError, match="eye_in_hand_rgb"):
        pol.act({"agentview_rgb": obs["agentview_rgb"], "proprio": obs["proprio"]}, "turn on stove 0")
    # batched (policy server) path: the same actions as act
    (row,) = pol.act_batch([(pol.session(), obs, "turn on stove 0")])
    np.testing.assert_allclose(row, a, atol=1e-5)
    # the evaluators' override, in the rollout loop's words
    assert build_policy(str(two_cam["policy"]), execution="receding").inputs.execution == "receding"


def test_old_checkpoint_without_cameras_loads_as_agentview_open_loop(two_cam, tmp_path):
    from envs.policy_api import build_policy
    from vla.posttrain import load_action_vla

    old = tmp_path / "old"
    shutil.copytree(two_cam["policy"], old)
    meta = json.loads((old / "policy.json").read_text())
    del meta["cameras"], meta["execution"]  # as written before issue 22
    (old / "policy.json").write_text(json.dumps(meta))
    _, m = load_action_vla(old)
    assert m["cameras"] == ["agentview_rgb"] and m["execution"] == "open_loop"
    pol = build_policy(str(old))
    assert pol.inputs.cameras == ("agentview_rgb",) and pol.inputs.execution == "receding"
    s = pol.image_size
    a = pol.act({"agentview_rgb": np.zeros((s, s, 3), np.uint8), "proprio": np.zeros(8, np.float32)}, "x")
    assert a.shape == (4, 7)


class ConstChunk(torch.nn.Module):
    """A stand-in ActionVLA: the same normalised chunk (K, 7) for every input; records image shapes."""

    def __init__(self, chunk: np.ndarray) -> None:
        super().__init__()
        self.chunk = torch.nn.Parameter(torch.as_tensor(chunk, dtype=torch.float32), requires_grad=False)
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, images, texts, proprio=None) -> torch.Tensor:
        self.shapes.append(tuple(np.shape(images)))
        return self.chunk.unsqueeze(0).expand(len(texts), -1, -1)


def const_policy(execution: str, k: int = 4):
    from vla.data import ActionStats
    from vla.policy import VLAPolicy

    rows = np.zeros((k, 7))
    rows[:, 0] = 0.1  # LineEnv moves 0.01 per step: no success within the test's steps
    rows[:, 1] = np.linspace(-0.9, 0.9, k)  # each row of the chunk distinct
    meta = {"chunk": k, "action_stats": ActionStats(q01=-np.ones(7), q99=np.ones(7)).to_dict(),
            "image_size": 16, "proprio_dim": 0, "cameras": BOTH, "execution": execution}
    return VLAPolicy(ConstChunk(rows), meta), rows


def test_ensemble_execution_is_the_heads_temporal_ensemble():
    steps, k = 10, 4
    applied: dict[str, list[np.ndarray]] = {}
    for execution in ("open_loop", "ensemble"):
        pol, rows = const_policy(execution, k)
        env = LineEnv()
        stepper = EnvStepper(env)
        stepper.reset()
        seen: list[np.ndarray] = []
        res = run_loop(stepper, pol, env.instruction, steps, to_action=lambda a: a,
                       before_step=lambda t, obs, a, seen=seen: seen.append(np.asarray(a)))
        applied[execution] = seen
        assert res.steps == steps and pol.model.shapes[0] == (1, 2, 16, 16, 3)  # both views reach the model
        if execution == "ensemble":  # acts (and renders both cameras) at every step
            assert res.acts == steps and stepper.rendered == 2 * steps
        else:  # once per chunk
            assert res.acts == -(-steps // k) and stepper.rendered == 2 * res.acts
    pol, rows = const_policy("ensemble", k)
    ens = TemporalEnsemble(pol.inputs.ensemble_decay)  # what the heads get from the loop
    want = []
    for _ in range(steps):
        ens.push(rows)
        want.append(ens.pop())
    np.testing.assert_allclose(np.stack(applied["ensemble"]), np.stack(want), atol=1e-6)
    np.testing.assert_allclose(np.stack(applied["open_loop"]), np.stack([rows[t % k] for t in range(steps)]),
                               atol=1e-6)
    # a constant chunk ensembled: step t averages rows t, t-1, ..., 0 (oldest first), not row t % K
    assert not np.allclose(applied["ensemble"][1], applied["open_loop"][1])


def test_config_keys_checked_and_defaults():
    from configs.loader import load_config
    from vla.compare import CompareConfig, stage_configs
    from vla.posttrain import PosttrainConfig

    with pytest.raises(ValueError, match="unknown camera 'wrist_rgb'"):
        PosttrainConfig(cameras=["wrist_rgb"]).validate()
    with pytest.raises(ValueError, match="'chunked' is not one of open_loop, ensemble"):
        PosttrainConfig(execution="chunked").validate()
    post = load_config(PosttrainConfig, REPO / "configs" / "vla" / "posttrain.yaml")
    assert post.cameras == BOTH and post.execution == "ensemble" and post.chunk == 8
    gpu = load_config(CompareConfig, REPO / "configs" / "vla" / "compare_gpu.yaml")
    assert gpu.demos == "runs/demos/libero/libero_goal" and gpu.trials == 50 and gpu.max_steps == 200
    assert [(e.suite, e.tasks) for e in gpu.evals] == [("libero_goal", "0,5,6,7")]
    _, s3 = stage_configs(gpu, Path("V"), pretrained=False)
    assert s3.cameras == BOTH and s3.execution == "ensemble" and s3.chunk == 8 and s3.max_demos == 50
