"""Documentation generated from the code: the settings table of docs/configuration.md.

    python -m tests.docs_sync     # rewrite the generated parts (make docs)

The test in test_docs.py fails while a generated part is out of date.
"""

from __future__ import annotations

import re
from pathlib import Path

from fractal.settings import settings_reference

ROOT = Path(__file__).resolve().parent.parent
GENERATED = {
    ROOT / "docs" / "configuration.md": ("settings", settings_reference),
}


def expected(path: Path) -> str:
    """The file with its generated part brought up to date."""
    name, generate = GENERATED[path]
    text = path.read_text()
    begin, end = f"<!-- generated:{name} -->\n", f"<!-- end:{name} -->"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{path}: no {begin.strip()} ... {end} block")
    return pattern.sub(lambda _: begin + generate() + end, text)


def main() -> None:
    for path in GENERATED:
        path.write_text(expected(path))
        print(f"updated {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
