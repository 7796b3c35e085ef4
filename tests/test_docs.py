"""Documentation that is generated from the code stays in step with it."""

from __future__ import annotations

from fractal.settings import Settings
from tests.docs_sync import GENERATED, expected


def test_generated_documentation_is_up_to_date() -> None:
    for path in GENERATED:
        assert path.read_text() == expected(path), f"{path.name} is stale: run `make docs`"


def test_every_setting_is_described() -> None:
    undocumented = [name for name, field in Settings.model_fields.items() if not field.description]
    assert undocumented == []
