"""The prior log-densities against brute-force sums on tiny inputs."""

import math

import pytest
import torch

from exaug.config import ModelConfig
from exaug.priors import (
    ExemplarPrior,
    diagonal_mixture_log_prob,
    isotropic_mixture_log_prob,
    log_normal_diag,
    squared_distances,
)
from exaug.models import ExemplarVAE


def brute_isotropic_mixture(z, centres, log_var, allowed):
    """log (1/|allowed|) Σ_{j allowed} N(z; c_j, σ² I), one row at a time."""
    sigma2 = math.exp(log_var)
    rows = []
    for b in range(z.shape[0]):
        terms = [
            torch.distributions.MultivariateNormal(centres[j], sigma2 * torch.eye(z.shape[1], dtype=z.dtype)).log_prob(z[b])
            for j in allowed[b]
        ]
        rows.append(torch.logsumexp(torch.stack(terms), 0) - math.log(len(allowed[b])))
    return torch.stack(rows)


def test_squared_distances_match_pairwise_differences():
    z, centres = torch.randn(5, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    expected = ((z[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    torch.testing.assert_close(squared_distances(z, centres), expected)


def test_isotropic_mixture_without_mask_is_the_plain_average_of_gaussians():
    z, centres, log_var = torch.randn(4, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64), -0.7
    result = isotropic_mixture_log_prob(z, centres, torch.tensor(log_var, dtype=torch.float64), math.log(6))
    torch.testing.assert_close(result, brute_isotropic_mixture(z, centres, log_var, [range(6)] * 4))


def test_leave_one_out_mask_and_per_row_normaliser_drop_the_point_itself():
    z, centres, log_var = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64), 0.3
    mask = ~torch.eye(4, dtype=torch.bool)  # row b is exemplar b: it may not explain itself
    log_count = torch.full((4,), math.log(3), dtype=torch.float64)
    result = isotropic_mixture_log_prob(z, centres, torch.tensor(log_var, dtype=torch.float64), log_count, mask)
    allowed = [[j for j in range(4) if j != b] for b in range(4)]
    torch.testing.assert_close(result, brute_isotropic_mixture(z, centres, log_var, allowed))


def test_diagonal_mixture_matches_a_sum_of_diagonal_gaussians():
    z = torch.randn(5, 3, dtype=torch.float64)
    means, log_vars = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    per_component = torch.stack([log_normal_diag(z, means[k], log_vars[k]) for k in range(4)], dim=1)
    expected = torch.logsumexp(per_component, 1) - math.log(4)
    torch.testing.assert_close(diagonal_mixture_log_prob(z, means, log_vars), expected)


def test_log_normal_diag_matches_torch_distributions():
    x, mean, log_var = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    expected = torch.distributions.Normal(mean, torch.exp(0.5 * log_var)).log_prob(x).sum(-1)
    torch.testing.assert_close(log_normal_diag(x, mean, log_var), expected)


def test_exemplar_prior_at_test_time_uses_every_exemplar_without_leave_one_out():
    prior = ExemplarPrior(latent_dim=3).double()
    means = torch.randn(5, 3, dtype=torch.float64)
    prior.set_exemplar_means(means)
    z = torch.randn(2, 3, dtype=torch.float64)
    expected = brute_isotropic_mixture(z, means, prior.log_var.item(), [range(5)] * 2)
    torch.testing.assert_close(prior.log_prob(z), expected)


def test_exemplar_prior_scores_large_batches_in_chunks_with_the_same_result(monkeypatch):
    prior = ExemplarPrior(latent_dim=2)
    prior.set_exemplar_means(torch.randn(50, 2))
    z = torch.randn(40, 2)
    whole = prior.log_prob(z)
    monkeypatch.setattr("exaug.priors._MAX_CHUNK_ELEMENTS", 100)  # forces chunks of 2 rows
    torch.testing.assert_close(prior.log_prob(z), whole)


def test_exemplar_prior_without_exemplars_says_how_to_set_them():
    with pytest.raises(RuntimeError, match="set_exemplars"):
        ExemplarPrior(latent_dim=2).log_prob(torch.zeros(1, 2))


def test_vamp_pseudo_inputs_keep_their_own_init_after_the_he_init():
    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=(1, 8, 8), prior="vamp", num_pseudo_inputs=400))
    pseudo = model.prior.pseudo_inputs.detach()
    assert abs(pseudo.mean().item() - 0.05) < 0.005
    assert abs(pseudo.std().item() - 0.01) < 0.002


def test_vamp_prior_is_the_mixture_of_pseudo_input_posteriors():
    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=(1, 4, 4), prior="vamp", num_pseudo_inputs=3, hidden_dim=8, latent_dim=2))
    z = torch.randn(5, 2)
    means, log_vars = model.encode(model.prior.pseudo_images())
    per_component = torch.stack([log_normal_diag(z, means[k], log_vars[k]) for k in range(3)], dim=1)
    expected = torch.logsumexp(per_component, 1) - math.log(3)
    torch.testing.assert_close(model.log_prior(z), expected)


