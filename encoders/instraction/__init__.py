"""InstrAction's action-centric parts (instraction.txt): Action Perceiver, soft-DTW, MAM, hard negatives,
the InstrAct-style benchmark and DTW segmentation.

    from encoders.instraction import soft_dtw, segment, ActionPerceiver
    loss = soft_dtw(cosine_cost(tokens, phrases), gamma=0.1)      # (B,) differentiable (Eq. 5)
    boundaries = segment(frame_emb, ["open the drawer", "pick up the red cube"], embed_text=f)
"""

from encoders.instraction.action_perceiver import ActionPerceiver, distill_loss, window_mask
from encoders.instraction.mam import MaskedActionDecoder, WordVocab, mam_loss
from encoders.instraction.negatives import order_swapped, render_caption, verb_altered, verb_phrases
from encoders.instraction.segment import boundary_error, segment
from encoders.instraction.soft_dtw import (
    align_loss,
    alignment_cost,
    cosine_cost,
    dtw_objective,
    dtw_path,
    order_loss,
    soft_dtw,
)

__all__ = [
    "ActionPerceiver", "MaskedActionDecoder", "WordVocab", "align_loss", "alignment_cost", "boundary_error",
    "cosine_cost", "distill_loss", "dtw_objective", "dtw_path", "mam_loss", "order_loss", "order_swapped",
    "render_caption", "segment", "soft_dtw", "verb_altered", "verb_phrases", "window_mask",
]
