"""The SIREN network itself: sine-activated MLP with SIREN initialisation, optional Fourier features.

Kept apart from the training code so the architecture (the paper's, or a smaller/better-encoded one)
can be tested and timed on its own.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SineLayer", "SirenNet", "pixel_coordinates"]


class SineLayer(nn.Module):
    """``sin(omega * (W x + b))`` with Sitzmann et al.'s initialisation (keeps activations unit-scale)."""

    def __init__(self, in_features: int, out_features: int, *, omega: float, first: bool,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.omega = float(omega)
        self.linear = nn.Linear(in_features, out_features)
        bound = 1.0 / in_features if first else math.sqrt(6.0 / in_features) / self.omega
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound, generator=generator)
            self.linear.bias.uniform_(-1.0 / math.sqrt(in_features), 1.0 / math.sqrt(in_features),
                                      generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega * self.linear(x))


class SirenNet(nn.Module):
    """Coordinates (M, 2) in [-1, 1] -> values (M, outputs).

    ``depth`` sine layers of ``width`` (the first with ``omega_0``, the rest ``omega_hidden``), then a
    linear output layer. ``fourier_features > 0`` first maps z to ``[sin(2 pi B z), cos(2 pi B z)]`` with
    ``B ~ N(0, fourier_scale^2)`` (Tancik et al.), which lets a narrower network fit fine detail.
    """

    def __init__(self, outputs: int, *, width: int, depth: int, omega_0: float, omega_hidden: float,
                 fourier_features: int = 0, fourier_scale: float = 10.0, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        in_features = 2
        if fourier_features > 0:
            self.register_buffer("fourier_b", torch.randn(2, fourier_features, generator=gen) * fourier_scale)
            in_features = 2 * fourier_features
        else:
            self.fourier_b = None
        layers: list[nn.Module] = [SineLayer(in_features, width, omega=omega_0, first=True, generator=gen)]
        layers += [SineLayer(width, width, omega=omega_hidden, first=False, generator=gen) for _ in range(depth - 1)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, outputs)
        bound = math.sqrt(6.0 / width) / max(float(omega_hidden), 1e-6)
        with torch.no_grad():
            self.head.weight.uniform_(-bound, bound, generator=gen)
            self.head.bias.zero_()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.fourier_b is not None:
            proj = 2.0 * math.pi * (z @ self.fourier_b)
            z = torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)
        return self.head(self.body(z))


def pixel_coordinates(shape: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """Pixel centres of an (H, W) image as (H*W, 2) coordinates in [-1, 1]^2, row-major like the maps."""
    h, w = shape
    yy, xx = torch.meshgrid(torch.linspace(-1.0, 1.0, h, device=device), torch.linspace(-1.0, 1.0, w, device=device),
                            indexing="ij")
    return torch.stack([yy.reshape(-1), xx.reshape(-1)], dim=1)
