"""Gradient-normalised Adam: Adam applied to each parameter's gradient divided by its L2 norm."""

import torch

from exaug.optim import NormalizedAdam


def test_step_equals_adam_on_per_tensor_normalised_gradients():
    torch.manual_seed(0)
    weights = [torch.randn(3, 4, requires_grad=True), torch.randn(5, requires_grad=True)]
    reference = [w.detach().clone().requires_grad_() for w in weights]
    ours, theirs = NormalizedAdam(weights, lr=0.1), torch.optim.Adam(reference, lr=0.1)
    for _ in range(3):
        grads = [torch.randn_like(w) * 100 for w in weights]
        for w, r, g in zip(weights, reference, grads):
            w.grad = g.clone()
            r.grad = g / g.norm()
        ours.step()
        theirs.step()
    for w, r in zip(weights, reference):
        torch.testing.assert_close(w, r)


def test_a_zero_gradient_leaves_the_parameter_finite():
    weight = torch.ones(3, requires_grad=True)
    weight.grad = torch.zeros(3)
    NormalizedAdam([weight], lr=0.1).step()
    assert torch.isfinite(weight).all()
