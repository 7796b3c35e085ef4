"""The animation spec: one validated model shared by the CLI, the API and the workflows.

This module must stay light (pydantic and the standard library only): Temporal workflow
code imports it inside the sandbox, so it may not pull in numba, av, a database or settings.
"""

from __future__ import annotations

import cmath
import math
import sys
from decimal import Decimal, InvalidOperation, localcontext
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

MAX_FRAMES = 3600
MIN_WIDTH, MAX_WIDTH = 16, 3840
MIN_HEIGHT, MAX_HEIGHT = 16, 2160
# Deep zooms need tens of thousands of iterations (a 1e-100 view of "gaia": 50000).
MAX_ITER = 100_000
MAX_SUPERSAMPLE = 4
# The deepest view rendered in float64: below this half-height float64 pixel coordinates
# stop being distinct on a 4K frame. Only the fractals in DEEP_FRACTALS go deeper.
MIN_FLOAT_SCALE = 1e-12
# Mandelbrot views smaller than this are rendered by perturbation: float64 pixel
# coordinates of a deeper view already jitter by a visible fraction of a pixel.
PERTURBATION_BELOW = 1e-10
# The deepest view of all: perturbation deltas are float64 scaled by a power of two close
# to the view, which keeps them normal numbers down to here.
MIN_SCALE, MAX_SCALE = 1e-300, 1e6
# |c| beyond this gives an empty (dust) Julia set and overflows nothing useful.
MAX_C_MODULUS = 4.0
# A pasted coordinate may be long ("-1.94099893911280077826566...": 200 digits in the
# explorers' examples) but not unbounded: it is parsed on every request.
MAX_COORDINATE_CHARS = 1100
MIN_POWER, MAX_POWER = 3, 8
DEFAULT_POWER = 3
# Rotation of a camera key: several turns are allowed so that keyframes can spin the view.
MAX_KEY_ROTATION = 8 * math.pi


def _in_range(low: float, high: float, *, even: bool = False) -> AfterValidator:
    """A validator whose message states the allowed range (pydantic's names one bound)."""

    def check(value: Any) -> Any:
        if not low <= value <= high or (even and value % 2):
            kind = "an even number" if even else "a number"
            raise ValueError(f"must be {kind} from {low:g} to {high:g}, got {value:g}")
        return value

    return AfterValidator(check)


def _bounded(low: float, high: float, *, even: bool = False) -> Any:
    """Field metadata: the range in the JSON schema plus a validator with a clear message."""
    schema: dict[str, Any] = {"minimum": low, "maximum": high}
    if even:
        schema["multipleOf"] = 2
    return (_in_range(low, high, even=even), Field(json_schema_extra=schema))


Width = Annotated[int, *_bounded(MIN_WIDTH, MAX_WIDTH, even=True)]
Height = Annotated[int, *_bounded(MIN_HEIGHT, MAX_HEIGHT, even=True)]
Fps = Annotated[int, *_bounded(1, 60)]
FrameCount = Annotated[int, *_bounded(1, MAX_FRAMES)]
Seconds = Annotated[float, Field(allow_inf_nan=False), *_bounded(1e-3, MAX_FRAMES)]
Iterations = Annotated[int, *_bounded(1, MAX_ITER)]
Scale = Annotated[float, Field(allow_inf_nan=False), *_bounded(MIN_SCALE, MAX_SCALE)]
Supersample = Annotated[int, *_bounded(1, MAX_SUPERSAMPLE)]
Radians = Annotated[float, Field(allow_inf_nan=False), *_bounded(-math.pi, math.pi)]
KeyRadians = Annotated[
    float, Field(allow_inf_nan=False), *_bounded(-MAX_KEY_ROTATION, MAX_KEY_ROTATION)
]
Power = Annotated[int, *_bounded(MIN_POWER, MAX_POWER)]


_LARGEST = Decimal(sys.float_info.max)


