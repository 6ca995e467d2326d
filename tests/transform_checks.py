"""One check every image transform of exaug must pass, in the spirit of torchvision's own test helpers."""

import pickle

import PIL.Image
import torch
from torchvision import tv_tensors


def check_transform(make_transform, grey_uint8: torch.Tensor) -> None:
    """Check the transform contract on every input type built from one uint8 image (C×H×W).

    ``make_transform(p)`` builds the transform with replacement probability ``p``.

    * with p=0 every input comes back unchanged, with p=1 every input is changed;
    * it survives a pickle round trip (DataLoader workers under spawn);
    * PIL, uint8 tensor, float tensor, tv_tensors.Image, each unbatched and batched, come back
      as the same type, dtype, shape and value range;
    * with the same seed it gives the same output, before and after pickling.
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


def _same(a, b) -> bool:
    if isinstance(a, PIL.Image.Image):
        return a.tobytes() == b.tobytes()
    return torch.equal(a, b)
