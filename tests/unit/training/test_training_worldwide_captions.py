"""Worldwide shards train unchanged (#21 part 8): non-Latin captions go through the training data UDF with the default
(open_clip BPE) tokenizer and a debug model trains a step on them."""

import io

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from training.config import ModelConfig, OptimConfig
from training.data import decode_augment_tokenize
from training.loss import build_loss, contrastive_loss
from training.model import build_model
from training.optim import build_optimizer

CAPTIONS = [
    "一只可爱的黑猫正在沙发上睡觉",  # zh
    "公園で遊ぶ二匹の犬",  # ja (kana + kanji)
    "Черная кошка спит на диване",  # ru
    "แมวสีดำนอนอยู่บนโซฟา",  # th
    "قطة سوداء نائمة على الأريكة",  # ar
    "A black cat sleeping on the sofa",  # en
]


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(buf, format="JPEG")
    return buf.getvalue()


def test_non_latin_captions_tokenize_and_train_a_step():
    torch.manual_seed(0)
    built = build_model(ModelConfig(name="clipforge-debug"), seed=0)
    images = [_jpeg((40 * i, 255 - 40 * i, 100)) for i in range(len(CAPTIONS))]
    batch = pa.table({"image": images, "caption": CAPTIONS, "uid64": pa.array(range(len(CAPTIONS)), pa.uint64())})
    out = decode_augment_tokenize(batch, model_name="clipforge-debug", image_size=32, crop_scale=(0.9, 1.0))
    tokens = out["text"]
    assert tokens.shape == (len(CAPTIONS), built.context_length) and tokens.dtype == np.int32
    assert len({row.tobytes() for row in tokens}) == len(CAPTIONS)  # every script gets its own tokens
    assert ((tokens > 0).sum(axis=1) >= 5).all()  # start, byte-level BPE content, end: no caption is empty
    model = built.model
    optimizer = build_optimizer(model, OptimConfig())
    before = [p.detach().clone() for p in model.parameters()]
    images_t = torch.from_numpy(out["image"]).permute(0, 3, 1, 2).float() / 255.0
    loss = contrastive_loss(build_loss("clip", 0, 1), model(images_t, torch.from_numpy(tokens).long()))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
