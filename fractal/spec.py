"""The animation spec: one validated model shared by the CLI, the API and the workflows.

This module must stay light (pydantic and the standard library only): Temporal workflow
code imports it inside the sandbox, so it may not pull in numba, av, a database or settings.
"""

from __future__ import annotations

import cmath
import math
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

MAX_FRAMES = 3600
MIN_WIDTH, MAX_WIDTH = 16, 3840
MIN_HEIGHT, MAX_HEIGHT = 16, 2160
MAX_ITER = 10_000
MAX_SUPERSAMPLE = 4
# Below this half-height float64 pixel coordinates stop being distinct on a 4K frame.
MIN_SCALE, MAX_SCALE = 1e-12, 1e6
# |c| beyond this gives an empty (dust) Julia set and overflows nothing useful.
MAX_C_MODULUS = 4.0


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


class FractalKind(StrEnum):
    """Fractals with a kernel module in ``fractal.engine.kernels``."""

    julia = "julia"


class Colormap(StrEnum):
    """How escape counts become colours.

    ``classic`` is the original service's histogram equalisation into a blue gradient;
    the others colour the smooth (continuous) iteration count through a palette.
    """

    classic = "classic"
    fire = "fire"
    ocean = "ocean"
    twilight = "twilight"


class Complex(BaseModel):
    """A finite complex number. Accepts ``{"re": .., "im": ..}``, ``[re, im]`` or ``"re,im"``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    re: float = Field(allow_inf_nan=False)
    im: float = Field(allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, value: Any) -> Any:
        if isinstance(value, complex):
            return {"re": value.real, "im": value.imag}
        if isinstance(value, str):
            parts = value.replace(" ", "").split(",")
            if len(parts) != 2:
                raise ValueError('expected "re,im", for example "-0.8,-0.18"')
            try:
                return {"re": float(parts[0]), "im": float(parts[1])}
            except ValueError as exc:
                raise ValueError(f'expected two numbers "re,im", got {value!r}') from exc
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ValueError("expected [re, im], two numbers")
            return {"re": value[0], "im": value[1]}
        return value

    def __complex__(self) -> complex:
        return complex(self.re, self.im)


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

DEFAULT_C = Complex(re=-0.8, im=-0.18)


class AnimationSpec(BaseModel):
    """Everything needed to render one animation; defaults reproduce the original service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fractal: FractalKind = Field(default=FractalKind.julia, description="which fractal")
    c: Complex = Field(default=DEFAULT_C, description="start value of the parameter c")
    path: ParameterPath = Field(
        default_factory=RotatePath, description="how c moves: rotate, line or keyframes"
    )
    width: Width = Field(default=800, description="frame width in pixels")
    height: Height = Field(default=600, description="frame height in pixels")
    fps: Fps = Field(default=24, description="frames per second")
    frames: FrameCount | None = Field(default=None, description="frame count (default 120)")
    duration: Seconds | None = Field(default=None, description="seconds, instead of frames")
    max_iter: Iterations = Field(
        default=500, description="iterations before a point counts as inside"
    )
    center: Complex = Field(default=Complex(re=0.0, im=0.0), description="centre of the view")
    scale: Scale = Field(default=1.2, description="half the height of the view")
    supersample: Supersample = Field(default=1, description="samples per pixel along each axis")
    colormap: Colormap = Field(default=Colormap.classic, description="colouring")

    @model_validator(mode="after")
    def _resolve_frames(self) -> Self:
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
        return self

    @property
    def frame_count(self) -> int:
        assert self.frames is not None  # resolved by the validator
        return self.frames

    @property
    def pixels(self) -> int:
        return self.width * self.height

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