def _to_decimal(value: Any) -> Decimal:
    """A coordinate: a finite number, or a decimal string of any length kept exactly."""
    if isinstance(value, bool):
        raise ValueError("expected a number or a decimal string, got a boolean")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        number = Decimal(repr(value))  # the shortest decimal that is this float
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_COORDINATE_CHARS:
            raise ValueError(
                f"a decimal string of at most {MAX_COORDINATE_CHARS} characters, got {len(text)}"
            )
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"expected a decimal number, got {value[:40]!r}") from None
    else:
        raise ValueError("expected a number or a decimal string")
    # adjusted() is the decimal exponent: compared first, abs() of "1e999999999" would
    # overflow the decimal context itself.
    if not number.is_finite() or number.adjusted() > 308 or abs(number) > _LARGEST:
        raise ValueError("must be a finite number (at most 1.8e308 in magnitude)")
    return number


def _from_decimal(value: Decimal) -> float | str:
    """JSON: a plain number when a float holds the value exactly, else the exact string."""
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)


# A real coordinate kept exactly: "-1.9409989391128007782656638595713128" stays that string
# through JSON, the workflow payload and the database; a float-exact value stays a number.
Coordinate = Annotated[
    Decimal,
    PlainValidator(_to_decimal),
    PlainSerializer(_from_decimal),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number"},
                {
                    "type": "string",
                    "pattern": r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$",
                    "maxLength": MAX_COORDINATE_CHARS,
                },
            ]
        }
    ),
]


class FractalKind(StrEnum):
    """Fractals with a kernel module in ``fractal.engine.kernels``.

    ``julia`` and the ``*_julia`` variants iterate the pixel with the frame's parameter c
    (which moves along ``path``); the others take c from the pixel and start from the
    critical point. ``newton`` is Newton's method for z^3 - 1.
    """

    julia = "julia"
    mandelbrot = "mandelbrot"
    burning_ship = "burning_ship"
    burning_ship_julia = "burning_ship_julia"
    tricorn = "tricorn"
    tricorn_julia = "tricorn_julia"
    multibrot = "multibrot"
    multibrot_julia = "multibrot_julia"
    newton = "newton"


# Fractals whose frames use the parameter c (and so its path).
JULIA_FRACTALS = frozenset(
    {
        FractalKind.julia,
        FractalKind.burning_ship_julia,
        FractalKind.tricorn_julia,
        FractalKind.multibrot_julia,
    }
)
# Fractals with a perturbation kernel: views below MIN_FLOAT_SCALE.
DEEP_FRACTALS = frozenset({FractalKind.mandelbrot})
# Fractals with a ``power``.
POWER_FRACTALS = frozenset({FractalKind.multibrot, FractalKind.multibrot_julia})


class Colormap(StrEnum):
    """How escape counts become colours.

    ``classic`` is the original service's histogram equalisation into a blue gradient;
    the others colour the smooth (continuous) iteration count through a palette.
    """

    classic = "classic"
    fire = "fire"
    ocean = "ocean"
    twilight = "twilight"


# The colouring of a moving camera when none is given: a palette whose colours belong to
# the pixel (no per-frame histogram), so a zoom does not flicker.
MOVING_CAMERA_COLORMAP = Colormap.ocean


class Shading(StrEnum):
    """Extra shading on top of the colours: ``distance`` darkens the boundary by the
    distance estimate (mandelbrot only)."""

    none = "none"
    distance = "distance"


class Complex(BaseModel):
    """A finite complex number. Accepts ``{"re": .., "im": ..}``, ``[re, im]`` or ``"re,im"``;
    each part a number or a decimal string of any length (kept exactly)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    re: Coordinate = Field(description="real part: a number or an exact decimal string")
    im: Coordinate = Field(description="imaginary part: a number or an exact decimal string")

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, value: Any) -> Any:
        if isinstance(value, complex):
            return {"re": value.real, "im": value.imag}
        if isinstance(value, str):
            parts = value.replace(" ", "").split(",")
            if len(parts) != 2:
                raise ValueError('expected "re,im", for example "-0.8,-0.18"')
            return {"re": parts[0], "im": parts[1]}
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ValueError("expected [re, im], two numbers")
            return {"re": value[0], "im": value[1]}
        return value

    def __complex__(self) -> complex:
        return complex(float(self.re), float(self.im))


class RotatePath(BaseModel):
    """c rotates about the origin by ``step`` radians per frame (the original behaviour)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["rotate"] = "rotate"
    step: Radians = Field(default=0.01, description="rotate: radians per frame")


