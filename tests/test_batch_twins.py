"""ExemplarTwins, the batch form after the loader: (images, labels) → (images, labels), replacing or appending."""

import pytest
import torch
from torch.utils.data import default_collate

from conftest import blob_images
from exaug import ExemplarAugment, ExemplarCollate, ExemplarTwins


@pytest.fixture(scope="module")
def batch():
    images, labels = blob_images(8, seed=11)
    return (images * 255).round().to(torch.uint8), labels


def twins(bundle, p, append, seed=0):
    return ExemplarTwins(bundle, p=p, append=append, rng=torch.Generator().manual_seed(seed))


def test_replace_at_p_zero_returns_the_batch_unchanged(tiny_generator_dir, batch):
    images, labels = twins(tiny_generator_dir, 0.0, append=False)(*batch)
    assert torch.equal(images, batch[0]) and torch.equal(labels, batch[1])


def test_replace_makes_the_same_twins_as_the_transform_on_a_batch(tiny_generator_dir, batch):
    images, labels = twins(tiny_generator_dir, 0.5, append=False, seed=4)(*batch)
    transform = ExemplarAugment.from_pretrained(tiny_generator_dir, p=0.5, rng=torch.Generator().manual_seed(4))
    assert torch.equal(images, transform(batch[0])) and torch.equal(labels, batch[1])
    assert images.dtype == torch.uint8 and not torch.equal(images, batch[0])


def test_append_keeps_every_real_image_and_adds_twins_with_their_labels(tiny_generator_dir, batch):
    images, labels = twins(tiny_generator_dir, 1.0, append=True)(*batch)
    assert images.shape == (16, *batch[0].shape[1:]) and images.dtype == torch.uint8
    assert torch.equal(images[:8], batch[0]) and not torch.equal(images[8:], batch[0])
    assert torch.equal(labels, torch.cat([batch[1], batch[1]]))


def test_soft_labels_are_appended_row_by_row(tiny_generator_dir, batch):
    one_hot = torch.nn.functional.one_hot(batch[1], 4).float() * 0.9 + 0.025
    _, labels = twins(tiny_generator_dir, 1.0, append=True)(batch[0], one_hot)
    assert torch.equal(labels, torch.cat([one_hot, one_hot]))


def test_a_batch_tuple_is_taken_as_one_argument_as_by_mixup(tiny_generator_dir, batch):
    assert all(torch.equal(a, b) for a, b in zip(twins(tiny_generator_dir, 0.5, True)(batch),
                                                  twins(tiny_generator_dir, 0.5, True)(*batch)))


def test_the_collate_runs_the_same_code_with_a_probability_of_its_own(tiny_generator_dir, batch):
    samples = list(zip(batch[0], batch[1]))
    augment = ExemplarAugment.from_pretrained(tiny_generator_dir, p=0.0, rng=torch.Generator().manual_seed(2))
    collated = ExemplarCollate(augment, append=True, p=1.0)(samples)
    direct = twins(tiny_generator_dir, 1.0, append=True, seed=2)(*default_collate(samples))
    assert collated[0].shape[0] == 16 and all(torch.equal(a, b) for a, b in zip(collated, direct))


@pytest.mark.parametrize("labels, message", [(["a", "b"], "labels must be numbers"),
                                             (torch.arange(3), "8 images but labels of shape \\(3,\\)")])
def test_labels_that_do_not_fit_the_batch_are_refused_by_name(tiny_generator_dir, batch, labels, message):
    with pytest.raises(ValueError, match=message):
        twins(tiny_generator_dir, 1.0, append=True)(batch[0], labels)


def test_a_list_of_images_is_refused_with_the_fix(tiny_generator_dir, batch):
    with pytest.raises(TypeError, match="torch.stack"):
        twins(tiny_generator_dir, 1.0, append=True)(list(batch[0]), batch[1])


def test_a_collate_fn_that_gives_a_list_of_images_is_refused_with_the_fix(tiny_generator_dir, batch):
    augment = ExemplarAugment.from_pretrained(tiny_generator_dir, p=1.0)
    as_lists = ExemplarCollate(augment, append=True, collate_fn=lambda samples: ([s[0] for s in samples],
                                                                             [int(s[1]) for s in samples]))
    with pytest.raises(TypeError, match="torch.stack"):
        as_lists(list(zip(batch[0], batch[1])))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_batch_on_the_gpu_stays_there(tiny_generator_dir, batch):
    images, labels = twins(tiny_generator_dir, 1.0, append=True)(batch[0].cuda(), batch[1].cuda())
    assert images.is_cuda and labels.is_cuda


def test_a_generator_object_is_a_source_and_anything_else_is_refused(tiny_generator_dir, batch):
    from exaug import load_generator

    images, _ = ExemplarTwins(load_generator(tiny_generator_dir), p=1.0, append=True)(*batch)
    assert images.shape[0] == 16
    with pytest.raises(TypeError, match="source must be a generator"):
        ExemplarTwins(42)
    with pytest.raises(ValueError, match="p=1.5 is a probability"):
        ExemplarTwins(tiny_generator_dir, p=1.5)


@pytest.mark.parametrize("append", [False, True])
def test_an_empty_batch_comes_back_empty_and_an_image_batch_stays_one(tiny_generator_dir, batch, append):
    from torchvision import tv_tensors

    empty, labels = twins(tiny_generator_dir, 1.0, append)(batch[0][:0], batch[1][:0])
    assert empty.shape[0] == 0 and labels.shape[0] == 0
    images, _ = twins(tiny_generator_dir, 1.0, append)(tv_tensors.Image(batch[0]), batch[1])
    assert isinstance(images, tv_tensors.Image)
