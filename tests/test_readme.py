"""The README keeps exactly two set-up commands, and CI runs the test command verbatim."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.S)


def test_readme_has_two_commands_and_ci_runs_the_test_one() -> None:
    main_job, tests = readme_commands()
    assert "labd demo" in main_job
    assert "pytest" in tests and "ruff" in tests and "mypy labd drivers" in tests
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci


def test_readme_documents_every_application_error_code() -> None:
    from labd.rpc import ErrorCode

    text = (ROOT / "README.md").read_text()
    documented = {int(code) for code in re.findall(r"^\| (-320\d\d) \|", text, re.M)}
    application = {int(c) for c in ErrorCode if -32099 <= c <= -32000}
    assert documented == application