class LinePath(BaseModel):
    """c moves at constant speed from the spec's ``c`` through ``points`` in turn."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["line"] = "line"
    points: list[Complex] = Field(
        min_length=1, max_length=256, description="line/keyframes: c values after the start"
    )


class KeyframesPath(BaseModel):
    """c follows a smooth (Catmull-Rom) curve through the spec's ``c`` and ``points``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["keyframes"] = "keyframes"
    points: list[Complex] = Field(
        min_length=1, max_length=256, description="line/keyframes: c values after the start"
    )


# How c moves from frame to frame.
ParameterPath = Annotated[RotatePath | LinePath | KeyframesPath, Field(discriminator="kind")]


class StillCamera(BaseModel):
    """The view stays at the spec's ``center``, ``scale`` and ``rotation``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["still"] = "still"


class ZoomCamera(BaseModel):
    """An exponential zoom around ``center`` from half-height ``scale`` to ``zoom_to``: every
    frame is the same factor smaller than the one before, so the zoom looks steady."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["zoom"] = "zoom"
    zoom_to: Scale = Field(
        description="zoom: half-height of the last frame (the first has `scale`)",
    )


class CameraKey(BaseModel):
    """A view the camera passes through; a part left out keeps the previous key's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    center: Complex | None = Field(default=None, description="centre of the view")
    scale: Scale | None = Field(default=None, description="half the height of the view")
    rotation: KeyRadians | None = Field(
        default=None, description="turn of the view in radians, counter-clockwise"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, value: Any) -> Any:
        """``"re,im,scale[,rotation]"`` or ``[re, im, scale, rotation?]``."""
        if isinstance(value, str):
            value = value.replace(" ", "").split(",")
        if isinstance(value, (list, tuple)):
            if len(value) not in (3, 4):
                raise ValueError('expected "re,im,scale" or "re,im,scale,rotation"')
            key: dict[str, Any] = {"center": [value[0], value[1]], "scale": value[2]}
            if len(value) == 4:
                key["rotation"] = value[3]
            return key
        return value


class KeyframesCamera(BaseModel):
    """The view follows a smooth curve through the spec's own view and ``keys``, which are
    evenly spaced in time: log-scale and rotation on Catmull-Rom curves, the centre moving
    with the scale so that a zoom between two keys closes in on its target steadily."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["keyframes"] = "keyframes"
    keys: list[CameraKey] = Field(
        min_length=1,
        max_length=64,
        description="keyframes: views after the start, evenly spaced in time",
    )


# How the view moves from frame to frame.
CameraPath = Annotated[StillCamera | ZoomCamera | KeyframesCamera, Field(discriminator="kind")]

DEFAULT_C = Complex(re=-0.8, im=-0.18)


class View(NamedTuple):
    """Where one frame looks: exact centre, half-height and turn (radians)."""

    center_re: Decimal
    center_im: Decimal
    scale: float
    rotation: float

    @property
    def center(self) -> complex:
        return complex(float(self.center_re), float(self.center_im))


