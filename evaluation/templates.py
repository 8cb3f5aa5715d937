"""Zero-shot prompt templates: OpenAI's published sets and which set each benchmark uses. Data only, no I/O.

Placeholders are `{c}` (CLIP_benchmark's convention), filled with `template.format(c=classname)`. The lists are
copied from openai/CLIP: `notebooks/Prompt_Engineering_for_ImageNet.ipynb` (80 ImageNet templates and the 7
selected by forward selection) and `data/prompts.md` (CIFAR-10/100: 18 templates; MNIST: one). CLIP_benchmark's
`en_zeroshot_classification_templates.json` holds the same strings; a unit test checks the ImageNet list against
open_clip's `OPENAI_IMAGENET_TEMPLATES`, and `benchmarks/agreement_clip_benchmark.py` against CLIP_benchmark.
"""

from __future__ import annotations

IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {c}.",
    "a photo of many {c}.",
    "a sculpture of a {c}.",
    "a photo of the hard to see {c}.",
    "a low resolution photo of the {c}.",
    "a rendering of a {c}.",
    "graffiti of a {c}.",
    "a bad photo of the {c}.",
    "a cropped photo of the {c}.",
    "a tattoo of a {c}.",
    "the embroidered {c}.",
    "a photo of a hard to see {c}.",
    "a bright photo of a {c}.",
    "a photo of a clean {c}.",
    "a photo of a dirty {c}.",
    "a dark photo of the {c}.",
    "a drawing of a {c}.",
    "a photo of my {c}.",
    "the plastic {c}.",
    "a photo of the cool {c}.",
    "a close-up photo of a {c}.",
    "a black and white photo of the {c}.",
    "a painting of the {c}.",
    "a painting of a {c}.",
    "a pixelated photo of the {c}.",
    "a sculpture of the {c}.",
    "a bright photo of the {c}.",
    "a cropped photo of a {c}.",
    "a plastic {c}.",
    "a photo of the dirty {c}.",
    "a jpeg corrupted photo of a {c}.",
    "a blurry photo of the {c}.",
    "a photo of the {c}.",
    "a good photo of the {c}.",
    "a rendering of the {c}.",
    "a {c} in a video game.",
    "a photo of one {c}.",
    "a doodle of a {c}.",
    "a close-up photo of the {c}.",
    "a photo of a {c}.",
    "the origami {c}.",
    "the {c} in a video game.",
    "a sketch of a {c}.",
    "a doodle of the {c}.",
    "a origami {c}.",
    "a low resolution photo of a {c}.",
    "the toy {c}.",
    "a rendition of the {c}.",
    "a photo of the clean {c}.",
    "a photo of a large {c}.",
    "a rendition of a {c}.",
    "a photo of a nice {c}.",
    "a photo of a weird {c}.",
    "a blurry photo of a {c}.",
    "a cartoon {c}.",
    "art of a {c}.",
    "a sketch of the {c}.",
    "a embroidered {c}.",
    "a pixelated photo of a {c}.",
    "itap of the {c}.",
    "a jpeg corrupted photo of the {c}.",
    "a good photo of a {c}.",
    "a plushie {c}.",
    "a photo of the nice {c}.",
    "a photo of the small {c}.",
    "a photo of the weird {c}.",
    "the cartoon {c}.",
    "art of the {c}.",
    "a drawing of the {c}.",
    "a photo of the large {c}.",
    "a black and white photo of a {c}.",
    "the plushie {c}.",
    "a dark photo of a {c}.",
    "itap of a {c}.",
    "graffiti of the {c}.",
    "a toy {c}.",
    "itap of my {c}.",
    "a photo of a cool {c}.",
    "a photo of a small {c}.",
    "a tattoo of the {c}.",
)
"""The 80 ImageNet prompts of the CLIP paper (notebook cell `imagenet_templates`), in the published order."""

SIMPLE_IMAGENET_TEMPLATES: tuple[str, ...] = (
    "itap of a {c}.",
    "a bad photo of the {c}.",
    "a origami {c}.",
    "a photo of the large {c}.",
    "a {c} in a video game.",
    "art of the {c}.",
    "a photo of the small {c}.",
)
"""The 7-prompt subset found by sequential forward selection ("performs a bit better than the full 80")."""

CIFAR_TEMPLATES: tuple[str, ...] = (
    "a photo of a {c}.",
    "a blurry photo of a {c}.",
    "a black and white photo of a {c}.",
    "a low contrast photo of a {c}.",
    "a high contrast photo of a {c}.",
    "a bad photo of a {c}.",
    "a good photo of a {c}.",
    "a photo of a small {c}.",
    "a photo of a big {c}.",
    "a photo of the {c}.",
    "a blurry photo of the {c}.",
    "a black and white photo of the {c}.",
    "a low contrast photo of the {c}.",
    "a high contrast photo of the {c}.",
    "a bad photo of the {c}.",
    "a good photo of the {c}.",
    "a photo of the small {c}.",
    "a photo of the big {c}.",
)
"""The 18 CIFAR-10/CIFAR-100 prompts of `data/prompts.md`: nine with "a", then the same nine with "the"."""

MNIST_TEMPLATES: tuple[str, ...] = ('a photo of the number: "{c}".',)
"""The single MNIST prompt of `data/prompts.md`; class names are the digits '0'..'9'."""

SYNTHETIC_TEMPLATES: tuple[str, ...] = (
    "a photo of a {c}",
    "{c}",
    "clip art of a {c}",
    "a {c} on a plain background",
    "simple {c} graphic",
)
"""Prompts for the synthetic web's held-out split, phrased like its English captions (infra/localweb/captions.py)."""

DATASET_TEMPLATES: dict[str, tuple[str, ...]] = {
    "imagenet1k": IMAGENET_TEMPLATES,
    "cifar10": CIFAR_TEMPLATES,
    "cifar100": CIFAR_TEMPLATES,
    "mnist": MNIST_TEMPLATES,
    "digits": MNIST_TEMPLATES,
    "synthetic": SYNTHETIC_TEMPLATES,
}
"""Per-dataset choice. `digits` (scikit-learn's handwritten digits) is MNIST's task, so it takes MNIST's prompt."""


def templates_for(dataset: str) -> tuple[str, ...]:
    """The templates `dataset` uses; any other dataset falls back to the 80 ImageNet ones (as CLIP_benchmark does)."""
    return DATASET_TEMPLATES.get(dataset, IMAGENET_TEMPLATES)


def format_prompts(templates: tuple[str, ...] | list[str], classname: str) -> list[str]:
    """Every template filled with `classname` (`{c}` placeholder), in template order."""
    return [t.format(c=classname) for t in templates]
