"""Golden outputs: every tests/golden/cases/*.txt is re-run and must give the same bytes (tests/golden/README.md).

Each case file records a command; the test runs exactly that command again (the functions of
tests/golden/make_golden.py read it back, run it, and write the result in the same form) and compares the
exit code, stdout, stderr and the digests of the files it wrote.  The cases run as subprocesses, several at
a time (JACPROP_GOLDEN_JOBS, default the CPU count, 2 to 8), started when the first case test runs.
"""

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import bad_files  # noqa: E402
import make_golden as golden  # noqa: E402

CASE_FILES = sorted(golden.CASES_DIR.glob("*.txt"))


def read(path: Path) -> str:
    return path.read_bytes().decode()  # bytes: no newline translation


@pytest.fixture(scope="module")
def runs(request):
    """{case file: Future of its Result} for the case files this session selected, run in a thread pool."""
    selected = [item.callspec.params["path"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_golden_case" and item.module.__name__ == __name__]
    with ThreadPoolExecutor(golden.jobs_default()) as pool:
        yield {path: pool.submit(golden.run, golden.parse(read(path))) for path in selected}


def environment_note() -> str:
    recorded = golden.ENVIRONMENT_FILE.read_text() if golden.ENVIRONMENT_FILE.exists() else ""
    now = golden.environment_text()
    if recorded == now:
        return ""
    return ("\nnote: this environment differs from the one the golden files were recorded in "
            "(tests/golden/ENVIRONMENT.txt), which can change the last digits or table layout "
            "without any code change:\n"
            + golden.diff(recorded, now, "ENVIRONMENT.txt"))


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_golden_case(path, runs):
    recorded = read(path)
    case = golden.parse(recorded)
    assert case.name == path.stem, f"{path.name} records case {case.name!r}"
    now = golden.render(case, runs[path].result())
    if now != recorded:
        pytest.fail(f"{path.name}: `{case.command}` no longer gives the recorded exit code / stdout / stderr / files "
                    f"(- recorded, + now). If the change is intended, run `make golden` and review the diff.\n"
                    + golden.diff(recorded, now, path.name) + environment_note(), pytrace=False)


def test_there_are_golden_cases():
    assert len(CASE_FILES) >= 200, f"only {len(CASE_FILES)} case files in {golden.CASES_DIR}: run `make golden`"


def test_case_files_are_the_generators_cases():
    """The recorded cases are exactly those make_golden.py would record today: none missing, none stale,
    the same commands (a README example edited without `make golden` shows here)."""
    recorded = {p.stem: golden.parse(read(p)) for p in CASE_FILES}
    cases = {c.name: c for c in golden.all_cases()}
    assert sorted(set(cases) - set(recorded)) == [], "cases without a file: run `make golden`"
    assert sorted(set(recorded) - set(cases)) == [], "case files no case makes: run `make golden`"
    changed = [n for n in cases if cases[n] != recorded[n]]
    assert changed == [], "cases whose command changed: run `make golden`"


def test_bad_input_cases_are_those_of_the_matrix():
    """bad_files.py copies the matrix of tests/test_bad_inputs.py; tests/BAD_INPUTS.md renders it."""
    ids = re.findall(r"^\| `([^`]+)` \|", (Path(__file__).parent / "BAD_INPUTS.md").read_text(), re.M)
    assert [c[0] for c in bad_files.CASES] == ids
