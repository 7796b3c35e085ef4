"""The anchor of issue 12: Fractalshades 1.2.1 rendering the same views, warm.

Not part of the project: ``bench.deep_zoom`` runs this file with the interpreter of a
separate virtual environment where Fractalshades is installed (``make anchor-venv``,
``.bench-venv``), so the yardstick never becomes a dependency. It drives Fractalshades
through its public API only: a model, ``zoom``, ``calc_std_div``, a ``Postproc_batch``
with the continuous iteration count, one colour layer and ``Fractal_plotter.plot()``,
which computes the frame and writes its PNG.

Reads a JSON list of views on stdin, each ``{"name", "x", "y", "dx", "nx", "ny",
"max_iter", "deep"}`` (``dx`` is the image WIDTH, Fractalshades' convention, as a decimal
string), and prints one JSON object: ``{name: {"seconds": best, "runs": [...]}}``.

Warm, as the issue measured it: each view first runs once untimed (Fractalshades compiles
its Numba kernels per model instance, and computes and stores the reference orbit), then
``repeats`` timed runs on the same instance, each a new calculation name so that no pixel
result is reused.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from typing import Any

# Divergence radius: the project's smooth colourings escape at |z| > 256 too.
BAILOUT = 256.0


def render_once(model: Any, view: dict[str, Any], calc_name: str) -> None:
    import fractalshades as fs
    import fractalshades.colors as fscolors
    from fractalshades.colors.layers import Color_layer
    from fractalshades.postproc import Continuous_iter_pp, Postproc_batch

    if view["deep"]:
        model.calc_std_div(
            calc_name=calc_name,
            subset=None,
            max_iter=view["max_iter"],
            M_divergence=BAILOUT,
            epsilon_stationnary=1e-3,
            calc_dzndc=False,  # no distance estimate: the project's frame computes none
        )
    else:
        model.calc_std_div(
            calc_name=calc_name,
            subset=None,
            max_iter=view["max_iter"],
            M_divergence=BAILOUT,
            epsilon_stationnary=1e-3,
        )
    batch = Postproc_batch(model, calc_name)
    batch.add_postproc("smooth", Continuous_iter_pp())
    plotter = fs.Fractal_plotter(batch)
    plotter.add_layer(Color_layer("smooth", func=None, colormap=fscolors.cmap_register["classic"]))
    plotter.plot()


def time_view(view: dict[str, Any], repeats: int) -> dict[str, Any]:
    import fractalshades.models as fsm

    with tempfile.TemporaryDirectory(prefix="fractalshades-") as directory:
        ratio = view["nx"] / view["ny"]
        if view["deep"]:
            model = fsm.Perturbation_mandelbrot(directory)
            digits = view["precision_digits"]
            model.zoom(
                precision=digits,
                x=view["x"],
                y=view["y"],
                dx=view["dx"],
                nx=view["nx"],
                xy_ratio=ratio,
                theta_deg=0.0,
            )
        else:
            model = fsm.Mandelbrot(directory)
            model.zoom(
                x=float(view["x"]),
                y=float(view["y"]),
                dx=float(view["dx"]),
                nx=view["nx"],
                xy_ratio=ratio,
                theta_deg=0.0,
            )
        render_once(model, view, "warmup")
        runs = []
        for run in range(repeats):
            started = time.perf_counter()
            render_once(model, view, f"run{run}")
            runs.append(round(time.perf_counter() - started, 3))
    return {"seconds": min(runs), "runs": runs}


def main() -> None:
    import fractalshades as fs

    fs.settings.verbosity = 0  # warnings only: stdout carries the JSON answer
    views = json.load(sys.stdin)
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    results = {view["name"]: time_view(view, repeats) for view in views}
    print("ANCHOR " + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
