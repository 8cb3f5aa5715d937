"""The uint8 road of `embed_images`: open_clip's eval transform split into PIL ops + batched ToTensor/Normalize gives
bit-identical tensors and embeddings, and anything else runs the transform unchanged."""

import numpy as np
import open_clip
import torch
from torchvision import transforms as T

from evaluation.datasets import ImageList
from evaluation.embed import _Uint8Split, embed_images


def _images(n: int = 9) -> ImageList:
    rng = np.random.default_rng(0)
    items = [rng.integers(0, 256, (int(h), int(w), 3), dtype=np.uint8) for h, w in rng.integers(5, 90, (n, 2))]
    items.append(rng.integers(0, 256, (40, 30), dtype=np.uint8))  # grey: ImageList hands it over as RGB
    return ImageList(items)


def test_split_transform_is_bit_identical_to_the_original():
    pre = open_clip.image_transform(64, is_train=False)
    split = _Uint8Split.of(pre)
    assert split is not None
    images = _images()
    ref = torch.stack([pre(images[i]) for i in range(len(images))])
    got = split.finish(torch.stack([split(images[i]) for i in range(len(images))]), torch.device("cpu"))
    assert got.dtype == torch.float32 and torch.equal(got, ref)


def test_embeddings_equal_the_per_image_transform_with_and_without_workers():
    from evaluation.models import register_model_configs

    register_model_configs()
    torch.manual_seed(0)
    model, _, pre = open_clip.create_model_and_transforms("clipforge-tiny")
    images = _images(20)
    plain = T.Compose(list(pre.transforms) + [T.Lambda(lambda x: x)])  # a Compose the split refuses: runs as is
    assert _Uint8Split.of(plain) is None
    ref = embed_images(model, plain, images, batch_size=8, num_workers=0)
    for workers in (0, 1):
        assert np.array_equal(embed_images(model, pre, images, batch_size=8, num_workers=workers), ref)


def test_other_transforms_are_not_split():
    assert _Uint8Split.of(lambda im: im) is None
    assert _Uint8Split.of(T.Compose([T.ToTensor()])) is None  # nothing after ToTensor: no Normalize
    inplace = T.Normalize([0.5] * 3, [0.5] * 3, inplace=True)
    assert _Uint8Split.of(T.Compose([T.Resize(8), T.ToTensor(), inplace])) is None
    assert _Uint8Split.of(T.Compose([T.Grayscale(3), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])) is None
    assert _Uint8Split.of(T.Compose([T.Resize(8), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])) is not None
