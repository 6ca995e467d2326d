"""ExemplarAugment: the torchvision v2 transform contract, DataLoader workers, and its errors."""

import pickle
import sys

import PIL.Image
import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from conftest import blob_images
from exaug import ExemplarAugment
from transform_checks import check_transform


@pytest.fixture(scope="module")
def augment(tiny_generator_dir):
    return ExemplarAugment.from_pretrained(tiny_generator_dir, p=1.0)


@pytest.fixture
def image():
    images, _ = blob_images(1)
    return (images[0] * 255).round().to(torch.uint8)


def test_exemplar_augment_passes_the_shared_transform_check(tiny_generator_dir, image):
    check_transform(lambda p, rng=None: ExemplarAugment.from_pretrained(tiny_generator_dir, p=p, rng=rng), image)


def test_masks_and_boxes_pass_through_untouched(augment, image):
    mask = tv_tensors.Mask(torch.ones(16, 16, dtype=torch.uint8))
    out_image, out_mask = augment(tv_tensors.Image(image), mask)
    assert torch.equal(out_mask, mask) and not torch.equal(out_image, image)


def test_building_the_transform_leaves_the_global_random_stream_alone(tiny_generator_dir):
    torch.manual_seed(0)
    ExemplarAugment.from_pretrained(tiny_generator_dir)
    after = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(3))


def test_repr_shows_the_hyper_parameters(tiny_generator_dir):
    assert repr(ExemplarAugment.from_pretrained(tiny_generator_dir, p=0.3)) == \
        "ExemplarAugment(p=0.3, noise_scale=1.0, input_shape=(1, 16, 16))"


def test_p_zero_returns_the_input_unchanged(tiny_generator_dir, image):
    transform = ExemplarAugment.from_pretrained(tiny_generator_dir, p=0.0)
    assert torch.equal(transform(image), image)
    batch = image.float().unsqueeze(0).repeat(4, 1, 1, 1) / 255
    assert torch.equal(transform(batch), batch)


def test_p_one_replaces_the_image_by_the_decoded_draw_around_its_mean(augment, image):
    torch.manual_seed(0)
    out = augment(image)
    torch.manual_seed(0)
    torch.rand(1)  # the replace-or-not draw
    noise = torch.randn(1, 4)
    generator = augment.generator
    mu, log_var = generator.encode(image.float().unsqueeze(0) / 255)
    with torch.no_grad():
        expected = torch.round(generator.decode_around(mu, log_var, noise) * 255).to(torch.uint8)[0]
    assert not torch.equal(out, image)
    assert torch.equal(out, expected)


def test_noise_scale_multiplies_the_kernel_sigma(tiny_generator_dir, image):
    transform = ExemplarAugment.from_pretrained(tiny_generator_dir, p=1.0, noise_scale=0.5)
    torch.manual_seed(0)
    out = transform(image)
    torch.manual_seed(0)
    torch.rand(1)
    noise = torch.randn(1, 4)
    generator = transform.generator
    mu, log_var = generator.encode(image.float().unsqueeze(0) / 255)
    with torch.no_grad():
        expected = torch.round(generator.decode_around(mu, log_var, 0.5 * noise) * 255).to(torch.uint8)[0]
    assert torch.equal(out, expected)


def test_noise_scale_zero_decodes_the_exemplar_mean_every_time(tiny_generator_dir, image):
    transform = ExemplarAugment.from_pretrained(tiny_generator_dir, p=1.0, noise_scale=0.0)
    mu, _ = transform.generator.encode(image.float().unsqueeze(0) / 255)
    with torch.no_grad():
        mean_image = torch.round(transform.generator.decode(mu) * 255).to(torch.uint8)[0]
    assert torch.equal(transform(image), mean_image) and torch.equal(transform(image), mean_image)


@pytest.mark.parametrize("scale", [-0.5, float("nan"), float("inf"), "wide"])
def test_a_negative_or_non_finite_noise_scale_is_refused(tiny_generator_dir, scale):
    with pytest.raises(ValueError, match="noise_scale"):
        ExemplarAugment.from_pretrained(tiny_generator_dir, noise_scale=scale)


def test_a_batch_gets_per_sample_randomness(augment, image):
    batch = image.unsqueeze(0).repeat(4, 1, 1, 1)
    out = augment(batch)
    assert not torch.equal(out[0], out[1])


def test_p_is_a_per_sample_probability(tiny_generator_dir, image):
    transform = ExemplarAugment.from_pretrained(tiny_generator_dir, p=0.5)
    batch = image.unsqueeze(0).repeat(400, 1, 1, 1)
    torch.manual_seed(0)
    replaced = (transform(batch) != batch).flatten(1).any(1).float().mean().item()
    assert 0.4 < replaced < 0.6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_outputs_are_multiples_of_one_over_255_in_the_input_dtype(augment, image, dtype):
    out = augment(image.to(dtype) / 255)
    assert out.dtype == dtype
    assert torch.equal(out, (out * 255).round() / 255)


def test_works_as_a_step_of_compose_with_labels_passed_through(augment, image):
    pipeline = v2.Compose([v2.ToImage(), augment, v2.ToDtype(torch.float32, scale=True)])
    pil = PIL.Image.fromarray(image[0].numpy(), mode="L")
    out, label = pipeline(pil, 7)
    assert out.shape == (1, 16, 16) and out.dtype == torch.float32 and label == 7


class AugmentedImages(Dataset):
    """Returns (augmented image, worker info) so tests can see what each worker did."""

    def __init__(self, transform):
        images, _ = blob_images(8)
        self.images = (images * 255).round().to(torch.uint8)
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        info = torch.utils.data.get_worker_info()
        return self.transform(self.images[0]), torch.tensor(
            [info.id, torch.get_num_threads(), int("faiss" in sys.modules)])


