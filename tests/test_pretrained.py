"""The bundled generators load offline, by name (which a folder of the same name never replaces), and augment
their own data."""

import shutil
from pathlib import Path

import pytest
import torch

from exaug import ExemplarAugment, load_generator
from exaug.bundle import PRETRAINED_DIR, read_bundle_config, resolve_bundle
from exaug.bundle_schema import BundleError


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


def test_a_folder_named_like_a_bundled_generator_does_not_replace_it_and_the_clash_is_reported(tmp_path,
                                                                                                 monkeypatch):
    (tmp_path / "mnist" / "MNIST" / "raw").mkdir(parents=True)  # a torchvision data folder, a common sight
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match=r"'\./mnist'"):
        assert resolve_bundle("mnist") == PRETRAINED_DIR / "mnist"


@pytest.mark.parametrize("spelling", ["./mnist", "absolute", "pathlib"])
def test_a_folder_named_like_a_bundled_generator_is_loaded_when_spelt_as_a_path(tmp_path, monkeypatch,
                                                                                tiny_generator_dir, spelling):
    shutil.copytree(tiny_generator_dir, tmp_path / "mnist")
    monkeypatch.chdir(tmp_path)
    path = {"./mnist": "./mnist", "absolute": str(tmp_path / "mnist"), "pathlib": Path("mnist")}[spelling]
    assert load_generator(path).config.input_shape == (1, 16, 16)


def test_a_folder_that_is_no_bundle_but_is_named_like_one_says_how_to_get_the_bundled_generator(tmp_path,
                                                                                                  monkeypatch):
    (tmp_path / "mnist" / "MNIST" / "raw").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BundleError, match="config.json is missing.*plain name 'mnist'"):
        load_generator("./mnist")


@pytest.mark.filterwarnings("ignore:'mnist' names the bundled generator")
def test_the_cli_reads_a_bundled_name_as_the_bundled_generator_and_a_dotted_folder_as_the_folder(tmp_path, monkeypatch,
                                                                                                 tiny_generator_dir):
    from click.testing import CliRunner

    from exaug.cli.main import main

    shutil.copytree(tiny_generator_dir, tmp_path / "mnist")
    monkeypatch.chdir(tmp_path)
    for spelling, out, exemplars in [("mnist", "bundled", 50_000), ("./mnist", "folder", 64)]:
        result = CliRunner().invoke(main, ["export", "--generator", spelling, "--no-images", "--out", out])
        assert result.exit_code == 0, result.output
        assert read_bundle_config(tmp_path / out)["exemplar_count"] == exemplars
