"""Regenerate docs/configuration.md from the run configuration's pydantic models.

    .venv/bin/python docs/scripts/config_reference.py
"""

from pathlib import Path

from detopt.atomic import write_text_atomic
from detopt.optimize.config_reference import reference_markdown

if __name__ == "__main__":
    path = Path(__file__).resolve().parents[1] / "configuration.md"
    write_text_atomic(path, reference_markdown())
    print(f"wrote {path}")
