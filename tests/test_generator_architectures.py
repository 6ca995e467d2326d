"""Every generator architecture (the MLP VAE, the HVAE, the ConvHVAE) goes through the same code paths: built by
name, trained, saved, loaded, evaluated, sampled and used for augmentation."""

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from conftest import blob_images
from exaug import (BundleError, ExemplarAugment, ExemplarCollate, ExemplarTwins, MixedBatchLoader, ModelConfig,
                   TrainConfig, fit_generator, load_generator, save_generator)
from exaug.classifiers import ClassifierConfig, fit_classifier
from exaug.config import ARCHITECTURES, PRIORS
from exaug.evaluate import evaluate_generator
from exaug.models import GENERATOR_CLASSES, ExemplarGenerator, build_generator
from exaug.sampling import cyclic_generation, exemplar_plates, random_grid
from exaug.twins import twin_noise
from transform_checks import check_transform

SHAPE = (1, 16, 16)
LATENT = 3


def small_generator(architecture: str, prior: str = "exemplar", seed: int = 0) -> ExemplarGenerator:
    torch.manual_seed(seed)
    model = build_generator(ModelConfig(architecture=architecture, prior=prior, input_shape=SHAPE, hidden_dim=16,
                                        latent_dim=LATENT, num_pseudo_inputs=4))
    images, labels = blob_images(24)
    model.set_exemplars(images, labels)
    return model.eval()


@pytest.fixture(scope="module", params=ARCHITECTURES)
def bundle(request, tmp_path_factory):
    """A small exemplar-prior generator of each architecture, saved as a bundle (untrained weights suffice)."""
    directory = tmp_path_factory.mktemp(request.param)
    save_generator(small_generator(request.param), directory)
    return directory


def test_each_architecture_name_builds_its_own_class():
    for name in ARCHITECTURES:
        model = build_generator(ModelConfig(architecture=name, input_shape=SHAPE, hidden_dim=8, latent_dim=2))
        assert type(model) is GENERATOR_CLASSES[name] and model.architecture == name


def test_an_unknown_architecture_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="architecture='transformer' is not known.*'vae', 'hvae', 'convhvae'"):
        ModelConfig(architecture="transformer")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("prior", PRIORS)
