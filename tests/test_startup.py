"""Start-up: `--help`, `--version` and refusals of bad input answer without loading the heavy
libraries (torch, transformers, diffusers, ray): they are imported when a conversion needs them.
Run in a fresh interpreter each, as a user's command runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "diffusers", "ray")
PROBE = """
import json, sys
from sbsconvert.cli import main
try:
    code = main({args!r}) or 0
except SystemExit as stop:
    code = stop.code
print(json.dumps({{"code": code, "loaded": sorted(name for name in {heavy!r} if name in sys.modules)}}), file=sys.stderr)
"""


def start(*args: str) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(args=list(args), heavy=HEAVY)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    *said, last = done.stderr.strip().splitlines()
    return json.loads(last), done.stdout + "\n".join(said)


@pytest.mark.parametrize("args, code, words", [
    (("--version",), 0, "sbsconvert, version"),
    (("--help",), 0, "Batch and scale-out"),
    (("missing.jpg",), 1, "error: missing.jpg: no such file or folder"),
    (("samples/chelsea.jpg", "--divergence", "99"), 2, "error: Invalid value for '--divergence'"),
    (("samples/chelsea.jpg", "--start", "5"), 1, "only apply to videos"),
])
def test_answers_without_loading_heavy_libraries(args, code, words):
    result, output = start(*args)
    assert result == {"code": code, "loaded": []}, output
    assert words in output


def test_help_is_grouped_into_sections_of_one_line_options():
    result, output = start("--help")
    sections = ("Output", "Stereo", "Depth", "Diffusion", "Video", "Apple spatial", "Batch and scale-out")
    assert all(f"─ {section} ─" in output for section in sections), output
    assert output.index("─ Output ─") < output.index("─ Batch and scale-out ─")
    assert "docs/options.md" in output and "Other commands (eval, info" in output


def test_every_option_is_in_a_help_section_and_in_the_options_page():
    from sbsconvert.cli import main

    command = main.commands["convert"]
    options = [parameter.opts[-1] for parameter in command.params if parameter.name != "inputs"]  # its long name
    in_panels = {option for panel in command.panels for option in panel.options}
    page = (REPO / "docs" / "options.md").read_text()
    assert [option for option in options if option not in in_panels] == []
    assert [option for option in options if f"`{option}`" not in page] == []
