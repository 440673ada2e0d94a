"""Behaviour-cloning heads on frozen action encoders (roboact_clip Sec. III-C; the R3M head).

    model.py   HeadConfig + HeadNetwork: BatchNorm -> MLP(256, 256) -> action, or a STEP-style temporal head
    data.py    the demo EpisodeDataset's windows for a head (views, proprio history, action), streamed
               frozen features (encoders.streaming.episode_features) in the encoders.features cache
    policy.py  EncoderHeadPolicy: the registered "policy_head" Policy (checkpoint dir with policy.json)

Training: policies/train.py. Importing this package registers "policy_head" in policies.POLICIES.
"""

from policies.heads.model import HeadConfig, HeadNetwork
from policies.heads.policy import EncoderHeadPolicy

__all__ = ["HeadConfig", "EncoderHeadPolicy", "HeadNetwork"]
