"""ExemplarImages: an exemplar set read by index from a tensor, a memory-mapped array or a dataset; training,
bundles, sampling and the mixed loader on a set kept out of RAM; ExemplarLookup."""

import copy
import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch.utils.data import Dataset, TensorDataset
from torchvision.transforms import v2

from conftest import blob_images
from exaug import MixedBatchLoader, ModelConfig, TrainConfig, fit_generator, load_generator
from exaug.data import ImageTensorDataset, data_checksum, write_image_folder
from exaug.exemplar_images import ExemplarImages
from exaug.exemplar_lookup import ExemplarLookup
from exaug.sampling import exemplar_plates
from exaug.train import GeneratorTrainer

CONFIG = TrainConfig(epochs=2, batch_size=16, warmup_epochs=1, exemplar_search="knn", knn=5, device="cpu", seed=3)
MODEL = ModelConfig(hidden_dim=16, latent_dim=4)


def uint8_blobs(count=60, seed=0):
    images, labels = blob_images(count, seed=seed)
    return (images * 255).round().to(torch.uint8), labels


def saved(images: torch.Tensor, path):
    """``path``, where the uint8 images are now saved as .npy."""
    np.save(path, images.numpy())
    return path


def grey_image(path) -> Image.Image:
    """A PNG as its grey levels (ImageFolder's own loader reads RGB)."""
    with Image.open(path) as image:
        return image.convert("L")


class CountingDataset(Dataset):
    """Items (image, label) of a uint8 tensor, counting how many were read."""

    def __init__(self, images, labels):
        self.images, self.labels, self.reads = images, labels, 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        self.reads += 1
        return self.images[index], int(self.labels[index])


@pytest.fixture
def sources(tmp_path):
    """The same images and labels as a tensor, a memory-mapped .npy and a dataset."""
    images, labels = uint8_blobs()
    return images, labels, {"tensor": ExemplarImages(images, labels),
                            "memmap": ExemplarImages.from_npy(saved(images, tmp_path / "x.npy"), labels),
                            "dataset": ExemplarImages(CountingDataset(images, labels))}


@pytest.mark.parametrize("kind", ["tensor", "memmap", "dataset"])
@pytest.mark.parametrize("index", [7, -1, slice(5, 9), slice(None, None, 7), torch.tensor([4, 2, 4, 59]),
                                   np.array([], dtype=np.int64)], ids=repr)
def test_every_source_reads_an_index_as_a_uint8_tensor_of_the_whole_set_would(sources, kind, index):
    images, _, read = sources
    assert torch.equal(read[kind][index], images[torch.as_tensor(index) if isinstance(index, np.ndarray) else index])
    expected = images[torch.as_tensor(index) if isinstance(index, np.ndarray) else index].float() / 255
    assert torch.equal(read[kind].unit_float(index), expected)


@pytest.mark.parametrize("kind", ["tensor", "memmap", "dataset"])
def test_every_source_has_the_shape_labels_and_checksum_of_the_set_in_ram(sources, kind):
    images, labels, read = sources
    assert read[kind].shape == images.shape and len(read[kind]) == 60 and read[kind].image_shape == (1, 16, 16)
    assert torch.equal(read[kind].labels, labels)
    assert read[kind].checksum() == data_checksum(ImageTensorDataset(images, labels))
    assert torch.equal(torch.cat(list(read[kind].chunks(size=25))), images)
    assert torch.equal(read[kind].to_tensor(), images)


