"""The bundled generators load offline, by name, and augment their own data."""

import pytest
import torch

from exaug import ExemplarAugment, load_generator
from exaug.bundle import PRETRAINED_DIR, read_bundle_config


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_a_bundled_generator_loads_by_name_and_records_its_recipe(name):
    model = load_generator(name)
    assert model.config.input_shape == (1, 28, 28) and model.config.prior == "exemplar"
    assert model.exemplar_means.shape == (50_000, 40)
    config = read_bundle_config(PRETRAINED_DIR / name)
    assert config["training"]["extra"]["dataset"] == name
    size = sum(path.stat().st_size for path in (PRETRAINED_DIR / name).iterdir())
    assert size < 15 * 2**20


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_a_bundled_generator_makes_label_preserving_looking_twins(name):
    augment = ExemplarAugment.from_pretrained(name)
    model = load_generator(name)
    images = model.exemplar_images[:64]
    torch.manual_seed(0)
    twins = augment(images)
    assert twins.dtype == torch.uint8 and twins.shape == images.shape
    # a twin stays much closer to its own exemplar than to the other exemplars
    distances = torch.cdist(twins.flatten(1).float(), images.flatten(1).float())
    assert (distances.argmin(1) == torch.arange(64)).float().mean() > 0.8


def test_the_cli_takes_a_bundled_name_wherever_it_takes_a_bundle(tmp_path):
    from click.testing import CliRunner

    from exaug.cli.main import main

    result = CliRunner().invoke(main, ["sample", "--generator", "mnist", "--count", "4", "--out", str(tmp_path / "g.png")])
    assert result.exit_code == 0, result.output
