"""Input validation: pydantic schemas backed by the same rules as the database constraints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic

from afilo_db.errors import ValidationError

InputModel = TypeVar("InputModel", bound=pydantic.BaseModel)


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "input"


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    message = str(error["msg"])
    return message[0].lower() + message[1:] if message else kind


def problems_of(error: pydantic.ValidationError) -> dict[str, str]:
    """Every offending field (as a path like variants[2].price) and the rule it broke."""
    problems: dict[str, str] = {}
    for item in error.errors():
        path = _field_path(tuple(item["loc"]))
        problems.setdefault(path, _message(item))
    return problems


def validate(model: type[InputModel], data: Mapping[str, Any] | InputModel) -> InputModel:
    """`data` checked against `model`; every problem at once in one afilo ValidationError."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        raise ValidationError(problems_of(error)) from None
