"""Escape-time kernels behind one small interface, one module per fractal.

A kernel fills a frame's escape counts (and, for smooth colourings, |z|² after escape)
for a grid of pixel centres. Adding a fractal means adding a module with a class that
satisfies ``Kernel``, its name in ``fractal.spec.FractalKind`` and a line in
``kernel_for``. Deep Mandelbrot views use ``PerturbationKernel`` (chosen per frame by the
frame renderer).
"""

from __future__ import annotations

from fractal.spec import FractalKind

from .base import EscapeBuffers, Kernel, PixelGrid, StatelessKernel, Symmetry
from .burning_ship import BurningShipKernel
from .julia import JuliaKernel
from .mandelbrot import MandelbrotKernel
from .multibrot import MultibrotKernel
from .newton import NewtonKernel
from .perturbation import PerturbationKernel
from .tricorn import TricornKernel


def kernel_for(kind: FractalKind, power: int = 2) -> Kernel:
    """The float64 kernel of a fractal (views down to ``fractal.spec.MIN_FLOAT_SCALE``)."""
    kernels: dict[FractalKind, Kernel] = {
        FractalKind.julia: JuliaKernel(),
        FractalKind.mandelbrot: MandelbrotKernel(),
        FractalKind.burning_ship: BurningShipKernel(),
        FractalKind.burning_ship_julia: BurningShipKernel(julia=True),
        FractalKind.tricorn: TricornKernel(),
        FractalKind.tricorn_julia: TricornKernel(julia=True),
        FractalKind.multibrot: MultibrotKernel(power),
        FractalKind.multibrot_julia: MultibrotKernel(power, julia=True),
        FractalKind.newton: NewtonKernel(),
    }
    return kernels[kind]


__all__ = [
    "BurningShipKernel",
    "EscapeBuffers",
    "JuliaKernel",
    "Kernel",
    "MandelbrotKernel",
    "MultibrotKernel",
    "NewtonKernel",
    "PerturbationKernel",
    "PixelGrid",
    "StatelessKernel",
    "Symmetry",
    "TricornKernel",
    "kernel_for",
]
