"""Permutation-invariant MNIST with ExemplarAugment as one step of a plain torchvision pipeline.

Each training image is replaced, with probability p, by an Exemplar VAE sample generated
from it, inside the DataLoader's worker processes. This is the drop-in way to use exaug;
the paper's recipe (every real image plus its synthetic twin, eq. 16) is in
mnist_mixed_loader.py.

    python examples/mnist_transform.py --generator mnist --epochs 10
"""

import argparse

import torch
import torchvision
from torch.nn import functional as F
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2

from exaug import ExemplarAugment
from exaug.augment import DROP_IN_P
from exaug.classifiers import PermutationInvariantMLP
from exaug.data import default_root, fetch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="mnist", help="bundled name or bundle directory")
    parser.add_argument("--p", type=float, default=DROP_IN_P, help="probability of replacing an image "
                        "(default: the transform's own, the recommended drop-in setting)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the weights, the shuffling and the workers' twins (one seed, one result)")
    parser.add_argument("--subset", type=int, default=None,
                        help="train and test on the first SUBSET images only (a quick check of the script)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)  # the DataLoader seeds its workers, and so their twins, from this stream

    root = fetch("mnist", default_root())
    train_transform = v2.Compose([
        v2.ToImage(),  # PIL → uint8 tv_tensors.Image
        ExemplarAugment.from_pretrained(args.generator, p=args.p),
        v2.ToDtype(torch.float32, scale=True),
    ])
    test_transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    train = torchvision.datasets.MNIST(root, train=True, transform=train_transform)
    test = torchvision.datasets.MNIST(root, train=False, transform=test_transform)
    if args.subset is not None:
        train, test = Subset(train, range(args.subset)), Subset(test, range(args.subset))
    train_loader = DataLoader(train, batch_size=100, shuffle=True, num_workers=args.workers,
                              persistent_workers=args.workers > 0)
    test_loader = DataLoader(test, batch_size=1000)

    model = PermutationInvariantMLP(784, 10, hidden=(1024, 1024))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.01, total_iters=args.epochs * len(train_loader))
    for epoch in range(1, args.epochs + 1):
        model.train()
        for images, labels in train_loader:
            loss = F.cross_entropy(model(images), labels, label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            wrong = sum((model(x).argmax(1) != y).sum().item() for x, y in test_loader)
        print(f"epoch {epoch}: test error {100 * wrong / len(test):.2f}%")


if __name__ == "__main__":
    main()
