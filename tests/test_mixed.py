"""MixedBatchLoader and mixed_loss: eq. 16, batches, pass-through of the loader, DDP."""

import json
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from conftest import blob_images
from exaug import ExemplarVAE, MixedBatch, MixedBatchLoader, load_generator, mixed_loss


def test_mixed_loss_matches_a_hand_computation():
    logits_real = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    logits_syn = torch.tensor([[1.0, 1.0], [3.0, 0.0]])
    target = torch.tensor([0, 1])

    def smoothed_ce(logits, target, eps=0.1):
        log_p = logits.log_softmax(1)
        per_row = [-(1 - eps) * log_p[i, target[i]] - eps / 2 * log_p[i].sum() for i in range(2)]
        return sum(per_row) / 2

    expected = 0.4 * smoothed_ce(logits_real, target) + 0.6 * smoothed_ce(logits_syn, target)
    torch.testing.assert_close(mixed_loss(logits_real, logits_syn, target, lam=0.4), expected)


def test_lambda_one_is_plain_label_smoothed_cross_entropy_on_real_data():
    logits_real, logits_syn, target = torch.randn(5, 3), torch.randn(5, 3), torch.randint(0, 3, (5,))
    torch.testing.assert_close(mixed_loss(logits_real, logits_syn, target, lam=1.0),
                               F.cross_entropy(logits_real, target, label_smoothing=0.1))


def test_lambda_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="lam=1.2"):
        mixed_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), lam=1.2)


def loader_of(images, labels, batch_size=8):
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_batches_hold_real_images_their_twins_and_the_labels(tiny_generator_dir, dtype):
    images, labels = blob_images(20, seed=3)
    images = (images * 255).round().to(torch.uint8) if dtype == torch.uint8 else images
    mixed = MixedBatchLoader(loader_of(images, labels), tiny_generator_dir, seed=0)
    batches = list(mixed)
    assert len(batches) == len(mixed) == 3
    batch = batches[0]
    assert isinstance(batch, MixedBatch)
    assert batch.synthetic.shape == batch.real.shape and batch.synthetic.dtype == dtype
    assert not torch.equal(batch.synthetic, batch.real)
    assert batch.target.shape == (8,)


def test_the_same_seed_gives_the_same_synthetic_batches(tiny_generator_dir):
    images, labels = blob_images(16, seed=3)
    first = list(MixedBatchLoader(loader_of(images, labels), tiny_generator_dir, seed=4))
    second = list(MixedBatchLoader(loader_of(images, labels), tiny_generator_dir, seed=4))
    assert all(torch.equal(a.synthetic, b.synthetic) for a, b in zip(first, second))


def test_exemplar_images_use_the_cached_means_and_others_are_encoded(tiny_generator_dir, monkeypatch):
    generator = load_generator(tiny_generator_dir)
    calls = []
    real_encode = generator.encode
    monkeypatch.setattr(generator, "encode", lambda x: calls.append(len(x)) or real_encode(x))
    own = generator.exemplar_images[:8].float() / 255
    mixed = MixedBatchLoader(loader_of(own, generator.exemplar_labels[:8]), generator, seed=0)
    twins = mixed.synthesize(own)
    assert calls == []  # every image was found in the latent cache
    mu = generator.exemplar_means[:8]
    noise = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = torch.round(generator.decode_around(mu, None, noise) * 255) / 255
    torch.testing.assert_close(twins, expected)
    mixed.synthesize(torch.rand(3, 1, 16, 16))
    assert calls == [3]


def test_noise_scale_shrinks_the_draw_around_the_cached_mean(tiny_generator_dir):
    generator = load_generator(tiny_generator_dir)
    own = generator.exemplar_images[:8].float() / 255
    mixed = MixedBatchLoader(loader_of(own, generator.exemplar_labels[:8]), generator, seed=0, noise_scale=0.25)
    noise = torch.randn(8, generator.config.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = torch.round(generator.decode_around(generator.exemplar_means[:8], None, 0.25 * noise) * 255) / 255
    torch.testing.assert_close(mixed.synthesize(own), expected)


def test_set_epoch_reaches_the_sampler():
    class RecordingSampler(torch.utils.data.Sampler):
        def __init__(self):
            self.epochs = []

        def __iter__(self):
            return iter(range(4))

        def __len__(self):
            return 4

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

    sampler = RecordingSampler()
    loader = DataLoader(TensorDataset(torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long)), sampler=sampler)
    from exaug import ModelConfig

    generator = ExemplarVAE(ModelConfig(input_shape=(1, 4, 4), hidden_dim=8, latent_dim=2, prior="gaussian"))
    mixed = MixedBatchLoader(loader, generator)
    mixed.set_epoch(3)
    assert sampler.epochs == [3] and mixed.sampler is sampler


