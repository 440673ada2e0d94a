"""Latent-action VLA: stage 1 labelling, stage 2 pretraining, stage 3 post-training."""
