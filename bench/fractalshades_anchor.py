"""The anchor of issue 12: Fractalshades 1.2.1 rendering the same views, warm.

Not part of the project: ``bench.deep_zoom`` runs this file with the interpreter of a
separate virtual environment where Fractalshades is installed (``make anchor-venv``,
``.bench-venv``), so the yardstick never becomes a dependency. It drives Fractalshades
through its public API only: a model, ``zoom``, ``calc_std_div``, a ``Postproc_batch``
with the continuous iteration count, one colour layer and ``Fractal_plotter.plot()``,
which computes the frame and writes its PNG.

A small line protocol on stdin/stdout, so that the benchmark can alternate its own frames
with these ones under the same machine load: ``{"warm": view}`` builds the view's model
and renders it once untimed (Fractalshades compiles its Numba kernels per model instance,
and computes and stores the reference orbit), answering ``{"warm": name}``;
``{"time": name}`` renders it again under a new calculation name (no pixel result is
reused) and answers ``{"seconds": ...}``. A view is ``{"name", "x", "y", "dx", "nx",
"ny", "max_iter", "deep", "precision_digits"}``, ``dx`` being the image WIDTH
(Fractalshades' convention) as a decimal string. Answers are single lines starting with
``ANCHOR `` (Fractalshades prints its own messages too).
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


def build(view: dict[str, Any], directory: str) -> Any:
    import fractalshades.models as fsm

    ratio = view["nx"] / view["ny"]
    if view["deep"]:
        model = fsm.Perturbation_mandelbrot(directory)
        model.zoom(
            precision=view["precision_digits"],
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
    return model


def answer(message: dict[str, Any]) -> None:
    print("ANCHOR " + json.dumps(message), flush=True)


def main() -> None:
    import fractalshades as fs

    fs.settings.verbosity = 0  # warnings only
    models: dict[str, tuple[Any, dict[str, Any]]] = {}
    runs = 0
    with tempfile.TemporaryDirectory(prefix="fractalshades-") as scratch:
        for line in sys.stdin:
            command = json.loads(line)
            if "warm" in command:
                view = command["warm"]
                model = build(view, f"{scratch}/{len(models)}")
                render_once(model, view, "warmup")
                models[view["name"]] = (model, view)
                answer({"warm": view["name"]})
            elif "time" in command:
                model, view = models[command["time"]]
                runs += 1
                started = time.perf_counter()
                render_once(model, view, f"run{runs}")
                answer({"seconds": time.perf_counter() - started})


if __name__ == "__main__":
    main()
