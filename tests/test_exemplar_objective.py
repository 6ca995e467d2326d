"""The training-time exemplar prior: leave-one-out, exemplar subsampling, exact vs kNN (eq. 13–15)."""

import math

import pytest
import torch

from exaug.config import ModelConfig, TrainConfig
from exaug.exemplar_objective import LeaveOneOutExemplarPrior
from exaug.latent_cache import LatentCache
from exaug.models import ExemplarVAE

N = 40


def make_objective(search="exact", knn=3, fraction=0.5, neighbour_gradient=False, seed=7, gradient_neighbours=None,
                   cached_trunk=False):
    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=(1, 3, 3), latent_dim=2, hidden_dim=8)).double()
    exemplars = torch.rand(N, 1, 3, 3, dtype=torch.float64)
    cache = LatentCache(model.encode_means(exemplars))
    config = TrainConfig(exemplar_search=search, knn=knn, exemplar_fraction=fraction,
                         neighbour_gradient=neighbour_gradient, gradient_neighbours=gradient_neighbours,
                         cached_trunk=cached_trunk)
    generator = torch.Generator().manual_seed(seed)
    trunk = model.encode_features(exemplars) if cached_trunk else None
    return LeaveOneOutExemplarPrior(model, exemplars, cache, config, generator, trunk), model


def drawn_subset(objective, seed=7):
    """The subset the objective draws first, reproduced from the same seed."""
    return torch.randperm(N, generator=torch.Generator().manual_seed(seed))[: objective.subset_size].tolist()


def brute_log_prior(z, batch, subset, cache, log_var):
    sigma2 = math.exp(log_var)
    values = []
    for row, i in enumerate(batch.tolist()):
        allowed = [j for j in subset if j != i]
        terms = [-((z[row] - cache[j]) ** 2).sum() / (2 * sigma2) for j in allowed]
        log_norm = 0.5 * z.shape[1] * math.log(2 * math.pi * sigma2)
        values.append(torch.logsumexp(torch.stack(terms), 0) - log_norm - math.log(len(allowed)))
    return torch.stack(values)


def test_exact_prior_is_the_leave_one_out_mixture_over_the_drawn_subset():
    objective, model = make_objective("exact")
    batch = torch.arange(0, N, 3)
    z = torch.randn(len(batch), 2, dtype=torch.float64)
    result = objective(z, batch)
    expected = brute_log_prior(z, batch, drawn_subset(objective), objective.cache.values, model.prior.log_var.item())
    torch.testing.assert_close(result, expected)


def test_without_subsampling_every_other_exemplar_explains_a_point():
    objective, model = make_objective("exact", fraction=1.0)
    assert objective.subset_size == N
    batch = torch.tensor([0, 5, 39])
    z = torch.randn(3, 2, dtype=torch.float64)
    expected = brute_log_prior(z, batch, list(range(N)), objective.cache.values, model.prior.log_var.item())
    torch.testing.assert_close(objective(z, batch), expected)


def test_knn_prior_is_a_lower_bound_on_the_exact_prior_for_the_same_subset():
    exact, _ = make_objective("exact", seed=3)
    knn, _ = make_objective("knn", knn=3, seed=3)
    batch = torch.arange(N)
    z = torch.randn(N, 2, dtype=torch.float64)
    assert (knn(z, batch) <= exact(z, batch) + 1e-12).all()


def test_knn_prior_with_k_covering_the_subset_equals_the_exact_prior():
    exact, _ = make_objective("exact", seed=5)
    knn, _ = make_objective("knn", knn=N, seed=5)
    batch = torch.arange(N)
    z = torch.randn(N, 2, dtype=torch.float64)
    torch.testing.assert_close(knn(z, batch), exact(z, batch))


def test_knn_rows_use_exactly_k_subset_members_and_never_themselves():
    objective, _ = make_objective("knn", knn=4)
    subset = torch.tensor(drawn_subset(objective))
    batch = torch.arange(N)
    members, mask, _ = objective._nearest_members(batch, subset)
    assert (mask.sum(1) == 4).all()
    for row, i in enumerate(batch.tolist()):
        used = members[mask[row]].tolist()
        assert i not in used
        assert set(used) <= set(subset.tolist())


