"""Behaviour-cloning heads on frozen action encoders (roboact_clip Sec. III-C; the R3M head).

    model.py   HeadConfig + PolicyHead: BatchNorm -> MLP(256, 256) -> action, or a STEP-style temporal head
    data.py    demo loading/validation, frame windows, cached frozen features (encoders.features cache)
    policy.py  HeadPolicy: the registered "policy_head" Policy (checkpoint dir with policy.json)

Training: policies/train.py. Importing this package registers "policy_head" in policies.POLICIES.
"""

from policies.heads.model import HeadConfig, PolicyHead
from policies.heads.policy import HeadPolicy

__all__ = ["HeadConfig", "HeadPolicy", "PolicyHead"]
