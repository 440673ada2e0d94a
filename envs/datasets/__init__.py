"""Adapters that turn the papers' real datasets, as downloaded, into the project's clip index.

    python scripts/index_dataset.py --kind ego_exo4d --root /data/egoexo --out data/egoexo4d
    from envs.datasets import DATASETS; DATASETS.get("ssv2")      # the adapter class

One module per dataset (ego_exo4d, ssv2, rh20t, bridge, charades_ego, ntu120), each registering an
adapter class in DATASETS; `common` holds the shared decoding / resumable writing; `index` the
config and the `index_dataset` entry point. The output folder is read exactly like the generated
benchmark (`envs.atomic_world.dataset.AtomicClipDataset`, `read_index`, `read_meta`).

Not registered here (their input is not a downloaded video dataset): `demo_clips` cuts the project's
robot demos into the same index, one clip per expert skill segment (scripts/demo_clips.py); `mix`
reads several indexes as one, with sampling weights (encoders/train.py `data=[A,B] data_weights=[..]`).
"""

from __future__ import annotations

from configs.registry import Registry

DATASETS: Registry = Registry(
    "dataset",
    modules=("envs.datasets.ego_exo4d", "envs.datasets.ssv2", "envs.datasets.rh20t", "envs.datasets.bridge",
             "envs.datasets.charades_ego", "envs.datasets.ntu120"),
)  # fmt: skip
