"""The README's examples are run and their output compared, so the docs cannot drift.

Each ```console block holds commands (lines starting with "$ ") followed by their
expected output.  Run with JACPROP_UPDATE_README=1 to rewrite the outputs in place.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"```console\n(.*?)```", re.S)


def examples(text):
    """[(command, expected output)] in README order."""
    out = []
    for block in BLOCK.findall(text):
        for part in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, expected = part.partition("\n")
            out.append((command, expected))
    return out


def run(command: str) -> str:
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("FORCE_COLOR", None)
    p = subprocess.run(["bash", "-c", "{ " + command + "\n} 2>&1"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    return p.stdout


def update():
    text = README.read_text()

    def fill(match):
        parts = re.split(r"^\$ ", match[1], flags=re.M)[1:]
        body = "".join(f"$ {cmd}\n{run(cmd)}" for cmd in (p.partition("\n")[0] for p in parts))
        return f"```console\n{body}```"

    README.write_text(BLOCK.sub(fill, text))


if os.environ.get("JACPROP_UPDATE_README"):
    update()


@pytest.mark.parametrize("command,expected", examples(README.read_text()),
                         ids=lambda v: v[:60] if isinstance(v, str) else None)
def test_readme_example(command, expected):
    assert run(command) == expected
