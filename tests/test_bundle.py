"""Bundles: a lossless round trip, and a clear error for every way a bundle can be broken."""

import json

import pytest
import torch

from exaug import BundleError, ExemplarVAE, ModelConfig, load_generator, save_generator
from exaug.bundle import CONFIG_FILE, EXEMPLARS_FILE, MODEL_FILE, bundle_provenance, bundle_size


@pytest.fixture
def bundle(tmp_path):
    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=(1, 6, 6), hidden_dim=16, latent_dim=3)).eval()
    model.set_exemplars(torch.rand(10, 1, 6, 6), torch.arange(10) % 2)
    save_generator(model, tmp_path)
    return model, tmp_path


@pytest.mark.parametrize("prior", ["gaussian", "vamp", "exemplar"])
def test_round_trip_gives_identical_outputs(tmp_path, prior):
    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=(1, 6, 6), hidden_dim=16, latent_dim=3, prior=prior,
                                    num_pseudo_inputs=4)).eval()
    model.set_exemplars(torch.rand(10, 1, 6, 6), torch.arange(10) % 2)
    save_generator(model, tmp_path)
    loaded = load_generator(tmp_path)
    images = torch.rand(4, 1, 6, 6)
    z = torch.randn(4, 3)
    torch.testing.assert_close(loaded.encode(images), model.encode(images), rtol=0, atol=0)
    torch.testing.assert_close(loaded.log_prior(z), model.log_prior(z), rtol=0, atol=0)
    torch.testing.assert_close(loaded.generate(images, torch.Generator().manual_seed(1)),
                               model.generate(images, torch.Generator().manual_seed(1)), rtol=0, atol=0)
    assert torch.equal(loaded.exemplar_images, model.exemplar_images)
    assert torch.equal(loaded.exemplar_labels, model.exemplar_labels)


def test_a_bundle_needs_no_pickle(bundle):
    _, directory = bundle
    names = sorted(path.name for path in directory.iterdir())
    assert names == [CONFIG_FILE, EXEMPLARS_FILE, MODEL_FILE]


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_generator(tmp_path / "nowhere")


@pytest.mark.parametrize("name", [CONFIG_FILE, MODEL_FILE, EXEMPLARS_FILE])
def test_a_missing_file_is_named(bundle, name):
    _, directory = bundle
    (directory / name).unlink()
    with pytest.raises(BundleError, match=name.replace(".", r"\.") + " is missing"):
        load_generator(directory)


@pytest.mark.parametrize("name", [MODEL_FILE, EXEMPLARS_FILE])
def test_a_truncated_weights_file_is_named(bundle, name):
    _, directory = bundle
    path = directory / name
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(BundleError, match=name.replace(".", r"\.") + ".*sha256"):
        load_generator(directory)


def test_a_corrupt_config_is_named(bundle):
    _, directory = bundle
    (directory / CONFIG_FILE).write_text("{ not json")
    with pytest.raises(BundleError, match="config.json is not valid JSON"):
        load_generator(directory)


