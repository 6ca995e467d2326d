"""Evaluation metrics on inputs whose answers are known."""

import pytest
import torch

from exaug import ExemplarVAE, ModelConfig
from exaug.evaluate import active_units, evaluate_generator, knn_errors, markdown_report


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