def test_float_images_off_the_255_grid_train_as_given_and_are_rounded_only_as_uint8():
    images = torch.rand(10, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    for read in (ExemplarImages(images), ExemplarImages(TensorDataset(images))):
        assert torch.equal(read.unit_float(slice(None)), images)
        assert torch.equal(read[:], (images * 255).round().to(torch.uint8))
    assert ExemplarImages(images).in_memory and not ExemplarImages(TensorDataset(images)).in_memory


def test_an_image_folder_serves_as_the_exemplar_set_with_its_labels(tmp_path):
    images, labels = uint8_blobs(12)
    folder = write_image_folder(images, labels, tmp_path / "folder")
    dataset = torchvision.datasets.ImageFolder(folder, transform=v2.ToImage(), loader=grey_image)
    read = ExemplarImages(dataset)
    order = torch.tensor([int(path.rsplit("/", 1)[1][:5]) for path, _ in dataset.samples])  # folders sort by label
    assert torch.equal(read[:], images[order]) and torch.equal(read.labels, labels[order])


def test_an_out_of_ram_set_trains_bit_for_bit_the_generator_the_same_images_in_ram_train(tmp_path):
    images, labels = uint8_blobs()
    val_images, _ = uint8_blobs(20, seed=1)
    val = TensorDataset(val_images.float() / 255)
    in_ram = fit_generator(TensorDataset(images.float() / 255, labels), val, CONFIG, out=tmp_path / "ram",
                           model_config=MODEL, progress=False, log=lambda record: None)
    store = ExemplarImages.from_npy(saved(images, tmp_path / "x.npy"), labels)
    on_disk = fit_generator(store, val, CONFIG, out=tmp_path / "disk", model_config=MODEL, progress=False,
                            log=lambda record: None)
    assert all(torch.equal(value, on_disk.state_dict()[name]) for name, value in in_ram.state_dict().items())
    assert torch.equal(in_ram.exemplar_means, on_disk.exemplar_means)
    assert on_disk.exemplar_images is store  # kept by reference, never copied into RAM
    for name in ("exemplars.safetensors", "model.safetensors"):
        assert (tmp_path / "ram" / name).read_bytes() == (tmp_path / "disk" / name).read_bytes()
    records = [[{key: value for key, value in json.loads(line).items() if key != "seconds"}
                for line in (tmp_path / run / "train_log.jsonl").read_text().splitlines()] for run in ("ram", "disk")]
    assert records[0] == records[1]
    assert torch.equal(load_generator(tmp_path / "disk").exemplar_images, images)


def test_a_step_reads_only_its_batch_and_the_neighbours_it_re_encodes(tmp_path):
    images, labels = uint8_blobs()
    dataset = CountingDataset(images, labels)
    config = TrainConfig(batch_size=8, exemplar_search="knn", knn=3, gradient_neighbours=None, device="cpu", seed=0)
    model = ModelConfig(hidden_dim=16, latent_dim=4, input_shape=(1, 16, 16))
    trainer = GeneratorTrainer(ExemplarImages(dataset), None, None, model, config, tmp_path)
    prior_term = trainer.prior_term()
    dataset.reads = 0
    trainer.train_step(torch.arange(8), 1.0, prior_term)
    assert 8 < dataset.reads <= 8 + 8 * 3  # the batch, then its distinct neighbours


def test_a_generator_with_an_out_of_ram_set_samples_plates_and_mixes_as_one_in_ram(tmp_path, tiny_generator_dir):
    generator = load_generator(tiny_generator_dir)
    in_ram = generator.exemplar_images
    on_disk = copy.deepcopy(generator)
    on_disk.set_exemplars(ExemplarImages.from_npy(saved(in_ram, tmp_path / "x.npy")),
                          generator.exemplar_labels, means=generator.exemplar_means)
    picks = torch.tensor([3, 0, 5])
    assert torch.equal(on_disk.exemplar_images[picks], in_ram[picks])
    plates = [exemplar_plates(model, model.exemplar_images[picks], generator=torch.Generator().manual_seed(0))
              for model in (generator, on_disk)]
    assert torch.equal(*plates)
    batch = torch.cat([in_ram[:5], torch.randint(0, 256, (2, *in_ram.shape[1:]), dtype=torch.uint8)])
    synthetic = [MixedBatchLoader([], model, seed=0).synthesize(batch) for model in (generator, on_disk)]
    assert torch.equal(*synthetic)


def test_a_copied_model_shares_its_out_of_ram_set(tmp_path):
    store = ExemplarImages.from_npy(saved(uint8_blobs()[0], tmp_path / "x.npy"))
    assert copy.deepcopy(store) is store


def test_the_lookup_finds_exemplars_by_their_bytes_the_last_of_duplicates_and_nothing_else():
    images, _ = uint8_blobs(10)
    images[7] = images[2]
    lookup = ExemplarLookup(images)
    stranger = torch.zeros_like(images[:1])
    assert lookup.find(torch.cat([images[[4, 2, 9]], stranger])).tolist() == [4, 7, 9, -1]


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 1, 8, 8), dtype=np.float32), "must be uint8"),
    (np.zeros((4, 8, 8), dtype=np.uint8), r"array\[:, None\]"),
    (np.zeros((4, 8, 8, 3), dtype=np.uint8), "channels-last"),
])
def test_an_array_of_the_wrong_dtype_or_layout_is_refused_with_the_fix(array, message):
    with pytest.raises(ValueError, match=message):
        ExemplarImages(array)


