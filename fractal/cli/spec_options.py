"""Command-line options for every field of the animation spec, derived from the model.

``@spec_options`` adds one option per ``AnimationSpec`` field to a Typer command, with the
field's description, allowed range and default as help. A field that is a union of
variants (the c ``path``, the ``camera``) becomes a choice of its ``kind`` (``--path``,
``--camera``) plus one option per field of its variants (``--points``, ``--zoom-to``); a
variant's fields given without its kind choose the first variant that has them all, so
``--zoom-to 1e-30`` alone is a zoom. The command receives the given values
as ``spec_fields``, a dict of the spec's shape. A new spec field appears in every
command that takes a spec without touching the CLI.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from fractal.spec import AnimationSpec, CameraKey, Complex

KIND = "kind"
# Several values in one option (a list field): "re,im;re,im".
LIST_SEPARATOR = ";"


def _variants(field: FieldInfo) -> list[type[BaseModel]]:
    """The variants of a discriminated union field (none for other fields)."""
    if field.discriminator != KIND:
        return []
    return [arg for arg in get_args(field.annotation) if isinstance(arg, type)]


# Union fields and their variants: {"path": [RotatePath, ...], "camera": [StillCamera, ...]}.
UNIONS = {
    name: variants
    for name, field in AnimationSpec.model_fields.items()
    if (variants := _variants(field))
}


def _unwrap_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else as it is."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        arguments = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(arguments) == 1:
            return arguments[0]
    return annotation


def _cli_type(annotation: Any) -> type:
    """The type the option parses: numbers and choices as themselves, the rest as text that
    the spec model validates (complex numbers "re,im", lists "a;b")."""
    annotation = _unwrap_optional(annotation)
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, (bool, int, float, Enum)):
        return annotation
    return str


def _is_list(annotation: Any) -> bool:
    return get_origin(_unwrap_optional(annotation)) is list


def _help(field: FieldInfo, default: Any) -> str:
    parts = [field.description or ""]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "minimum" in extra and "maximum" in extra:
        even = "even, " if extra.get("multipleOf") == 2 else ""
        parts.append(f"({even}{extra['minimum']:g}..{extra['maximum']:g})")
    annotation = _unwrap_optional(field.annotation)
    if annotation is Complex:
        parts.append('as "re,im" (exact decimals of any length)')
    elif _is_list(field.annotation):
        item = get_args(annotation)[0]
        one = '"re,im,scale[,rotation]' if item is CameraKey else '"re,im'
        parts.append(f'as {one};..."')
    # Not "[default: x]": the help is rich markup, square brackets would vanish.
    if isinstance(default, Complex):
        parts.append(f"(default {default.re:g},{default.im:g})")
    elif default is not None and not isinstance(default, BaseModel):
        shown = default.value if isinstance(default, Enum) else default
        parts.append(f"(default {shown})")
    return " ".join(part for part in parts if part)


def _option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _fields() -> dict[str, tuple[FieldInfo, Any]]:
    """Every option: the spec's fields, each union's kind and its variants' fields."""
    options: dict[str, tuple[FieldInfo, Any]] = {}
    for name, field in AnimationSpec.model_fields.items():
        if name not in UNIONS:
            options[name] = (field, _default_of(field))
            continue
        kinds = [variant.model_fields[KIND].default for variant in UNIONS[name]]
        choice = FieldInfo(annotation=str, description=field.description)
        options[name] = (choice, kinds[0])
        for variant in UNIONS[name]:
            for sub_name, sub_field in variant.model_fields.items():
                if sub_name == KIND or sub_name in options:
                    continue
                if sub_name in AnimationSpec.model_fields:
                    raise TypeError(f"{name} variant field {sub_name!r} shadows a spec field")
                options[sub_name] = (sub_field, _default_of(sub_field))
    return options


def _default_of(field: FieldInfo) -> Any:
    """The default to show in help; None for required fields and computed defaults."""
    if field.is_required() or field.default_factory is not None:
        return None
    return field.get_default()


SPEC_OPTIONS = _fields()


def spec_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``command`` an option per spec field; it gets them as ``spec_fields``."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "spec_fields"]
    added = []
    for name, (field, default) in SPEC_OPTIONS.items():
        annotation = _cli_type(field.annotation)
        option = typer.Option(_option_name(name), help=_help(field, default), show_default=False)
        added.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[annotation | None, option],
            )
        )

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in SPEC_OPTIONS}
        return command(spec_fields=spec_fields_from_options(given), **kwargs)

    parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added
    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


def _union_of(option: str) -> str | None:
    """The union field an option belongs to (its kind or a variant's field), if any."""
    for union, variants in UNIONS.items():
        if option == union or any(option in variant.model_fields for variant in variants):
            return union
    return None


def spec_fields_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """The spec fields the user gave (None = not given), shaped like the spec's JSON."""
    fields: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        field = SPEC_OPTIONS[name][0]
        if _is_list(field.annotation) and isinstance(value, str):
            value = [item for item in value.split(LIST_SEPARATOR) if item.strip()]
        elif isinstance(value, Enum):
            value = value.value
        union = _union_of(name)
        if union is None:
            fields[name] = value
        else:
            fields.setdefault(union, {})[KIND if name == union else name] = value
    return _with_kinds(fields)


def merge_spec_fields(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` over ``base`` (a ``--spec`` JSON object); union fields merge too."""
    merged = {**base, **given}
    for union in UNIONS:
        base_part, given_part = base.get(union), given.get(union)
        if isinstance(base_part, dict) and isinstance(given_part, dict):
            merged[union] = {**base_part, **given_part}
    return _with_kinds(merged)


def _with_kinds(fields: dict[str, Any]) -> dict[str, Any]:
    """A union given without its kind (``--points`` or ``--zoom-to`` alone) takes the first
    kind that has every field given."""
    fields = dict(fields)
    for union, variants in UNIONS.items():
        part = fields.get(union)
        if isinstance(part, dict) and KIND not in part:
            for variant in variants:
                if set(part) <= set(variant.model_fields):
                    fields[union] = {KIND: variant.model_fields[KIND].default, **part}
                    break
    return fields
