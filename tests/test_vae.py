"""ExemplarVAE: shapes from the data, the ELBO pieces, the IWAE bound, generation."""

import pytest
import torch

from exaug.config import ModelConfig
from exaug.models import ExemplarVAE
from exaug.models.base import LOG_VAR_MAX, LOG_VAR_MIN


def model_for(shape, prior="exemplar"):
    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=shape, prior=prior, hidden_dim=32, latent_dim=4, num_pseudo_inputs=5))
    model.set_exemplars(torch.rand(20, *shape), torch.arange(20) % 3)
    return model


@pytest.mark.parametrize("shape", [(1, 16, 16), (1, 28, 28), (3, 32, 32)])
def test_the_model_works_for_any_image_shape(shape):
    model = model_for(shape)
    images = torch.rand(5, *shape)
    assert model.decode(model.encode(images)[0]).shape == (5, *shape)
    assert model.sample(3).shape == (3, *shape)
    assert model.generate(images).shape == (5, *shape)
    assert torch.isfinite(model.elbo_terms(images).elbo).all()


def test_images_of_the_wrong_size_are_refused_with_both_shapes_named():
    model = model_for((1, 16, 16))
    with pytest.raises(ValueError, match=r"\(1, 28, 28\).*\(1, 16, 16\)"):
        model.encode(torch.rand(2, 1, 28, 28))


def test_posterior_log_variance_is_clamped_to_the_hardtanh_range():
    model = model_for((1, 8, 8))
    with torch.no_grad():
        model.encoder.log_var.bias.fill_(50.0)
        assert model.encode(torch.rand(2, 1, 8, 8))[1].max() == LOG_VAR_MAX
        model.encoder.log_var.bias.fill_(-50.0)
        assert model.encode(torch.rand(2, 1, 8, 8))[1].min() == LOG_VAR_MIN


@pytest.mark.parametrize("prior", ["gaussian", "vamp", "exemplar"])
def test_iwae_bound_is_at_least_the_elbo_on_average(prior):
    model = model_for((1, 8, 8), prior)
    images = torch.bernoulli(torch.rand(8, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(2)
    elbo = torch.stack([model.elbo_terms(images, generator).elbo for _ in range(200)]).mean(0)
    iwae = model.iwae(images, num_samples=200, chunk_size=64, generator=generator)
    assert iwae.mean() > elbo.mean()


def test_iwae_with_one_sample_is_the_elbo_of_the_same_draw():
    model = model_for((1, 8, 8))
    images = torch.bernoulli(torch.rand(1, 1, 8, 8))
    iwae = model.iwae(images, num_samples=1, generator=torch.Generator().manual_seed(0))
    elbo = model.elbo_terms(images, torch.Generator().manual_seed(0)).elbo
    torch.testing.assert_close(iwae, elbo)


def test_iwae_is_an_evaluation_that_keeps_no_autograd_graph():
    model = model_for((1, 8, 8))
    images = torch.bernoulli(torch.rand(2, 1, 8, 8))
    assert not model.iwae(images, num_samples=8, chunk_size=4).requires_grad


def test_exemplar_generation_draws_around_the_exemplar_with_the_prior_sigma():
    model = model_for((1, 8, 8))
    with torch.no_grad():
        model.prior.log_var.fill_(-30.0)  # σ → 0: the sample is the decoded exemplar mean
    exemplar = torch.rand(1, 1, 8, 8)
    expected = model.decode(model.encode(exemplar)[0])
    torch.testing.assert_close(model.generate(exemplar), expected)


def test_set_exemplars_rejects_out_of_range_images():
    model = model_for((1, 4, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.set_exemplars(torch.full((3, 1, 4, 4), 2.0))


def test_uint8_images_are_read_as_levels_of_1_over_255():
    model = model_for((1, 8, 8))
    levels = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    torch.testing.assert_close(model.encode(levels), model.encode(levels.float() / 255))
