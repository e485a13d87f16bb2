"""A small tabular VAE and its negative-ELBO criterion.

Only ``nn.Linear`` layers and parameter-free activations are used so that Opacus can
compute per-sample gradient norms with ghost clipping. The forward pass returns one
tensor, ``[logits | mu | logvar]``, because Opacus' ghost-clipping criterion wrapper
calls ``criterion(output, target)`` with a single output tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class TabularVAE(nn.Module):
    """VAE over a one-hot encoded row; the decoder emits logits for every block."""

    def __init__(
        self, data_dim: int, hidden: Sequence[int] = (128, 128), latent_dim: int = 16
    ) -> None:
        super().__init__()
        self.data_dim = data_dim
        self.latent_dim = latent_dim
        self.hidden = tuple(hidden)
        self.encoder = _mlp([data_dim, *hidden, 2 * latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(self.hidden), data_dim])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        mu, logvar = h[:, : self.latent_dim], h[:, self.latent_dim:]
        return mu, logvar.clamp(-10.0, 10.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``[logits | mu | logvar]``; in eval mode z is the posterior mean."""
        mu, logvar = self.encode(x)
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        else:
            z = mu
        return torch.cat([self.decode(z), mu, logvar], dim=1)


class NegativeELBO(nn.Module):
    """Per-block cross-entropy reconstruction + ``kl_weight`` × KL(q(z|x) ‖ N(0, I)).

    ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"`` (per-sample losses), as Opacus'
    ghost clipping requires. An all-zero block (an unobserved cell) contributes no loss.
    """

    def __init__(
        self,
        blocks: Sequence[tuple[str, int, int]],
        data_dim: int,
        latent_dim: int,
        kl_weight: float = 0.3,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.blocks = [(int(s), int(w)) for _, s, w in blocks]
        self.data_dim = data_dim
        self.latent_dim = latent_dim
        self.kl_weight = kl_weight
        self.reduction = reduction
        self._chunks = _partition(self.blocks, data_dim)

    def parts(
        self, output: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample (reconstruction, KL) terms."""
        d, k = self.data_dim, self.latent_dim
        # torch.split, not slicing: a slice's backward writes its gradient into a zero
        # tensor of the whole width, once per block and (under ghost clipping) twice per
        # step; a split's backward concatenates. Same values, same sums, same bits.
        logits, mu, logvar = torch.split(output, [d, k, output.shape[1] - d - k], dim=1)
        recon = torch.zeros(output.shape[0], dtype=output.dtype, device=output.device)
        if self._chunks is None:
            pieces = [logits[:, start: start + width] for start, width in self.blocks]
        else:
            sizes, picks = self._chunks
            chunks = torch.split(logits, sizes, dim=1)
            pieces = [chunks[i] for i in picks]
        for (start, width), block_logits in zip(self.blocks, pieces, strict=True):
            logp = F.log_softmax(block_logits, dim=1)
            recon = recon - (x[:, start: start + width] * logp).sum(dim=1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return recon, kl

    def forward(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        recon, kl = self.parts(output, x)
        loss = recon + self.kl_weight * kl
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.mean()


def _partition(blocks: Sequence[tuple[int, int]], width: int
               ) -> tuple[list[int], list[int]] | None:
    """Split sizes covering ``[0, width)`` and, for each block, the index of its piece;
    None when blocks overlap or leave their order (then each block is sliced)."""
    sizes: list[int] = []
    picks: list[int] = []
    at = 0
    for start, size in blocks:
        if start < at or size <= 0:
            return None
        if start > at:
            sizes.append(start - at)
        picks.append(len(sizes))
        sizes.append(size)
        at = start + size
    if at > width:
        return None
    if at < width:
        sizes.append(width - at)
    return sizes, picks
