"""docs/configuration.md is generated from the configuration models and must match them."""

from pathlib import Path

from detopt.optimize.config_reference import reference_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_configuration_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/configuration.md is out of date: run .venv/bin/python docs/scripts/config_reference.py"
    )


def test_the_reference_lists_every_key_of_a_user_detector() -> None:
    text = reference_markdown()
    for key in ("`python_path`", "`materials`", "`loss`", "`simulation.command`", "`simulation.columns`",
                "`penalties.linear`", "`penalties.custom`", "`quantity`", "`timeout_s`"):
        assert key in text, key
