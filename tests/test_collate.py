"""ExemplarCollate: batched twins in a DataLoader's collate_fn, replacing or appending."""

import pickle

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import v2

from conftest import blob_images
from exaug import ExemplarAugment, ExemplarCollate
from exaug.twins import twins_of


@pytest.fixture(scope="module")
def samples():
    images, labels = blob_images(8)
    return [(image, int(label)) for image, label in zip((images * 255).round().to(torch.uint8), labels)]


def make(tiny_generator_dir, p: float, **options) -> ExemplarCollate:
    return ExemplarCollate(ExemplarAugment.from_pretrained(tiny_generator_dir, p=p), **options)


def test_replace_mode_at_p_zero_is_the_default_collate(tiny_generator_dir, samples):
    images, labels = make(tiny_generator_dir, 0.0)(samples)
    expected_images, expected_labels = torch.utils.data.default_collate(samples)
    assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)


def test_replace_mode_at_p_one_makes_every_image_its_twin(tiny_generator_dir, samples):
    collate = make(tiny_generator_dir, 1.0)
    real, labels = torch.utils.data.default_collate(samples)
    torch.manual_seed(0)
    images, out_labels = collate(samples)
    torch.manual_seed(0)
    torch.rand(len(samples))  # the per-image replace draws come first, then the noise
    noise = torch.randn(len(samples), collate.augment.generator.config.latent_dim)
    assert torch.equal(images, twins_of(collate.augment.generator, real, noise))
    assert images.dtype == torch.uint8 and torch.equal(out_labels, labels)


def test_append_mode_keeps_every_real_image_and_adds_twins_with_their_labels(tiny_generator_dir, samples):
    real, labels = torch.utils.data.default_collate(samples)
    images, out_labels = make(tiny_generator_dir, 1.0, append=True)(samples)
    assert images.shape == (16, *real.shape[1:]) and images.dtype == real.dtype
    assert torch.equal(images[:8], real) and not torch.equal(images[8:], real)
    assert torch.equal(out_labels, torch.cat([labels, labels]))


def test_append_mode_adds_twins_for_about_a_p_share_of_the_batch(tiny_generator_dir, samples):
    collate = make(tiny_generator_dir, 0.5, append=True)
    torch.manual_seed(0)
    sizes = [collate(samples)[0].shape[0] for _ in range(200)]
    assert min(sizes) >= 8 and max(sizes) <= 16
    assert abs(sum(sizes) / len(sizes) - 12) < 0.5  # 8 real + 0.5·8 twins on average


def test_append_mode_at_p_zero_adds_nothing(tiny_generator_dir, samples):
    images, labels = make(tiny_generator_dir, 0.0, append=True)(samples)
    assert images.shape[0] == labels.shape[0] == len(samples)


def test_the_per_image_transform_runs_after_generation_on_real_images_and_twins(tiny_generator_dir, samples):
    to_float = v2.ToDtype(torch.float32, scale=True)
    torch.manual_seed(0)
    as_uint8, _ = make(tiny_generator_dir, 1.0, append=True)(samples)
    torch.manual_seed(0)
    as_float, _ = make(tiny_generator_dir, 1.0, append=True, transform=to_float)(samples)
    assert as_float.dtype == torch.float32 and torch.equal(as_float, to_float(as_uint8))


def test_with_an_rng_the_append_draws_ignore_the_global_stream(tiny_generator_dir, samples):
    def batch(global_seed):
        augment = ExemplarAugment.from_pretrained(tiny_generator_dir, p=0.5, rng=torch.Generator().manual_seed(3))
        torch.manual_seed(global_seed)
        return ExemplarCollate(augment, append=True)(samples)[0]

    assert torch.equal(batch(0), batch(1))


def test_samples_without_labels_are_refused_with_the_fix(tiny_generator_dir, samples):
    with pytest.raises(ValueError, match=r"\(image, label\) pairs"):
        make(tiny_generator_dir, 1.0)([image for image, _ in samples])


def test_something_other_than_an_exemplar_augment_is_refused(tiny_generator_dir):
    with pytest.raises(TypeError, match="ExemplarAugment.from_pretrained"):
        ExemplarCollate(v2.RandomAffine(10))


def test_it_runs_in_dataloader_worker_processes_with_distinct_randomness(tiny_generator_dir, samples):
    images = torch.stack([image for image, _ in samples]).repeat(4, 1, 1, 1)
    dataset = TensorDataset(images, torch.zeros(len(images), dtype=torch.int64))
    collate = pickle.loads(pickle.dumps(make(tiny_generator_dir, 1.0)))
    loader = DataLoader(dataset, batch_size=8, num_workers=2, collate_fn=collate)
    batches = [batch for batch, _ in loader]
    assert len(batches) == 4 and all(batch.shape == (8, 1, 16, 16) for batch in batches)
    assert not torch.equal(batches[0], batches[1])  # the two workers' twins of the same images differ
