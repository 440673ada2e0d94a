"""Run under torchrun by tests/test_data_parallel.py: train a tiny InvAct through encoders/train.py's
own pieces (setup_run + configs.training.fit), then let every rank report what it saw.

    torchrun --standalone --nproc_per_node 2 tests/dist_probe_encoder.py CONFIG.yaml REPORT_DIR
"""

import hashlib
import json
import sys
from pathlib import Path

import torch

from configs.loader import load_config
from configs.training import LoopConfig, fit, rank_slice
from encoders.train import TrainConfig, setup_run


def main() -> None:
    cfg = load_config(TrainConfig, sys.argv[1])
    report = Path(sys.argv[2])
    acc, out, method = setup_run(cfg)
    rank, world = acc.process_index, acc.num_processes
    # the rows this rank's loss draws at step 0 (InvActMethod.loss takes exactly this part)
    rows = method.sampler.batch(0).quads(rank_slice(method.sampler.quads, rank, world)).ego.tolist()
    fit(method, out, LoopConfig.of(cfg), progress=False, accelerator=acc)
    state = method.model.state_dict()
    digest = hashlib.sha1(b"".join(state[k].detach().cpu().contiguous().numpy().tobytes() for k in sorted(state)))
    report.mkdir(parents=True, exist_ok=True)
    (report / f"rank{rank}.json").write_text(json.dumps({
        "rank": rank, "world": world, "rows_step0": rows, "params_sha1": digest.hexdigest(),
        "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
