"""Networks held still for an explanation, and handed back as the caller had them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """The modules in eval mode with their parameters frozen for the block, then in the modes and with the
    gradients the caller gave them (a user's model explained and then fine-tuned keeps its training mode,
    dropout and gradients).

    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    >>> with frozen(net):
    ...     (net.training, net[0].weight.requires_grad)
    (False, False)
    >>> (net.training, net[0].weight.requires_grad)
    (True, True)
    """
    training = [(m, m.training) for module in modules for m in module.modules()]
    grads = [(p, p.requires_grad) for module in modules for p in module.parameters()]
    try:
        for module in modules:
            module.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        yield
    finally:
        for m, mode in training:  # the flag itself: an exported program's module refuses train()
            m.training = mode
        for p, flag in grads:
            p.requires_grad_(flag)