class AnimationSpec(BaseModel):
    """Everything needed to render one animation; defaults reproduce the original service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fractal: FractalKind = Field(
        default=FractalKind.julia,
        description="which fractal: julia and the *_julia variants use c; newton is z^3 - 1",
    )
    power: Power | None = Field(
        default=None, description=f"multibrot: the exponent d of z^d + c (default {DEFAULT_POWER})"
    )
    c: Complex = Field(
        default=DEFAULT_C, description="start value of the parameter c (Julia fractals)"
    )
    path: ParameterPath = Field(
        default_factory=RotatePath, description="how c moves: rotate, line or keyframes"
    )
    camera: CameraPath = Field(
        default_factory=StillCamera, description="how the view moves: still, zoom or keyframes"
    )
    width: Width = Field(default=800, description="frame width in pixels")
    height: Height = Field(default=600, description="frame height in pixels")
    fps: Fps = Field(default=24, description="frames per second")
    frames: FrameCount | None = Field(default=None, description="frame count (default 120)")
    duration: Seconds | None = Field(default=None, description="seconds, instead of frames")
    max_iter: Iterations = Field(
        default=500, description="iterations before a point counts as inside"
    )
    center: Complex = Field(
        default=Complex(re=0.0, im=0.0),
        description="centre of the view (of the first frame with a moving camera)",
    )
    scale: Scale = Field(
        default=1.2,
        description=f"half the height of the view; below {MIN_FLOAT_SCALE:g} mandelbrot only",
    )
    rotation: Radians = Field(
        default=0.0, description="turn of the view in radians, counter-clockwise"
    )
    supersample: Supersample = Field(default=1, description="samples per pixel along each axis")
    colormap: Colormap | None = Field(
        default=None,
        description=f"colouring (default classic; {MOVING_CAMERA_COLORMAP.value} when the "
        "camera moves, which does not flicker)",
    )
    shading: Shading = Field(
        default=Shading.none, description="distance: boundary shading (mandelbrot only)"
    )

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        frames = self.frames
        if self.duration is not None:
            from_duration = round(self.duration * self.fps)
            if frames is not None and frames != from_duration:
                raise ValueError(
                    f"frames ({frames}) and duration ({self.duration} s at {self.fps} fps "
                    f"= {from_duration} frames) disagree; give one of them"
                )
            if not 1 <= from_duration <= MAX_FRAMES:
                raise ValueError(
                    f"duration: {self.duration} s at {self.fps} fps is {from_duration} frames; "
                    f"allowed 1..{MAX_FRAMES}"
                )
            frames = from_duration
        if frames is None:
            frames = 120
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "duration", frames / self.fps)
        for point in self._c_keypoints():
            # hypot, not abs(complex): no OverflowError for components near the float limit.
            if math.hypot(point.re, point.im) > MAX_C_MODULUS:
                raise ValueError(f"c and path points must have |c| <= {MAX_C_MODULUS}")
        if self.power is not None and self.fractal not in POWER_FRACTALS:
            raise ValueError(
                f"power: only multibrot and multibrot_julia have one, not {self.fractal.value}"
            )
        deepest = min(key.scale for key in self._camera_keys())
        if deepest < MIN_FLOAT_SCALE and self.fractal not in DEEP_FRACTALS:
            raise ValueError(
                f"scale: the view goes down to {deepest:g}; {self.fractal.value} is rendered "
                f"in float64 down to {MIN_FLOAT_SCALE:g} (only mandelbrot goes deeper)"
            )
        if self.shading is Shading.distance and self.fractal is not FractalKind.mandelbrot:
            raise ValueError(f"shading: distance is for mandelbrot only, not {self.fractal.value}")
        if self.colormap is None:
            moving = not isinstance(self.camera, StillCamera)
            object.__setattr__(
                self, "colormap", MOVING_CAMERA_COLORMAP if moving else Colormap.classic
            )
        return self

    @property
    def frame_count(self) -> int:
        assert self.frames is not None  # resolved by the validator
        return self.frames

    @property
    def colouring(self) -> Colormap:
        assert self.colormap is not None  # resolved by the validator
        return self.colormap

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def degree(self) -> int:
        """The exponent of z in the iteration (2 but for multibrot)."""
        if self.fractal in POWER_FRACTALS:
            return self.power or DEFAULT_POWER
        return 2

    @property
    def deep(self) -> bool:
        """Whether some frame is below float64's reach (rendered by perturbation)."""
        return self.scale_range()[0] < MIN_FLOAT_SCALE

    def scale_range(self) -> tuple[float, float]:
        """The smallest and largest half-height of any frame."""
        scales = [key.scale for key in self._camera_keys()]
        return min(scales), max(scales)

    def _c_keypoints(self) -> list[Complex]:
        points = [self.c]
        if isinstance(self.path, (LinePath, KeyframesPath)):
            points += self.path.points
        return points

    def c_at(self, frame: int) -> complex:
        """The parameter c of ``frame`` (0-based)."""
        start = complex(self.c)
        if isinstance(self.path, RotatePath):
            return start * cmath.exp(1j * self.path.step * frame)
        points = [complex(p) for p in self._c_keypoints()]
        # Position along the key points: frame 0 at the first, the last frame at the last.
        t = frame / max(self.frame_count - 1, 1) * (len(points) - 1)
        index = min(int(t), len(points) - 2)
        u = t - index
        if isinstance(self.path, LinePath):
            return points[index] + (points[index + 1] - points[index]) * u
        return _catmull_rom(points, index, u)

    def _camera_keys(self) -> list[View]:
        """The views the camera passes through: the spec's own, then each key's."""
        keys = [View(self.center.re, self.center.im, self.scale, self.rotation)]
        if isinstance(self.camera, ZoomCamera):
            keys.append(keys[0]._replace(scale=self.camera.zoom_to))
        elif isinstance(self.camera, KeyframesCamera):
            for key in self.camera.keys:
                last = keys[-1]
                keys.append(
                    View(
                        key.center.re if key.center else last.center_re,
                        key.center.im if key.center else last.center_im,
                        key.scale if key.scale is not None else last.scale,
                        key.rotation if key.rotation is not None else last.rotation,
                    )
                )
        return keys

    def view_at(self, frame: int) -> View:
        """The view of ``frame`` (0-based), its centre exact to well below a pixel."""
        keys = self._camera_keys()
        if len(keys) == 1:
            return keys[0]
        t = frame / max(self.frame_count - 1, 1) * (len(keys) - 1)
        index = min(int(t), len(keys) - 2)
        u = t - index
        first, second = keys[index], keys[index + 1]
        logs: list[complex] = [complex(math.log(key.scale)) for key in keys]
        if isinstance(self.camera, ZoomCamera):
            log_scale = (logs[0] + (logs[1] - logs[0]) * u).real
        else:
            # Clamped between the two keys, so the curve never zooms past either of them.
            low, high = sorted((logs[index].real, logs[index + 1].real))
            log_scale = min(max(_catmull_rom(logs, index, u).real, low), high)
        # The keys' own scales exactly at the keys (exp(log(x)) is not always x).
        scale = first.scale if u == 0 else second.scale if u == 1 else math.exp(log_scale)
        rotation = _catmull_rom([complex(key.rotation) for key in keys], index, u).real
        if first.center_re == second.center_re and first.center_im == second.center_im:
            return View(first.center_re, first.center_im, scale, rotation)
        # The centre moves in proportion to the change of scale: a zoom about the point
        # that maps the first key's view onto the second's (a plain pan when the scales
        # are equal), so the target stays in place on the screen.
        span = first.scale - second.scale
        if abs(span) > 1e-9 * max(first.scale, second.scale):
            weight = (first.scale - scale) / span
        else:
            weight = u * u * (3.0 - 2.0 * u)  # ease in and out
        digits = max(30, int(-math.log10(min(first.scale, second.scale))) + 30)
        with localcontext() as context:
            context.prec = digits
            w = Decimal(weight)
            re = first.center_re + (second.center_re - first.center_re) * w
            im = first.center_im + (second.center_im - first.center_im) * w
        return View(re, im, scale, rotation)


def precision_bits(view: View, height: int) -> int:
    """Bits of mantissa that resolve a pixel of ``view`` around its centre, with margin."""
    magnitude = max(abs(float(view.center_re)), abs(float(view.center_im)), 2.0)
    pixel = view.scale / max(height, 1)
    return int(math.log2(magnitude / pixel)) + 64


def _catmull_rom(points: list[complex], index: int, u: float) -> complex:
    """Uniform Catmull-Rom between points[index] and points[index + 1], ends clamped."""
    p0 = points[max(index - 1, 0)]
    p1 = points[index]
    p2 = points[index + 1]
    p3 = points[min(index + 2, len(points) - 1)]
    u2, u3 = u * u, u * u * u
    return 0.5 * (
        2 * p1
        + (-p0 + p2) * u
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u2
        + (-p0 + 3 * p1 - 3 * p2 + p3) * u3
    )


def format_validation_error(error: Exception) -> str:
    """One line per problem, ``field: message``, for the CLI."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return str(error)
    lines = []
    for item in errors():
        field = ".".join(str(part) for part in item.get("loc", ())) or "spec"
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{field}: {message}")
    return "\n".join(lines)
