"""Escape-time kernels, one module per fractal.

A kernel module exposes ``render_counts(c, max_iter, bailout2, xs, ys, counts, final_r2,
want_r2, center)``; adding a fractal means adding a module and a ``FractalKind`` member.
"""

from __future__ import annotations

from types import ModuleType

from fractal.spec import FractalKind

from . import julia

KERNELS: dict[FractalKind, ModuleType] = {FractalKind.julia: julia}


def kernel_for(kind: FractalKind) -> ModuleType:
    return KERNELS[kind]