@pytest.mark.parametrize("context", ["spawn", "fork"])
def test_runs_in_dataloader_workers_with_distinct_streams_one_thread_and_no_faiss(augment, context):
    loader = DataLoader(AugmentedImages(augment), batch_size=4, num_workers=2, multiprocessing_context=context,
                        generator=torch.Generator().manual_seed(0))
    (images_a, info_a), (images_b, info_b) = list(loader)
    assert info_a[:, 0].unique().tolist() != info_b[:, 0].unique().tolist()  # two workers
    assert not torch.equal(images_a, images_b)  # same source image, different streams
    assert (torch.cat([info_a, info_b])[:, 1] == 1).all()  # one thread per worker
    if context == "spawn":
        assert (torch.cat([info_a, info_b])[:, 2] == 0).all()  # faiss never loaded in a fresh worker
    again = list(DataLoader(AugmentedImages(augment), batch_size=4, num_workers=2, multiprocessing_context=context,
                            generator=torch.Generator().manual_seed(0)))
    assert torch.equal(again[0][0], images_a)  # seeded from the loader: reproducible


def test_a_transform_with_its_own_rng_runs_in_spawned_workers_with_distinct_replayable_streams(tiny_generator_dir):
    augment = ExemplarAugment.from_pretrained(tiny_generator_dir, p=1.0, rng=torch.Generator().manual_seed(7))

    def epoch(loader_seed):
        return list(DataLoader(AugmentedImages(augment), batch_size=4, num_workers=2, multiprocessing_context="spawn",
                               generator=torch.Generator().manual_seed(loader_seed)))

    (images_a, info_a), (images_b, info_b) = epoch(0)
    assert info_a[:, 0].unique().tolist() != info_b[:, 0].unique().tolist()  # two workers
    assert not torch.equal(images_a, images_b)  # streams derived from rng's seed and each worker's seed
    assert torch.equal(epoch(0)[0][0], images_a)  # a seeded DataLoader replays them


def test_a_pickled_rng_resumes_where_the_original_stands(tiny_generator_dir, image):
    augment = ExemplarAugment.from_pretrained(tiny_generator_dir, p=1.0, rng=torch.Generator().manual_seed(7))
    augment(image)
    restored = pickle.loads(pickle.dumps(augment))
    assert restored.rng.initial_seed() == 7
    assert torch.equal(restored(image), augment(image))


@pytest.mark.parametrize("move", [lambda t: t.to("meta"), lambda t: t.double()])
def test_moving_the_transform_by_hand_leaves_its_generator_on_the_cpu(augment, image, move):
    assert move(augment) is augment
    assert augment.generator.device.type == "cpu" and augment.generator.dtype == torch.float32
    assert augment(image).dtype == torch.uint8


@pytest.mark.parametrize("bad,message", [
    (torch.zeros(3, 16, 16, dtype=torch.uint8), r"3 channel.*v2\.Grayscale\(\)"),
    (torch.zeros(1, 28, 28, dtype=torch.uint8), "28×28"),
    (torch.full((1, 16, 16), float("nan")), "NaN"),
    (torch.full((1, 16, 16), 2.0), r"\[0, 1\]"),
    (torch.zeros(0, 3, 16, 16), "3 channel"),
    (torch.zeros(16, 16), "C×H×W"),
    (torch.zeros(5, 16, 16), r"batch of 5 images without a channel axis.*unsqueeze\(1\)"),
    (torch.zeros(1, 16, 16, dtype=torch.int32), "int32"),
])
def test_bad_input_names_the_value_and_what_was_expected(augment, bad, message):
    with pytest.raises(ValueError, match=message):
        augment(bad)


def test_a_video_is_transformed_frame_by_frame_with_a_draw_per_frame(augment, image):
    video = tv_tensors.Video(image.unsqueeze(0).repeat(2, 5, 1, 1, 1))  # 2 clips of 5 frames
    out = augment(video)
    assert type(out) is tv_tensors.Video and out.shape == video.shape and out.dtype == video.dtype
    assert not torch.equal(out[0, 0], out[0, 1]) and not torch.equal(out[0, 0], image)


def test_an_rng_that_is_not_a_cpu_torch_generator_is_refused(tiny_generator_dir):
    with pytest.raises(ValueError, match="torch.Generator on the CPU"):
        ExemplarAugment.from_pretrained(tiny_generator_dir, rng=0)


def test_a_colour_pil_image_for_a_grey_generator_is_refused(augment):
    with pytest.raises(ValueError, match="convert"):
        augment(PIL.Image.new("RGB", (16, 16)))


def test_p_outside_zero_one_is_refused(tiny_generator_dir):
    with pytest.raises(ValueError, match="p=1.5"):
        ExemplarAugment.from_pretrained(tiny_generator_dir, p=1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_are_generated_on_the_gpu(augment, image):
    out = augment(image.cuda().unsqueeze(0))
    assert out.is_cuda
    assert augment.generator.device.type == "cpu"  # a GPU copy served the batch; workers still get CPU weights


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("context", ["spawn", "fork"])
def test_a_transform_built_on_the_gpu_serves_cpu_workers_and_gpu_batches(tiny_generator_dir, image, context):
    augment = ExemplarAugment.from_pretrained(tiny_generator_dir, p=1.0, device="cuda")
    assert augment(image.cuda()).is_cuda
    assert pickle.loads(pickle.dumps(augment)).generator.device.type == "cpu"
    loader = DataLoader(AugmentedImages(augment), batch_size=4, num_workers=2, multiprocessing_context=context)
    assert [images.device.type for images, _ in loader] == ["cpu", "cpu"]  # forked workers never touch CUDA