def test_masked_logsumexp_matches_torch_and_ignores_masked_entries():
    from exaug.priors import masked_logsumexp

    logits = torch.randn(4, 6) * 50
    torch.testing.assert_close(masked_logsumexp(logits), torch.logsumexp(logits, -1))
    mask = torch.rand(4, 6) > 0.5
    mask[:, 0] = True
    expected = torch.logsumexp(logits.masked_fill(~mask, float("-inf")), -1)
    torch.testing.assert_close(masked_logsumexp(logits, mask), expected)
    logits.requires_grad_()
    masked_logsumexp(logits, mask).sum().backward()
    assert (logits.grad[~mask] == 0).all()


def spread_exemplar_prior() -> ExemplarPrior:
    """20,000 exemplars spread far wider than the kernel, so most are far from any one point."""
    torch.manual_seed(0)
    prior = ExemplarPrior(latent_dim=6)
    with torch.no_grad():
        prior.log_var.fill_(math.log(0.5))
    prior.set_exemplar_means(torch.randn(20_000, 6) * 3)
    return prior


def count_scored_pairs(monkeypatch) -> list[int]:
    """The row × exemplar pairs of every mixture sum the prior computes from now on, one entry per call."""
    import exaug.priors as priors

    scored, real = [], priors.isotropic_mixture_log_prob
    monkeypatch.setattr(priors, "isotropic_mixture_log_prob",
                        lambda rows, centres, *rest: scored.append(rows.shape[0] * centres.shape[0]) or real(rows, centres, *rest))
    return scored


@pytest.mark.parametrize("tolerance", [1e-2, 1e-3])
def test_the_prior_near_an_anchor_scores_far_fewer_pairs_and_stays_within_its_tolerance(tolerance, monkeypatch):
    prior = spread_exemplar_prior()
    anchor = torch.randn(6)
    z = anchor + 0.8 * torch.randn(300, 6)
    full = prior.log_prob(z)
    scored = count_scored_pairs(monkeypatch)
    near = prior.log_prob_near(z, anchor, tolerance, first_candidates=64)
    assert sum(scored) < 0.5 * z.shape[0] * 20_000
    assert (near <= full + 1e-5).all() and (full - near).max() <= tolerance + 1e-5


def test_the_iwae_bound_with_the_near_prior_moves_by_less_than_its_tolerance(monkeypatch):
    import exaug.priors as priors

    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=(1, 6, 6), hidden_dim=16, latent_dim=3)).eval()
    model.set_exemplars(torch.rand(20_000, 1, 6, 6))
    model.prior.set_exemplar_means(torch.randn(20_000, 3) * 4)  # spread out, so most exemplars are far away
    with torch.no_grad():
        model.prior.log_var.fill_(math.log(0.1))
    images = torch.bernoulli(torch.rand(3, 1, 6, 6))
    exact = model.iwae(images, 400, chunk_size=100, generator=torch.Generator().manual_seed(1), prior_tolerance=None)
    scored, real = [], priors.isotropic_mixture_log_prob
    monkeypatch.setattr(priors, "isotropic_mixture_log_prob",
                        lambda rows, centres, *rest: scored.append(rows.shape[0] * centres.shape[0]) or real(rows, centres, *rest))
    fast = model.iwae(images, 400, chunk_size=100, generator=torch.Generator().manual_seed(1), prior_tolerance=1e-3)
    assert sum(scored) < 0.5 * 3 * 400 * 20_000  # far fewer sample-exemplar pairs than the exact sum
    assert ((exact - fast) >= -1e-5).all() and ((exact - fast) <= 1e-3 + 1e-5).all()


@pytest.mark.parametrize("options, message", [({"tolerance": 0.0}, "tolerance=0.0"),
                                              ({"first_candidates": 0}, "first_candidates=0")])
def test_the_prior_near_an_anchor_refuses_a_bad_tolerance_or_candidate_count(options, message):
    prior = ExemplarPrior(latent_dim=2)
    prior.set_exemplar_means(torch.randn(10, 2))
    with pytest.raises(ValueError, match=message):
        prior.log_prob_near(torch.randn(3, 2), torch.zeros(2), **options)


def test_the_prior_near_an_anchor_of_no_rows_is_empty_and_of_few_exemplars_is_exact():
    prior = ExemplarPrior(latent_dim=2)
    prior.set_exemplar_means(torch.randn(10, 2))
    assert prior.log_prob_near(torch.empty(0, 2), torch.zeros(2)).shape == (0,)
    z = torch.randn(5, 2)
    torch.testing.assert_close(prior.log_prob_near(z, torch.zeros(2)), prior.log_prob(z))  # 10 < first_candidates


def test_rows_that_need_every_exemplar_do_not_make_the_rows_near_the_anchor_need_them(monkeypatch):
    prior = spread_exemplar_prior()
    anchor = torch.randn(6)
    z = torch.cat([anchor + 0.5 * torch.randn(240, 6), anchor + 40 * torch.randn(60, 6)])  # a fifth far out
    full = prior.log_prob(z)
    scored = count_scored_pairs(monkeypatch)
    near = prior.log_prob_near(z, anchor, 1e-3, first_candidates=64)
    assert sum(scored) < 0.5 * z.shape[0] * 20_000  # one radius for all would score nearly every pair
    assert (near <= full + 1e-5).all() and (full - near).max() <= 1e-3 + 1e-5