def test_dataset_items_that_are_not_image_tensors_of_one_shape_are_refused_with_the_fix():
    pil = torchvision.datasets.FakeData(size=2, image_size=(1, 8, 8))
    with pytest.raises(ValueError, match=r"item 0 is Image.*v2.ToImage\(\)"):
        ExemplarImages(pil)
    mixed = [torch.zeros(1, 8, 8, dtype=torch.uint8), torch.zeros(1, 9, 8, dtype=torch.uint8)]
    with pytest.raises(ValueError, match=r"item 1 is \(1, 9, 8\).*item 0 is \(1, 8, 8\).*v2.Resize"):
        ExemplarImages(_ListDataset(mixed))[:]
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*ToDtype"):
        ExemplarImages(_ListDataset([torch.full((1, 8, 8), 2.0)]))


def test_labels_must_be_integers_one_per_image_and_indices_inside_the_set():
    images, _ = uint8_blobs(5)
    with pytest.raises(ValueError, match=r"5 exemplar images but labels of shape \(4,\)"):
        ExemplarImages(images, torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="must be integers"):
        ExemplarImages(images, torch.zeros(5))
    with pytest.raises(IndexError, match="row 5 is outside the 5"):
        ExemplarImages(images)[torch.tensor([0, 5])]


def test_a_trainer_given_an_exemplar_set_takes_its_labels_from_it(tmp_path):
    images, labels = uint8_blobs(10)
    with pytest.raises(ValueError, match="carries its own labels"):
        GeneratorTrainer(ExemplarImages(images), labels, None, MODEL, CONFIG, tmp_path)


class _ListDataset(Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_an_iterable_dataset_is_refused_with_the_ways_to_read_it_by_index():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield torch.zeros(1, 4, 4)

    with pytest.raises(TypeError, match="iterable-style dataset.*from_npy"):
        ExemplarImages(Stream())


def test_labels_go_with_a_tensor_and_an_exemplar_set_carries_its_own():
    images, labels = blob_images(20)
    with pytest.raises(ValueError, match="carries its own labels"):
        GeneratorTrainer(ExemplarImages(images, labels), labels, None, ModelConfig(input_shape=(1, 16, 16)),
                         TrainConfig(epochs=1), out=None)


def test_a_validation_set_may_be_an_exemplar_set_too(tmp_path):
    (images, labels), (val_images, _) = blob_images(60), blob_images(20, seed=1)
    records = []
    fit_generator(ExemplarImages(images, labels), ExemplarImages(val_images), TrainConfig(epochs=1, batch_size=30),
                  tmp_path, ModelConfig(hidden_dim=16, latent_dim=2), progress=False, log=records.append)
    assert records[0]["val_elbo"] < 0


def test_a_memory_mapped_set_pickles_as_its_path_and_reads_the_same_rows_after(tmp_path):
    import pickle

    images = np.random.default_rng(0).integers(0, 256, (500, 1, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "set.npy", images)
    exemplars = ExemplarImages.from_npy(tmp_path / "set.npy")
    payload = pickle.dumps(exemplars)
    assert len(payload) < images.nbytes // 50  # the path and the bookkeeping, not 392 KB of images
    again = pickle.loads(payload)
    assert torch.equal(again[torch.tensor([3, 499, 0])], torch.from_numpy(images[[3, 499, 0]]))
