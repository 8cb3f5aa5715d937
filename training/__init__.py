"""CLIP training on Ray Train over built shards (open_clip models and losses)."""
