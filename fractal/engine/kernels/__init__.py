"""Escape-time kernels behind one small interface, one module per fractal.

A kernel fills a frame's escape counts (and, for smooth colourings, |z|² after escape)
for a grid of pixel centres. Adding a fractal means adding a module with a class that
satisfies ``Kernel`` and registering it in ``KERNELS``.
"""

from __future__ import annotations

from fractal.spec import FractalKind

from .base import EscapeBuffers, Kernel, PixelGrid
from .julia import JuliaKernel
from .mandelbrot import MandelbrotKernel

# The animation kernels by spec fractal. MandelbrotKernel also draws the map of the
# c-plane (the Julia sets' parameter space).
KERNELS: dict[FractalKind, Kernel] = {FractalKind.julia: JuliaKernel()}


def kernel_for(kind: FractalKind) -> Kernel:
    return KERNELS[kind]


__all__ = [
    "KERNELS",
    "EscapeBuffers",
    "JuliaKernel",
    "Kernel",
    "MandelbrotKernel",
    "PixelGrid",
    "kernel_for",
]
