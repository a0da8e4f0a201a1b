"""`set_dependencies`: kernel requirements written into `pyproject.toml` text, everything else kept byte for byte."""

from __future__ import annotations

from kernel_lock.core.requirement import Dependency
from kernel_lock.project.edit import set_dependencies

PROJECT = '[project]\nname = "p"\n'
EDITED = """\
[project]
name = "p"

[tool.kernels.dependencies]
# fast ones
"org/a" = 1  # pinned
"org/k" = { version = 1, require-signature = true }
"org/z" = {revision = "main"}

[tool.other]
x = 1
"""


def test_a_first_dependency_creates_only_the_dependencies_table() -> None:
    assert set_dependencies(PROJECT, {"org/k": Dependency(version=1)}) == (
        PROJECT + '\n[tool.kernels.dependencies]\n"org/k" = 1\n'
    )


def test_a_dependency_goes_next_to_the_project_settings() -> None:
    text = PROJECT + "\n[tool.kernels]\nrequire-signature = true\n"
    assert set_dependencies(text, {"org/k": Dependency(version=2)}) == (
        text + '\n[tool.kernels.dependencies]\n"org/k" = 2\n'
    )


def test_a_new_entry_is_appended_after_the_others_in_the_style_of_the_last() -> None:
    assert set_dependencies(
        EDITED, {"org/new": Dependency(version=3, trust_remote_code=True)}
    ) == EDITED.replace(
        '"org/z" = {revision = "main"}\n',
        '"org/z" = {revision = "main"}\n"org/new" = {version = 3, trust-remote-code = true}\n',
    )


def test_an_entry_is_replaced_in_place_keeping_its_comment() -> None:
    assert set_dependencies(EDITED, {"org/a": Dependency(revision="main")}) == EDITED.replace(
        '"org/a" = 1  # pinned', '"org/a" = {revision = "main"}  # pinned'
    )


def test_keys_that_are_not_the_requirement_are_kept_with_the_entrys_spacing() -> None:
    assert set_dependencies(EDITED, {"org/k": Dependency(version=2)}) == EDITED.replace(
        '"org/k" = { version = 1, require-signature = true }',
        '"org/k" = { version = 2, require-signature = true }',
    )
    assert set_dependencies(
        EDITED, {"org/k": Dependency(revision="v1.0.0", trust_remote_code=True)}
    ) == EDITED.replace(
        '"org/k" = { version = 1, require-signature = true }',
        '"org/k" = { revision = "v1.0.0", trust-remote-code = true, require-signature = true }',
    )


def test_a_plain_version_is_written_as_a_number_dropping_an_opt_in_no_longer_asked_for() -> None:
    text = '[tool.kernels.dependencies]\n"org/a" = {version = 1, trust-remote-code = true}\n'
    assert (
        set_dependencies(text, {"org/a": Dependency(version=1)})
        == '[tool.kernels.dependencies]\n"org/a" = 1\n'
    )


def test_setting_what_is_there_changes_nothing() -> None:
    assert set_dependencies(EDITED, {"org/a": Dependency(version=1)}) == EDITED
    assert set_dependencies(EDITED, {"org/z": Dependency(revision="main")}) == EDITED