def test_a_newer_format_asks_for_an_upgrade(bundle):
    _, directory = bundle
    config = json.loads((directory / CONFIG_FILE).read_text())
    config["format_version"] = 99
    (directory / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(BundleError, match="upgrade exaug"):
        load_generator(directory)


def test_weights_of_another_architecture_are_reported(bundle):
    _, directory = bundle
    config = json.loads((directory / CONFIG_FILE).read_text())
    config["model"]["prior"] = "vamp"
    (directory / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(BundleError, match="missing prior.pseudo_inputs"):
        load_generator(directory)


def test_exemplars_that_disagree_with_the_config_are_reported(bundle):
    _, directory = bundle
    config = json.loads((directory / CONFIG_FILE).read_text())
    config["exemplar_count"] = 11
    (directory / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(BundleError, match=r"exemplars\.safetensors: '(means|labels)' is \w+ \[10\b.*implies \w+ \[11"):
        load_generator(directory)


def test_saving_without_exemplars_says_what_to_do(tmp_path):
    model = ExemplarVAE(ModelConfig(input_shape=(1, 4, 4), hidden_dim=8, latent_dim=2))
    with pytest.raises(ValueError, match="set_exemplars"):
        save_generator(model, tmp_path)


def test_a_bundle_saved_without_images_keeps_means_and_labels(bundle, tmp_path):
    model, _ = bundle
    slim_dir = tmp_path / "slim"
    save_generator(model, slim_dir, include_images=False)
    loaded = load_generator(slim_dir)
    assert loaded.exemplar_images is None
    torch.testing.assert_close(loaded.exemplar_means, model.exemplar_means)
    assert torch.equal(loaded.exemplar_labels, model.exemplar_labels)


def test_half_precision_means_halve_the_file_load_as_float32_and_leave_the_networks_and_twins_alone(bundle, tmp_path):
    model, full_dir = bundle
    half_dir = tmp_path / "half"
    save_generator(model, half_dir, means_dtype=torch.float16)
    loaded = load_generator(half_dir)
    assert loaded.exemplar_means.dtype == torch.float32
    assert torch.equal(loaded.exemplar_means, model.exemplar_means.half().float())
    assert not torch.equal(loaded.exemplar_means, model.exemplar_means)  # rounded: the prior moves a little
    full_means = (full_dir / EXEMPLARS_FILE).stat().st_size - (half_dir / EXEMPLARS_FILE).stat().st_size
    assert full_means == model.exemplar_means.numel() * 2  # two bytes saved per stored value
    images = torch.rand(4, 1, 6, 6)
    torch.testing.assert_close(loaded.generate(images, torch.Generator().manual_seed(1)),
                               model.generate(images, torch.Generator().manual_seed(1)), rtol=0, atol=0)


def test_a_bundles_size_counts_its_own_files_and_not_what_else_its_folder_holds(bundle):
    _, directory = bundle
    own = sum((directory / name).stat().st_size for name in (CONFIG_FILE, MODEL_FILE, EXEMPLARS_FILE))
    (directory / "checkpoint.pt").write_bytes(b"x" * 1000)  # a training run's folder keeps its checkpoint there
    assert bundle_size(directory) == own


def test_means_in_another_precision_are_refused_naming_the_ones_that_work(bundle, tmp_path):
    model, _ = bundle
    with pytest.raises(ValueError, match="means_dtype must be one of"):
        save_generator(model, tmp_path / "b16", means_dtype=torch.bfloat16)
    assert not (tmp_path / "b16").exists()


def test_only_a_bundle_with_half_precision_means_needs_the_newer_format(bundle, tmp_path):
    model, full_dir = bundle
    save_generator(model, tmp_path / "half", means_dtype=torch.float16)
    version = {name: json.loads((folder / CONFIG_FILE).read_text())["format_version"]
               for name, folder in (("full", full_dir), ("half", tmp_path / "half"))}
    assert version == {"full": 1, "half": 2}  # an exaug that reads only version 1 still reads float32 bundles


def test_means_too_large_for_half_precision_are_refused_before_anything_is_written(bundle, tmp_path):
    model, _ = bundle
    model.set_exemplars(model.exemplar_images, model.exemplar_labels, means=torch.full((10, 3), 1e5))
    with pytest.raises(ValueError, match="does not fit in torch.float16; save the means with means_dtype=torch.float32"):
        save_generator(model, tmp_path / "half", means_dtype=torch.float16)
    assert not (tmp_path / "half" / CONFIG_FILE).exists()


def test_an_unknown_name_lists_the_bundled_generators():
    with pytest.raises(BundleError, match="bundled names"):
        load_generator("cifar10")


@pytest.mark.parametrize("device, message", [("bogus", "not a device name"), ("cuda:7", "no GPU")])
def test_a_bad_device_is_refused_with_the_names_that_work(tiny_generator_dir, device, message):
    from exaug import ExemplarAugment, MixedBatchLoader

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for load in (lambda: load_generator(tiny_generator_dir, device=device),
                 lambda: ExemplarAugment.from_pretrained(tiny_generator_dir, device=device),
                 lambda: MixedBatchLoader([], tiny_generator_dir, device=device)):
        with pytest.raises(ValueError, match=message):
            load()


PROVENANCE = {"version": "mnist v2", "exaug_version": "0.1.0", "epochs_trained": 412, "best_val_elbo": -87.1,
              "command": "exaug fit-generator --dataset mnist --out runs/mnist"}


def test_a_bundle_records_where_its_weights_came_from(tmp_path):
    model = ExemplarVAE(ModelConfig(hidden_dim=16, latent_dim=4))
    model.set_exemplars(torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8))
    save_generator(model, tmp_path / "b", provenance=PROVENANCE)
    assert bundle_provenance(tmp_path / "b") == PROVENANCE
    load_generator(tmp_path / "b")  # the recorded provenance passes the loader's checks


def test_a_bundle_from_before_provenance_reports_none(bundle):
    _, directory = bundle
    assert bundle_provenance(directory) == {}


@pytest.mark.parametrize("provenance, message", [
    ({"epochs": 3}, "unknown field 'epochs'"),
    ({"epochs_trained": "many"}, "'provenance.epochs_trained' is 'many'; it must be int"),
    ({"best_val_elbo": True}, "it must be int or float or null"),
])
def test_a_malformed_provenance_is_refused_before_anything_is_written(tmp_path, provenance, message):
    model = ExemplarVAE(ModelConfig(hidden_dim=16, latent_dim=4))
    model.set_exemplars(torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8))
    with pytest.raises(BundleError, match=message):
        save_generator(model, tmp_path / "b", provenance=provenance)
    assert not (tmp_path / "b" / CONFIG_FILE).exists()


def test_a_tampered_provenance_is_refused_on_loading(bundle):
    _, directory = bundle
    config = json.loads((directory / CONFIG_FILE).read_text())
    config["provenance"] = ["not", "an", "object"]
    (directory / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(BundleError, match="'provenance' is"):
        load_generator(directory)
