"""Zero-shot, retrieval and linear-probe evaluation of open_clip checkpoints."""