def test_knn_rows_take_the_nearest_members_of_the_subset():
    objective, _ = make_objective("knn", knn=2)
    subset = torch.tensor(drawn_subset(objective))
    members, mask, _ = objective._nearest_members(torch.tensor([0]), subset)
    cache = objective.cache.values
    others = [j for j in subset.tolist() if j != 0]
    by_distance = sorted(others, key=lambda j: (cache[j] - cache[0]).pow(2).sum().item())
    assert sorted(members[mask[0]].tolist()) == sorted(by_distance[:2])


def test_knn_rows_take_the_members_nearest_to_their_query_when_one_is_given():
    objective, _ = make_objective("knn", knn=2)
    subset = torch.tensor(drawn_subset(objective))
    query = torch.tensor([[3.0, -2.0]], dtype=torch.float64)  # e.g. the row's current posterior mean
    members, mask, _ = objective._nearest_members(torch.tensor([0]), subset, query)
    cache = objective.cache.values
    others = [j for j in subset.tolist() if j != 0]
    by_distance = sorted(others, key=lambda j: (cache[j] - query[0]).pow(2).sum().item())
    assert sorted(members[mask[0]].tolist()) == sorted(by_distance[:2])


@pytest.mark.parametrize("search", ["exact", "knn"])
def test_neighbour_gradient_reaches_the_encoder_and_refreshes_the_cache(search):
    objective, model = make_objective(search, neighbour_gradient=True)
    stale = objective.cache.values.clone()
    objective.cache.values.add_(1.0)  # pretend the cache is out of date
    z = torch.randn(4, 2, dtype=torch.float64)
    objective(z, torch.arange(4)).sum().backward()
    assert model.encoder.mean.weight.grad.abs().sum() > 0
    refreshed = (objective.cache.values - stale).abs().sum(1) < 1e-9
    assert refreshed.any()


def test_gradient_neighbours_re_encode_each_rows_g_nearest_and_take_the_others_from_the_cache():
    objective, model = make_objective("knn", knn=3, neighbour_gradient=True, gradient_neighbours=1)
    current = objective.cache.values.clone()
    objective.cache.values.add_(1.0)  # a stale cache; the same shift for every mean keeps the neighbour ranks
    stale = objective.cache.values.clone()
    batch, z = torch.arange(4), torch.randn(4, 2, dtype=torch.float64)
    log_prior = objective(z, batch)

    subset = drawn_subset(objective)
    ranked = {i: sorted((j for j in subset if j != i), key=lambda j: (current[j] - current[i]).pow(2).sum().item())
              for i in batch.tolist()}
    nearest = sorted({ranked[i][0] for i in ranked})
    refreshed = [j for j in range(N) if torch.allclose(objective.cache.values[j], current[j])]
    assert refreshed == nearest
    centres = stale.clone()
    centres[nearest] = current[nearest]
    sigma2 = model.prior.log_var.exp().item()
    for row, i in enumerate(batch.tolist()):
        terms = torch.stack([-((z[row] - centres[j]) ** 2).sum() / (2 * sigma2) for j in ranked[i][:3]])
        count = objective.subset_size - (i in subset)
        expected = torch.logsumexp(terms, 0) - math.log(2 * math.pi * sigma2) - math.log(count)  # latent_dim 2
        assert log_prior[row].item() == pytest.approx(expected.item(), abs=1e-10)
    log_prior.sum().backward()
    assert model.encoder.mean.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("g", [None, 3, 10])
def test_gradient_on_k_or_more_neighbours_is_all_k_exactly(g):
    z = torch.randn(4, 2, dtype=torch.float64)
    every, _ = make_objective("knn", knn=3, neighbour_gradient=True, gradient_neighbours=None)
    asked, _ = make_objective("knn", knn=3, neighbour_gradient=True, gradient_neighbours=g)
    assert torch.equal(every(z, torch.arange(4)), asked(z, torch.arange(4)))


def test_the_default_re_encodes_all_k_and_a_g_nearest_setting_is_ignored_where_it_is_no_choice():
    assert TrainConfig().gradient_neighbours is None and TrainConfig().gradient_neighbours_in_use is None
    assert TrainConfig(gradient_neighbours=3).gradient_neighbours_in_use == 3
    for options in (dict(knn=3), dict(exemplar_search="exact"), dict(neighbour_gradient=False),
                    dict(cached_trunk=True)):
        options["gradient_neighbours"] = 3
        assert TrainConfig(**options).gradient_neighbours_in_use is None, options
    assert TrainConfig(knn=4, gradient_neighbours=2).gradient_neighbours_in_use == 2


