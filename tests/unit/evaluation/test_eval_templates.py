"""Prompt sets: the published OpenAI lists, and which set each benchmark takes."""

import open_clip

from evaluation.templates import (
    CIFAR_TEMPLATES,
    IMAGENET_TEMPLATES,
    MNIST_TEMPLATES,
    SIMPLE_IMAGENET_TEMPLATES,
    format_prompts,
    templates_for,
)


def test_imagenet_80_equal_open_clip_copy_in_order():
    assert len(IMAGENET_TEMPLATES) == 80 and len(set(IMAGENET_TEMPLATES)) == 80
    assert list(IMAGENET_TEMPLATES) == [t("{c}") for t in open_clip.OPENAI_IMAGENET_TEMPLATES]


def test_simple_7_equal_open_clip_copy():
    assert list(SIMPLE_IMAGENET_TEMPLATES) == [t("{c}") for t in open_clip.SIMPLE_IMAGENET_TEMPLATES]
    assert set(SIMPLE_IMAGENET_TEMPLATES) <= set(IMAGENET_TEMPLATES)


def test_cifar_18_and_mnist_1():
    assert len(CIFAR_TEMPLATES) == 18 and len(set(CIFAR_TEMPLATES)) == 18
    assert CIFAR_TEMPLATES[0] == "a photo of a {c}." and CIFAR_TEMPLATES[9] == "a photo of the {c}."
    assert [t.replace(" the ", " a ") for t in CIFAR_TEMPLATES[9:]] == list(CIFAR_TEMPLATES[:9])
    assert MNIST_TEMPLATES == ('a photo of the number: "{c}".',)


def test_per_dataset_choice_and_fallback():
    assert templates_for("digits") == MNIST_TEMPLATES == templates_for("mnist")
    assert templates_for("cifar100") == CIFAR_TEMPLATES
    assert templates_for("something-else") == IMAGENET_TEMPLATES


def test_format_prompts_uses_the_c_placeholder():
    assert format_prompts(MNIST_TEMPLATES, "7") == ['a photo of the number: "7".']
    assert format_prompts(("{c} and {c}",), "x") == ["x and x"]