def test_every_architecture_and_prior_gives_images_and_latents_of_the_right_shapes(architecture, prior):
    model = small_generator(architecture, prior)
    images = blob_images(5, seed=1)[0]
    mu, log_var = model.encode(images)
    assert mu.shape == log_var.shape == (5, LATENT)
    assert model.encode_means(images).shape == (5, LATENT)
    assert model.encode_means(images[:0]).shape == (0, LATENT)
    noise = torch.randn(5, model.twin_noise_dim)
    assert model.decode_around(mu, log_var, noise).shape == (5, *SHAPE)
    assert model.generate(images).shape == (5, *SHAPE)
    assert model.sample(4).shape == (4, *SHAPE)
    terms = model.elbo_terms(torch.bernoulli(images))
    assert terms.elbo.shape == (5,) and torch.isfinite(terms.elbo).all()
    assert terms.posterior_mean.shape == (5, LATENT)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_a_twin_uses_every_draw_of_its_noise(architecture):
    """A hierarchical twin draws z1 ~ p(z1 | z2) from the second half of its noise, so a caller's rng covers both."""
    model = small_generator(architecture)
    mu, log_var = model.encode(blob_images(2, seed=2)[0])
    noise = torch.randn(2, model.twin_noise_dim, generator=torch.Generator().manual_seed(0))
    base = model.decode_around(mu, log_var, noise)
    for draw in range(model.twin_noise_dim):
        nudged = noise.clone()
        nudged[:, draw] += 1.0
        assert not torch.equal(model.decode_around(mu, log_var, nudged), base), f"draw {draw} changed nothing"
    assert model.twin_noise_dim == (LATENT if architecture == "vae" else 2 * LATENT)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_the_iwae_bound_lies_above_the_elbo_and_rises_with_the_sample_count(architecture):
    model = small_generator(architecture)
    images = torch.bernoulli(blob_images(4, seed=3)[0], generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        elbo = torch.stack([model.elbo_terms(images, generator).elbo for _ in range(300)]).mean()
    few = model.iwae(images, num_samples=2, generator=generator).mean()
    many = model.iwae(images, num_samples=400, chunk_size=150, generator=generator).mean()
    assert elbo < few < many


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_the_near_exemplar_iwae_agrees_with_the_exact_one(architecture):
    model = small_generator(architecture)
    images = torch.bernoulli(blob_images(2, seed=4)[0], generator=torch.Generator().manual_seed(0))
    near = model.iwae(images, 50, generator=torch.Generator().manual_seed(2), prior_tolerance=1e-3)
    exact = model.iwae(images, 50, generator=torch.Generator().manual_seed(2), prior_tolerance=None)
    assert torch.all(near <= exact + 1e-5) and torch.all(exact - near <= 1e-3 + 1e-5)


def test_a_bundle_round_trip_keeps_every_weight_and_exemplar_bit_for_bit(bundle):
    loaded = load_generator(bundle)
    config = json.loads((bundle / "config.json").read_text())
    original = small_generator(config["model"]["architecture"])
    assert type(loaded) is type(original)
    assert loaded.state_dict().keys() == original.state_dict().keys()
    assert all(torch.equal(loaded.state_dict()[name], tensor) for name, tensor in original.state_dict().items())
    assert torch.equal(loaded.exemplar_means, original.exemplar_means)
    assert torch.equal(loaded.exemplar_images, original.exemplar_images)


def test_a_bundle_without_an_architecture_is_the_mlp_vae(tmp_path):
    save_generator(small_generator("vae"), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["model"]["architecture"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert load_generator(tmp_path).architecture == "vae"


def test_a_bundle_of_an_unknown_architecture_is_a_bundle_error_naming_the_known_ones(tmp_path):
    save_generator(small_generator("vae"), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["architecture"] = "diffusion"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match="'diffusion'.*known architectures are \\('vae', 'hvae', 'convhvae'\\)"):
        load_generator(tmp_path)


def test_exemplar_augment_keeps_the_transform_contract_with_every_architecture(bundle):
    image = (blob_images(1, seed=5)[0][0] * 255).round().to(torch.uint8)
    check_transform(lambda p, rng=None: ExemplarAugment.from_pretrained(bundle, p=p, rng=rng), image)


def test_twins_replay_from_the_same_rng_seed_with_every_architecture(bundle):
    images = blob_images(6, seed=6)[0]

    def twins(seed: int) -> torch.Tensor:
        return ExemplarAugment.from_pretrained(bundle, p=1.0, rng=torch.Generator().manual_seed(seed)).twins(images)

    assert torch.equal(twins(3), twins(3))
    assert not torch.equal(twins(3), twins(4))


def test_the_collate_and_the_mixed_loader_take_every_architecture(bundle):
    images, labels = blob_images(8, seed=7)
    augment = ExemplarAugment.from_pretrained(bundle, p=1.0, rng=torch.Generator().manual_seed(0))
    batch_images, batch_labels = ExemplarCollate(augment, append=True)(list(zip(images, labels)))
    assert batch_images.shape == (16, *SHAPE) and torch.equal(batch_labels, torch.cat([labels, labels]))
    loader = MixedBatchLoader(DataLoader(TensorDataset(images, labels), batch_size=4), bundle, seed=0)
    for batch in loader:
        assert batch.synthetic.shape == batch.real.shape and not torch.equal(batch.synthetic, batch.real)


def test_half_precision_means_leave_the_transforms_twins_of_every_architecture_unchanged(bundle, tmp_path):
    save_generator(load_generator(bundle), tmp_path / "half", means_dtype=torch.float16)
    images = blob_images(6, seed=12)[0]

    def twins(folder) -> torch.Tensor:
        return ExemplarAugment.from_pretrained(folder, p=1.0, rng=torch.Generator().manual_seed(5)).twins(images)

    assert torch.equal(twins(tmp_path / "half"), twins(bundle))


def test_the_batch_twins_replace_every_image_in_place_with_every_architecture(bundle):
    images, labels = blob_images(8, seed=9)
    twins = ExemplarTwins(bundle, p=1.0, rng=torch.Generator().manual_seed(0))
    replaced, kept_labels = twins(images, labels)
    assert replaced.shape == images.shape and torch.equal(kept_labels, labels)
    assert not torch.equal(replaced, images)
    collated_images, collated_labels = ExemplarCollate(ExemplarAugment.from_pretrained(bundle, p=1.0))(
        list(zip(images, labels)))
    assert collated_images.shape == images.shape and torch.equal(collated_labels, labels)


def test_a_classifier_trains_on_the_twins_of_every_architecture(bundle, tmp_path):
    train, test = blob_images(40, seed=10), blob_images(20, seed=11)
    config = ClassifierConfig(hidden=(8,), epochs=1, batch_size=10, lam=0.5, workers=0, device="cpu")
    result = fit_classifier(TensorDataset(*train), TensorDataset(*test), config, generator=str(bundle),
                            out=tmp_path / "run", progress=False, log=lambda record: None)
    assert result["generator"] == str(bundle) and 0.0 <= result["test_error"] <= 100.0
    assert (tmp_path / "run" / "result.json").exists()


def test_evaluation_and_every_sampling_mode_take_every_architecture(bundle):
    model = load_generator(bundle)
    images, labels = blob_images(6, seed=8)
    results = evaluate_generator(model, images, labels, num_samples=20, subset=3, ks=(3,), progress=False)
    assert results["latent_dim"] == LATENT and results["iwae_images"] == 3 and "knn_error" in results
    assert random_grid(model, 4).shape[0] == 3
    assert exemplar_plates(model, images[:2], per_plate=3).shape[0] == 3
    assert cyclic_generation(model, images[:2], steps=2).shape[0] == 3


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_one_epoch_of_training_writes_a_bundle_of_that_architecture(architecture, tmp_path):
    images, labels = blob_images(40)
    val_images, _ = blob_images(10, seed=1)
    config = TrainConfig(epochs=1, batch_size=20, warmup_epochs=1, knn=3, device="cpu", seed=0)
    model = fit_generator(TensorDataset(images, labels), TensorDataset(val_images), config, tmp_path,
                          model_config=ModelConfig(architecture=architecture, hidden_dim=16, latent_dim=LATENT),
                          progress=False, log=lambda record: None)
    assert model.architecture == architecture
    assert json.loads((tmp_path / "config.json").read_text())["model"]["architecture"] == architecture
    record = json.loads((tmp_path / "train_log.jsonl").read_text().splitlines()[0])
    assert record["epoch"] == 1 and record["val_elbo"] > -1e4
    reloaded = load_generator(tmp_path)
    assert type(reloaded) is type(model) and torch.equal(reloaded.exemplar_means, model.exemplar_means)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_an_iwae_bound_of_one_sample_is_the_elbo_of_the_same_draw(architecture):
    """The IWAE weights hold every latent layer's terms: with S = 1 the bound is the one-sample ELBO, draw for draw."""
    model = small_generator(architecture)
    image = torch.bernoulli(blob_images(1, seed=9)[0], generator=torch.Generator().manual_seed(0))
    bound = model.iwae(image, num_samples=1, generator=torch.Generator().manual_seed(5), prior_tolerance=None)
    with torch.no_grad():
        elbo = model.elbo_terms(image, torch.Generator().manual_seed(5)).elbo
    torch.testing.assert_close(bound, elbo)


@pytest.mark.parametrize("architecture", ["hvae", "convhvae"])
def test_the_noise_scale_narrows_the_kernel_around_the_exemplar_but_z1_stays_a_draw(architecture):
    augment = ExemplarAugment(small_generator(architecture), p=1.0, noise_scale=0.0,
                              rng=torch.Generator().manual_seed(0))
    image = blob_images(1, seed=10)[0]
    assert not torch.equal(augment.twins(image), augment.twins(image))  # z1 ~ p(z1 | z2) still varies
    noise = torch.randn(1, augment.generator.twin_noise_dim, generator=torch.Generator().manual_seed(1))
    scaled = twin_noise(augment.generator, 1, 0.0, torch.Generator().manual_seed(1))
    assert torch.all(scaled[:, :LATENT] == 0) and torch.equal(scaled[:, LATENT:], noise[:, LATENT:])


def test_noise_of_the_wrong_width_is_refused_naming_the_width_twins_take():
    model = small_generator("hvae")
    mu, log_var = model.encode(blob_images(2)[0])
    with pytest.raises(ValueError, match=f"twin_noise_dim={2 * LATENT}"):
        model.decode_around(mu, log_var, torch.randn(2, LATENT))


@pytest.mark.parametrize("architecture", ["hvae", "convhvae"])
@pytest.mark.parametrize("options", [{"cached_trunk": True}, {"gradient_neighbours": 1}, {"exemplar_search": "exact"},
                                     {"prior": "gaussian"}, {"prior": "vamp"}])
def test_every_training_recipe_takes_the_hierarchical_architectures(architecture, options, tmp_path):
    images, _ = blob_images(30)
    prior = options.pop("prior", "exemplar")
    config = TrainConfig(epochs=1, batch_size=15, warmup_epochs=1, knn=3, device="cpu", **options)
    model = fit_generator(TensorDataset(images), TensorDataset(blob_images(10, seed=1)[0]), config, tmp_path,
                          model_config=ModelConfig(architecture=architecture, prior=prior, hidden_dim=8,
                                                   latent_dim=LATENT, num_pseudo_inputs=3),
                          progress=False, log=lambda record: None)
    assert model.architecture == architecture and model.config.prior == prior


@pytest.mark.parametrize("architecture", ["hvae", "convhvae"])
def test_the_mixed_loader_decodes_its_own_exemplars_from_their_cached_means(architecture):
    model = small_generator(architecture)
    images, labels = model.exemplar_images[:6], model.exemplar_labels[:6]
    loader = MixedBatchLoader(DataLoader(TensorDataset(images, labels), batch_size=3), model, seed=0)
    encoded = []
    model.posterior = lambda x: encoded.append(x) or type(model).posterior(model, x)  # counts encoder calls
    for batch in loader:
        assert batch.synthetic.shape == batch.real.shape and batch.synthetic.dtype == torch.uint8
    assert encoded == []  # every twin came from the exemplars' cached means
