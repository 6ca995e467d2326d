"""One check every image transform of exaug must pass, in the spirit of torchvision's own test helpers."""

import pickle

import PIL.Image
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors


def check_transform(make_transform, grey_uint8: torch.Tensor) -> None:
    """Check the transform contract on every input type built from one uint8 image (C×H×W).

    ``make_transform(p, rng=None)`` builds the transform with replacement probability ``p``, drawing from
    ``rng`` (a torch.Generator) when one is given.

    * with p=0 every input comes back unchanged, with p=1 every input is changed;
    * it survives a pickle round trip (DataLoader workers under spawn);
    * PIL, uint8 tensor, float tensor, tv_tensors.Image, each unbatched and batched, come back
      as the same type, dtype, shape and value range;
    * with the same seed it gives the same output, before and after pickling;
    * an empty batch comes back unchanged, whatever p;
    * beside the image, an int, a str, None, a Mask and BoundingBoxes come back as the very same objects,
      and two images in one sample each get their own draw;
    * with an explicit generator it ignores the global stream, replays from the same seed, and gives
      DataLoader workers distinct streams.
    """
    transform = make_transform(1.0)
    restored = pickle.loads(pickle.dumps(transform))
    assert repr(restored) == repr(transform)

    channels = grey_uint8.shape[0]
    pil = PIL.Image.fromarray(grey_uint8[0].numpy(), mode="L") if channels == 1 else \
        PIL.Image.fromarray(grey_uint8.permute(1, 2, 0).numpy(), mode="RGB")
    inputs = {
        "pil": pil,
        "uint8": grey_uint8,
        "float32": grey_uint8.float() / 255,
        "float64": grey_uint8.double() / 255,
        "tv_image": tv_tensors.Image(grey_uint8),
        "uint8 batch": grey_uint8.unsqueeze(0).repeat(3, 1, 1, 1),
        "float batch": (grey_uint8.float() / 255).unsqueeze(0).repeat(3, 1, 1, 1),
        "tv_image batch": tv_tensors.Image(grey_uint8.unsqueeze(0).repeat(3, 1, 1, 1)),
    }
    if torch.cuda.is_available():
        inputs["cuda uint8 batch"] = inputs["uint8 batch"].cuda()
    untouched = make_transform(0.0)
    for name, inpt in inputs.items():
        assert _same(untouched(inpt), inpt), f"{name}: p=0 must return the input unchanged"
        torch.manual_seed(0)
        out = transform(inpt)
        assert not _same(out, inpt), f"{name}: p=1 must change the image"
        assert type(out) is type(inpt), name
        if isinstance(inpt, PIL.Image.Image):
            assert out.size == inpt.size and out.mode == inpt.mode, name
        else:
            assert out.shape == inpt.shape and out.dtype == inpt.dtype, name
            if inpt.is_floating_point():
                assert 0 <= out.min() and out.max() <= 1, name
        torch.manual_seed(0)
        assert _same(transform(inpt), out), f"{name}: the same seed must give the same output"
        torch.manual_seed(0)
        assert _same(restored(inpt), out), f"{name}: the unpickled transform must behave the same"


    check_empty_batches(make_transform, grey_uint8)
    check_mixed_samples(make_transform(1.0), grey_uint8)
    check_explicit_generator(make_transform, grey_uint8)


def check_empty_batches(make_transform, grey_uint8: torch.Tensor) -> None:
    for p in (0.0, 1.0):
        for empty in (grey_uint8.unsqueeze(0)[:0], torch.zeros(0, *grey_uint8.shape),
                      tv_tensors.Image(torch.zeros(0, *grey_uint8.shape, dtype=torch.uint8))):
            out = make_transform(p)(empty)
            assert type(out) is type(empty) and out.shape == empty.shape and out.dtype == empty.dtype, (p, empty.dtype)


def check_mixed_samples(transform, grey_uint8: torch.Tensor) -> None:
    height, width = grey_uint8.shape[-2:]
    mask = tv_tensors.Mask(torch.ones(height, width, dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes([[1, 1, 4, 4]], format="XYXY", canvas_size=(height, width))
    passengers = {"label": 3, "name": "x", "none": None, "mask": mask, "boxes": boxes}
    sample = {"image": tv_tensors.Image(grey_uint8), **passengers}
    out = transform(sample)
    assert all(out[key] is value for key, value in passengers.items()), "non-image entries must pass through as-is"
    assert not torch.equal(out["image"], sample["image"])
    batch = tv_tensors.Image(grey_uint8.unsqueeze(0).repeat(4, 1, 1, 1))
    first, second = transform(batch, tv_tensors.Image(grey_uint8))  # a batch beside a single image
    assert first.shape == batch.shape and second.shape == grey_uint8.shape
    assert not torch.equal(first[0], first[1]), "each image of a batch gets its own draw"


class _Repeated(Dataset):
    def __init__(self, transform, image: torch.Tensor) -> None:
        self.transform, self.image = transform, image

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.image)


def check_explicit_generator(make_transform, grey_uint8: torch.Tensor) -> None:
    def draw(global_seed: int, rng_seed: int) -> torch.Tensor:
        transform = make_transform(1.0, rng=torch.Generator().manual_seed(rng_seed))
        torch.manual_seed(global_seed)
        return torch.stack([transform(grey_uint8) for _ in range(3)])

    assert torch.equal(draw(0, 7), draw(1, 7)), "with rng the global stream must not matter"
    assert not torch.equal(draw(0, 7), draw(0, 8)), "another rng seed must give other samples"
    transform = make_transform(1.0, rng=torch.Generator().manual_seed(7))

    def epoch(loader_seed: int) -> list[torch.Tensor]:
        loader = DataLoader(_Repeated(transform, grey_uint8), batch_size=4, num_workers=2,
                            generator=torch.Generator().manual_seed(loader_seed))
        return list(loader)

    first = epoch(0)
    assert not torch.equal(first[0], first[1]), "two workers must draw different samples"
    assert all(torch.equal(a, b) for a, b in zip(first, epoch(0))), "a seeded DataLoader must replay"
    assert not all(torch.equal(a, b) for a, b in zip(first, epoch(1))), "another epoch seed must give others"


def _same(a, b) -> bool:
    if isinstance(a, PIL.Image.Image):
        return a.tobytes() == b.tobytes()
    return torch.equal(a, b)
