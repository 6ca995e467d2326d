"""The approximate kNN index of the latent cache (issue 27 §3): it finds what the exact search finds, among the
exemplar subset only, follows the cache as it changes, and is chosen by the knn_index setting; and the exemplar
subset of a large set, drawn as a mask, is uniform, of exactly M rows, and one function of the generator's state."""

import itertools
from collections import Counter

import pytest
import torch

from exaug import latent_cache
from exaug.config import ModelConfig, TrainConfig
from exaug.exemplar_objective import LeaveOneOutExemplarPrior, uniform_subset_mask
from exaug.latent_cache import LatentCache, recall, resolve_knn_index
from exaug.models import ExemplarVAE

N, D, K = 20_000, 40, 10


def clustered_latents(n: int = N, seed: int = 0) -> torch.Tensor:
    """Latent means as a generator's look: 100 Gaussian clusters, 30 active dimensions and 10 near zero."""
    generator = torch.Generator().manual_seed(seed)
    scale = torch.cat([torch.linspace(1.1, 0.3, 30), torch.full((10,), 0.05)])
    centres = torch.randn(100, D, generator=generator) * scale * 0.6 ** 0.5
    labels = torch.randint(0, 100, (n,), generator=generator)
    return centres[labels] + torch.randn(n, D, generator=generator) * scale * 0.4 ** 0.5


