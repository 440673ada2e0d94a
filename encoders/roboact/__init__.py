"""RoboAct-CLIP (roboact_clip.txt): model (Eq. 1-27), losses, training method. Its annotation parsers are
envs.datasets.annotations (the dataset adapters read them too).

Importing the package registers the `roboact_clip` encoder; `build_encoder("roboact_clip")` does it lazily.
"""

from encoders.roboact.model import FACTORS, RoboActConfig, RoboActEncoder, sinusoidal_positions

__all__ = ["FACTORS", "RoboActConfig", "RoboActEncoder", "sinusoidal_positions"]
