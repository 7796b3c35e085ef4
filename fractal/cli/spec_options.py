"""Command-line options for every field of the animation spec, derived from the model.

``@spec_options`` adds one option per ``AnimationSpec`` field (and one per field of the
c-path variants, ``--path`` choosing the variant) to a Typer command, with the field's
description, allowed range and default as help. The command receives the given values
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

from fractal.spec import AnimationSpec, Complex, ParameterPath

PATH_FIELD = "path"
PATH_KIND = "kind"
# Several values in one option (a list field): "re,im;re,im".
LIST_SEPARATOR = ";"


def _path_variants() -> list[type[BaseModel]]:
    union = get_args(ParameterPath)[0]
    return list(get_args(union))


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
    if annotation is Complex or (_is_list(field.annotation)):
        example = '"re,im"' if annotation is Complex else '"re,im;re,im;..."'
        parts.append(f"as {example}")
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
    """Every option: the spec's fields, the path's variant fields, ``--path`` itself."""
    options: dict[str, tuple[FieldInfo, Any]] = {}
    for name, field in AnimationSpec.model_fields.items():
        if name == PATH_FIELD:
            kinds = [variant.model_fields[PATH_KIND].default for variant in _path_variants()]
            choice = FieldInfo(annotation=str, description=field.description)
            options[PATH_FIELD] = (choice, kinds[0])
            for variant in _path_variants():
                for sub_name, sub_field in variant.model_fields.items():
                    if sub_name != PATH_KIND and sub_name not in options:
                        options[sub_name] = (sub_field, _default_of(sub_field))
            continue
        options[name] = (field, _default_of(field))
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


def spec_fields_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """The spec fields the user gave (None = not given), shaped like the spec's JSON."""
    fields: dict[str, Any] = {}
    path: dict[str, Any] = {}
    path_names = {name for variant in _path_variants() for name in variant.model_fields}
    for name, value in options.items():
        if value is None:
            continue
        field = SPEC_OPTIONS[name][0]
        if _is_list(field.annotation) and isinstance(value, str):
            value = [item for item in value.split(LIST_SEPARATOR) if item.strip()]
        elif isinstance(value, Enum):
            value = value.value
        if name == PATH_FIELD:
            path[PATH_KIND] = value
        elif name in path_names:
            path[name] = value
        else:
            fields[name] = value
    if path:
        fields[PATH_FIELD] = path
    return _with_path_kind(fields)


def merge_spec_fields(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` over ``base`` (a ``--spec`` JSON object); the path's fields merge too."""
    merged = {**base, **given}
    base_path, given_path = base.get(PATH_FIELD), given.get(PATH_FIELD)
    if isinstance(base_path, dict) and isinstance(given_path, dict):
        merged[PATH_FIELD] = {**base_path, **given_path}
    return _with_path_kind(merged)


def _with_path_kind(fields: dict[str, Any]) -> dict[str, Any]:
    """A path given without its kind (``--points`` alone) takes the first kind that has
    every field given."""
    path = fields.get(PATH_FIELD)
    if isinstance(path, dict) and PATH_KIND not in path:
        for variant in _path_variants():
            if set(path) <= set(variant.model_fields):
                kind = variant.model_fields[PATH_KIND].default
                return {**fields, PATH_FIELD: {PATH_KIND: kind, **path}}
    return fields