def subset_and_queries(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random half of the rows (the exemplar subset π) and 200 rows outside it to query from."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n // 2], order[n // 2:][:200]


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread():
    """One OpenMP thread, as the benchmarks run: on a CPU shared with other work, faiss's spinning threads wait on
    each other for longer than the small searches here take."""
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(previous)


@pytest.fixture(scope="module")
def means() -> torch.Tensor:
    return clustered_latents()


@pytest.fixture(scope="module")
def ivf_cache(means) -> LatentCache:
    return LatentCache(means, knn_index="ivf")


def test_the_index_finds_the_exact_neighbours_among_the_candidates_at_the_recall_asked(means, ivf_cache):
    exact = LatentCache(means)
    for seed in range(3):  # fresh subsets and queries, not the ones the index was calibrated on
        candidates, rows = subset_and_queries(N, seed)
        queries = means[rows] + 0.01 * torch.randn(rows.shape[0], D)
        found = ivf_cache.search(queries, K, candidates)
        assert recall(found, exact.search(queries, K, candidates)) >= 0.95


def test_every_neighbour_found_is_a_candidate_even_when_the_scanned_lists_hold_too_few(means, ivf_cache):
    candidates = torch.randperm(N, generator=torch.Generator().manual_seed(5))[:300]  # ~2 per list
    found = ivf_cache.search(means[:50], K, candidates)
    assert found.shape == (50, K)
    assert torch.isin(found, candidates).all()
    assert all(len(set(row)) == K for row in found.tolist())


def test_candidates_given_as_a_mask_are_searched_as_the_same_indices(means, ivf_cache):
    candidates, rows = subset_and_queries(N, seed=4)
    mask = torch.zeros(N, dtype=torch.bool).index_fill_(0, candidates, True)
    for cache in (LatentCache(means), ivf_cache):
        assert torch.equal(cache.search(means[rows], K, mask), cache.search(means[rows], K, candidates))


def test_the_index_follows_moved_rows_and_a_refresh_of_every_row(means):
    cache = LatentCache(means, knn_index="ivf")
    moved = torch.arange(0, 2_000, 10)
    far = torch.full((D,), 8.0)
    cache.update(moved, far + 0.001 * torch.randn(moved.shape[0], D))  # out of every cluster, into one spot
    found = cache.search(far.unsqueeze(0), K)
    assert torch.isin(found, moved).all()

    refreshed = clustered_latents(seed=1)
    cache.refresh(refreshed)
    candidates, rows = subset_and_queries(N, seed=9)
    exact = LatentCache(refreshed).search(refreshed[rows], K, candidates)
    assert recall(cache.search(refreshed[rows], K, candidates), exact) >= 0.95


def test_auto_searches_exactly_below_the_threshold_and_builds_the_index_from_it(means, monkeypatch):
    candidates, rows = subset_and_queries(N, seed=2)
    below = LatentCache(means, knn_index="auto")
    assert below.index_kind == "exact"
    assert torch.equal(below.search(means[rows], K, candidates), LatentCache(means).search(means[rows], K, candidates))
    monkeypatch.setattr(latent_cache, "APPROXIMATE_FROM", N)
    assert LatentCache(means, knn_index="auto").index_kind == "ivf"
    assert resolve_knn_index("auto", N, torch.device("cuda")) == "exact"  # the GPU searches exactly, fast


def test_the_kNN_prior_sets_its_cache_to_the_configured_index_and_the_exact_prior_leaves_it():
    model = ExemplarVAE(ModelConfig(input_shape=(1, 3, 3), latent_dim=2, hidden_dim=8))
    exemplars = torch.rand(400, 1, 3, 3)
    for search, expected in (("knn", "ivf"), ("exact", "exact")):
        cache = LatentCache(model.encode_means(exemplars))
        LeaveOneOutExemplarPrior(model, exemplars, cache, TrainConfig(exemplar_search=search, knn_index="ivf"),
                                 torch.Generator().manual_seed(0))
        assert cache.index_kind == expected


def test_a_recipe_recorded_before_knn_index_resumes_with_the_default_which_searches_such_runs_exactly():
    recorded = TrainConfig().to_dict()
    del recorded["knn_index"]
    assert TrainConfig.from_recorded(recorded).knn_index == TrainConfig().knn_index == "auto"
    assert resolve_knn_index("auto", latent_cache.APPROXIMATE_FROM - 1, torch.device("cpu")) == "exact"


@pytest.mark.parametrize("make, message", [
    (lambda: TrainConfig(knn_index="hnsw"), r"knn_index='hnsw' is not known; expected one of \('auto', 'exact', 'ivf'\)"),
    (lambda: LatentCache(torch.zeros(4, 2), knn_index="approximate"), "knn_index='approximate' is not known"),
    (lambda: resolve_knn_index("ivf", 10, torch.device("cuda", 0)), "knn_index='ivf' is a faiss index on the CPU"),
])
def test_a_bad_knn_index_setting_is_refused_naming_the_value_and_the_choices(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("n, size", [(1_000, 500), (1_000, 1), (1_000, 999), (1_000, 1_000), (997, 331), (7, 3)])
def test_a_subset_drawn_as_a_mask_holds_exactly_the_size_asked(n, size):
    for seed in range(5):
        mask = uniform_subset_mask(n, size, torch.Generator().manual_seed(seed))
        assert mask.shape == (n,) and mask.dtype == torch.bool
        assert int(mask.sum()) == size


def test_every_subset_of_the_size_is_equally_likely():
    generator = torch.Generator().manual_seed(0)
    draws = 6_000
    seen = Counter(tuple(uniform_subset_mask(5, 2, generator).nonzero().squeeze(1).tolist()) for _ in range(draws))
    assert set(seen) == set(itertools.combinations(range(5), 2))
    expected = draws / 10
    assert all(abs(count - expected) < 5 * (expected * 0.9) ** 0.5 for count in seen.values())  # 5 standard deviations


def test_a_subset_drawn_as_a_mask_is_one_function_of_the_generator_state():
    first, second = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(uniform_subset_mask(10_000, 5_000, first), uniform_subset_mask(10_000, 5_000, second))
    assert torch.equal(first.get_state(), second.get_state())  # and leaves the stream where it leaves it for everyone
    assert not torch.equal(uniform_subset_mask(10_000, 5_000, first), uniform_subset_mask(10_000, 5_000, torch.Generator().manual_seed(4)))


def small_prior(monkeypatch, approximate_from: int, exemplars: int = 400, search: str = "exact") -> LeaveOneOutExemplarPrior:
    monkeypatch.setattr(latent_cache, "APPROXIMATE_FROM", approximate_from)
    torch.manual_seed(0)
    model = ExemplarVAE(ModelConfig(input_shape=(1, 3, 3), latent_dim=2, hidden_dim=8))
    images = torch.rand(exemplars, 1, 3, 3)
    return LeaveOneOutExemplarPrior(model, images, LatentCache(model.encode_means(images)),
                                    TrainConfig(exemplar_search=search, knn=5, neighbour_gradient=False),
                                    torch.Generator().manual_seed(0))


def test_below_the_threshold_the_subset_is_the_first_M_of_a_permutation_as_before(monkeypatch):
    prior = small_prior(monkeypatch, approximate_from=401)
    expected = torch.randperm(400, generator=torch.Generator().manual_seed(0))[:200]
    assert torch.equal(prior._draw_subset(), expected)


@pytest.mark.parametrize("search", ["exact", "knn"])
def test_from_the_threshold_the_subset_is_a_mask_and_the_prior_term_is_what_its_indices_give(monkeypatch, search):
    prior = small_prior(monkeypatch, approximate_from=400, search=search)
    mask = prior._draw_subset()
    assert mask.dtype == torch.bool and int(mask.sum()) == prior.subset_size
    z, batch = torch.randn(8, 2), torch.arange(0, 80, 10)
    monkeypatch.setattr(prior, "_draw_subset", lambda: mask)
    as_mask = prior(z, batch)
    monkeypatch.setattr(prior, "_draw_subset", lambda: mask.nonzero().squeeze(1))
    torch.testing.assert_close(as_mask, prior(z, batch))


def test_an_index_over_too_few_exemplars_to_train_its_lists_is_refused_naming_the_exact_search():
    with pytest.raises(ValueError, match="at least 64 exemplars.*knn_index='exact'"):
        LatentCache(torch.randn(10, 4), knn_index="ivf")
