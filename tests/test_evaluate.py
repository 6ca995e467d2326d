"""Evaluation metrics on inputs whose answers are known."""

import pytest
import torch

from conftest import stops_after

from exaug import ExemplarVAE, ModelConfig
from exaug import evaluate
from exaug.evaluate import active_units, evaluate_generator, iwae_log_likelihood, knn_errors, markdown_report


def test_active_units_count_dimensions_whose_mean_varies_more_than_the_threshold():
    means = torch.zeros(1000, 4)
    means[:, 0] = torch.randn(1000)  # variance ~1: active
    means[:, 1] = 0.05 * torch.randn(1000)  # variance ~0.0025: inactive
    means[:, 2] = 0.5 * torch.randn(1000)  # variance ~0.25: active
    assert active_units(means) == 2


def test_knn_error_is_zero_on_separated_clusters_and_counts_mistakes():
    train = torch.cat([torch.zeros(10, 2), torch.full((10, 2), 10.0)])
    labels = torch.tensor([0] * 10 + [1] * 10)
    queries = torch.tensor([[0.1, 0.0], [9.9, 10.0], [0.2, 0.1], [10.1, 9.8]])
    assert knn_errors(train, labels, queries, torch.tensor([0, 1, 0, 1]), ks=[3, 5]) == {3: 0.0, 5: 0.0}
    assert knn_errors(train, labels, queries, torch.tensor([1, 1, 0, 1]), ks=[3]) == {3: 25.0}


def test_evaluate_generator_reports_every_metric_and_a_markdown_table():
    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=(1, 4, 4), hidden_dim=8, latent_dim=3))
    model.set_exemplars(torch.rand(30, 1, 4, 4), torch.arange(30) % 3)
    results = evaluate_generator(model, torch.rand(12, 1, 4, 4), torch.arange(12) % 3, torch.rand(6, 1, 4, 4),
                                 torch.arange(6) % 3, num_samples=500, subset=None, progress=False)
    assert results["iwae_images"] == 12 and results["test_images"] == 12
    assert -results["iwae_nll"] > results["test_elbo"]  # the IWAE bound is tighter than the one-sample ELBO
    assert results["test_elbo"] == pytest.approx(results["test_reconstruction"] - results["test_kl"])
    assert results["knn_k"] in range(3, 16)
    assert "| test NLL, IWAE |" in markdown_report(results)


def small_generator(seed: int = 0) -> ExemplarVAE:
    torch.manual_seed(seed)
    model = ExemplarVAE(ModelConfig(input_shape=(1, 4, 4), hidden_dim=8, latent_dim=3))
    model.set_exemplars(torch.rand(30, 1, 4, 4), torch.arange(30) % 3)
    return model.eval()


def test_a_stopped_iwae_evaluation_continues_from_its_checkpoint_with_the_numbers_of_one_that_never_stopped(
        tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate, "IWAE_SAVE_EVERY", 2)
    images = torch.bernoulli(torch.rand(7, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    straight = iwae_log_likelihood(small_generator(), images, num_samples=300, chunk_size=100)
    stopped = small_generator()
    stopped.iwae = stops_after(5, stopped.iwae)  # images 1–4 were saved; the fifth is lost with the process
    with pytest.raises(KeyboardInterrupt):
        iwae_log_likelihood(stopped, images, num_samples=300, chunk_size=100, checkpoint=tmp_path / "iwae.pt")
    resumed_model = small_generator()
    resumed_model.iwae = stops_after(3, resumed_model.iwae)  # only images 5–7 remain
    resumed = iwae_log_likelihood(resumed_model, images, num_samples=300, chunk_size=100,
                                  checkpoint=tmp_path / "iwae.pt")
    assert torch.equal(resumed, straight)


@pytest.mark.parametrize("change, named", [({"num_samples": 200}, "num_samples"), ({"seed": 5}, "seed"),
                                           ({"model": 1}, "weights_sha256"), ({"images": 1}, "images_sha256")])
def test_a_saved_iwae_evaluation_is_continued_only_with_the_same_model_images_and_settings(tmp_path, change, named):
    images = torch.bernoulli(torch.rand(4, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    settings = {"num_samples": 300, "chunk_size": 100, "seed": 0}
    iwae_log_likelihood(small_generator(), images[:2], **settings, checkpoint=tmp_path / "iwae.pt")
    model = small_generator(change.get("model", 0))
    evaluated = images[2:] if "images" in change else images[:2]
    settings.update({key: value for key, value in change.items() if key in settings})
    with pytest.raises(ValueError, match=f"iwae.pt holds an IWAE evaluation with a different {named}.*delete "
                                         ".*iwae.pt to start this evaluation afresh") as refusal:
        iwae_log_likelihood(model, evaluated, **settings, checkpoint=tmp_path / "iwae.pt")
    assert str(refusal.value).count("delete") == 1
