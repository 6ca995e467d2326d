"""Permutation-invariant MNIST with the paper's recipe: real batch + synthetic twins, eq. 16.

MixedBatchLoader wraps an ordinary DataLoader; generation happens batch-wise in the main
process, on the training device. mixed_loss weighs real data by λ and synthetic by 1 − λ.

    python examples/mnist_mixed_loader.py --generator mnist --lam 0.4 --epochs 10
"""

import argparse

import torch
from torch.utils.data import DataLoader, Subset

from exaug import MixedBatchLoader, mixed_loss
from exaug.classifiers import PermutationInvariantMLP
from exaug.data import load_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="mnist", help="bundled name or bundle directory")
    parser.add_argument("--lam", type=float, default=0.4, help="weight on real data")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--subset", type=int, default=None,
                        help="train and test on the first SUBSET images only (a quick check of the script)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights, the shuffling and the twins")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    train, test = load_split("mnist", "trainval"), load_split("mnist", "test")
    if args.subset is not None:
        train, test = Subset(train, range(args.subset)), (test.images[: args.subset], test.labels[: args.subset])
    else:
        test = test.images, test.labels
    loader = DataLoader(train, batch_size=100, shuffle=True, num_workers=2, persistent_workers=True)
    batches = MixedBatchLoader(loader, args.generator, device=device, seed=args.seed)

    model = PermutationInvariantMLP(784, 10, hidden=(1024, 1024)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.01, total_iters=args.epochs * len(batches))
    for epoch in range(1, args.epochs + 1):
        model.train()
        batches.set_epoch(epoch)
        for batch in batches:  # MixedBatch(real, synthetic, target)
            logits_real, logits_syn = model(batch.real), model(batch.synthetic)
            loss = mixed_loss(logits_real, logits_syn, batch.target, lam=args.lam)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            x, y = test[0].float().div(255).to(device), test[1].to(device)
            error = (model(x).argmax(1) != y).float().mean().item() * 100
        print(f"epoch {epoch}: test error {error:.2f}%")


if __name__ == "__main__":
    main()