def _ddp_worker(rank, world_size, init_file, generator_dir, result_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.manual_seed(0)
    images, _ = blob_images(40, seed=5)
    dataset = TensorDataset(images, torch.arange(40))  # the label is the image's index
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=0)
    mixed = MixedBatchLoader(DataLoader(dataset, batch_size=5, sampler=sampler), generator_dir, seed=7)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 40)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = {}
    for epoch in (0, 1):
        mixed.set_epoch(epoch)
        seen[epoch] = []
        for batch in mixed:
            logits = model(torch.cat([batch.real, batch.synthetic]))
            loss = mixed_loss(*logits.split(batch.real.shape[0]), batch.target, lam=0.4)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen[epoch] += batch.target.tolist()
    checksum = sum(p.detach().double().sum().item() for p in model.parameters())
    with open(f"{result_dir}/rank{rank}.json", "w") as handle:
        json.dump({"seen": seen, "batches": len(mixed), "checksum": checksum,
                   "noise_seed": mixed.random.initial_seed()}, handle)
    dist.destroy_process_group()


def test_under_ddp_each_rank_sees_its_shard_and_the_replicas_stay_in_sync(tiny_generator_dir, tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tiny_generator_dir), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in ("0", "1"):
        first, second = set(ranks[0]["seen"][epoch]), set(ranks[1]["seen"][epoch])
        assert first.isdisjoint(second) and first | second == set(range(40))
    assert ranks[0]["seen"]["0"] != ranks[0]["seen"]["1"]  # set_epoch reshuffled
    assert ranks[0]["batches"] == 4
    assert math.isclose(ranks[0]["checksum"], ranks[1]["checksum"], rel_tol=1e-6)
    assert ranks[0]["noise_seed"] != ranks[1]["noise_seed"]  # one seed, a different noise stream per rank


def test_a_batch_mixing_exemplars_and_new_images_encodes_only_the_new_ones(tiny_generator_dir, monkeypatch):
    generator = load_generator(tiny_generator_dir)
    calls = []
    real_encode = generator.encode
    monkeypatch.setattr(generator, "encode", lambda x: calls.append(len(x)) or real_encode(x))
    mixed = MixedBatchLoader([], generator, seed=0)
    batch = torch.cat([generator.exemplar_images[:5].float() / 255, torch.rand(2, 1, 16, 16)])
    assert mixed.synthesize(batch).shape == batch.shape
    assert calls == [2]


@pytest.mark.parametrize("bad,message", [
    (torch.rand(4, 3, 16, 16), "3 channel"),
    (torch.rand(4, 100), "shape"),
    (torch.rand(4, 1, 16, 16) * 2 - 1, r"not Normalize"),
    (torch.zeros(0, 1, 16, 16), "empty"),
])
def test_bad_batches_name_the_problem(tiny_generator_dir, bad, message):
    mixed = MixedBatchLoader([], tiny_generator_dir, seed=0)
    with pytest.raises(ValueError, match=message):
        mixed.synthesize(bad)


def test_flattened_batches_of_the_generator_size_are_accepted(tiny_generator_dir):
    mixed = MixedBatchLoader([], tiny_generator_dir, seed=0)
    assert mixed.synthesize(torch.rand(3, 256)).shape == (3, 256)


def test_a_loader_of_bare_images_is_refused_with_what_it_yielded(tiny_generator_dir):
    mixed = MixedBatchLoader([torch.rand(4, 1, 16, 16)], tiny_generator_dir, seed=0)
    with pytest.raises(ValueError, match="needs a loader of \\(images, labels\\) batches; got a Tensor"):
        next(iter(mixed))