@pytest.mark.parametrize("options, message", [
    (dict(gradient_neighbours=0), "must be a positive integer"),
    (dict(gradient_neighbours=2.5), "must be a positive integer"),
    (dict(gradient_neighbours=True), "must be a positive integer"),
    (dict(cached_trunk=True, neighbour_gradient=False), "cached_trunk re-encodes"),
])
def test_cheaper_neighbour_gradients_outside_their_recipe_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**options)


@pytest.mark.parametrize("search", ["exact", "knn"])
def test_a_cached_trunk_gives_the_re_encoded_prior_with_gradient_into_the_mean_head_only(search):
    z = torch.randn(4, 2, dtype=torch.float64)
    re_encoded, _ = make_objective(search, neighbour_gradient=True)
    from_trunk, model = make_objective(search, neighbour_gradient=True, cached_trunk=True)
    log_prior = from_trunk(z, torch.arange(4))
    # fresh features: the same centres as re-encoding the grey images, so the same log r(z)
    assert torch.allclose(log_prior, re_encoded(z, torch.arange(4)), atol=1e-12)
    log_prior.sum().backward()
    assert model.encoder.mean.weight.grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in model.encoder.trunk.parameters())


def test_a_cached_trunk_reads_the_features_it_was_given_not_the_current_encoder():
    objective, model = make_objective("knn", neighbour_gradient=True, cached_trunk=True)
    z = torch.randn(4, 2, dtype=torch.float64)
    before = objective(z, torch.arange(4)).detach()
    with torch.no_grad():
        model.encoder.trunk[0].h.weight.add_(1.0)  # the trunk moves on; its cached features are a step stale
    objective.generator.manual_seed(7)
    assert torch.equal(objective(z, torch.arange(4)).detach(), before)


def test_a_cached_trunk_without_features_is_refused():
    model = ExemplarVAE(ModelConfig(input_shape=(1, 3, 3), latent_dim=2, hidden_dim=8)).double()
    exemplars = torch.rand(N, 1, 3, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs the trunk features of every exemplar"):
        LeaveOneOutExemplarPrior(model, exemplars, LatentCache(model.encode_means(exemplars)),
                                 TrainConfig(cached_trunk=True), torch.Generator())


def test_cached_centres_carry_no_gradient_into_the_encoder():
    objective, model = make_objective("knn", neighbour_gradient=False)
    z = torch.randn(4, 2, dtype=torch.float64)
    objective(z, torch.arange(4)).sum().backward()
    assert model.encoder.mean.weight.grad is None
    assert model.prior.log_var.grad is not None


def test_without_leave_one_out_a_point_is_explained_by_its_own_exemplar_too():
    objective, model = make_objective("exact", fraction=1.0)
    objective.leave_one_out = False
    batch = torch.tensor([0, 5, 39])
    z = objective.cache.values[batch] + 0.01  # right beside their own exemplars
    sigma2 = math.exp(model.prior.log_var.item())
    terms = -((z.unsqueeze(1) - objective.cache.values.unsqueeze(0)) ** 2).sum(-1) / (2 * sigma2)
    expected = torch.logsumexp(terms, 1) - 0.5 * 2 * math.log(2 * math.pi * sigma2) - math.log(N)
    torch.testing.assert_close(objective(z, batch), expected)


def test_knn_without_leave_one_out_may_take_the_row_itself_as_a_neighbour():
    objective, _ = make_objective("knn", knn=1, fraction=1.0)
    objective.leave_one_out = False
    members, mask, _ = objective._nearest_members(torch.arange(N), torch.arange(N))
    assert [members[mask[row]].item() for row in range(N)] == list(range(N))  # each point's nearest is itself


def test_a_generator_without_the_exemplar_prior_is_refused():
    model = ExemplarVAE(ModelConfig(input_shape=(1, 3, 3), latent_dim=2, hidden_dim=8, prior="gaussian")).double()
    exemplars = torch.rand(N, 1, 3, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs a generator with the exemplar prior; this one has GaussianPrior"):
        LeaveOneOutExemplarPrior(model, exemplars, LatentCache(model.encode_means(exemplars)), TrainConfig(),
                                 torch.Generator())
