"""The package's layers, checked from the source: what each layer may import.

Domain data (`limits`, `budgets`, the contract) sits below configuration and I/O; the
language registry is data that both the sandbox and the image builder read; aiodocker
stays behind `streamworker.sandbox` (and the image builder's own Docker I/O). Checked
on every import statement, those under `TYPE_CHECKING` and inside functions included,
so a shortcut taken today fails here rather than as an import cycle later.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

import streamworker

PACKAGE = Path(streamworker.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def imports_of(path: Path) -> frozenset[str]:
    """Every module `path` imports, by its full dotted name."""
    names: set[str] = set()
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else ""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = (package or _module_name(path)).split(".")
                base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(names)


def modules(*globs: str) -> list[Path]:
    found = sorted({path for glob in globs for path in PACKAGE.glob(glob)})
    assert found, f"nothing matches {globs}"
    return found


def offending(paths: list[Path], *forbidden: str) -> dict[str, list[str]]:
    """For each module, the imports that are (or are inside) a forbidden module."""
    bad: dict[str, list[str]] = {}
    for path in paths:
        hits = sorted(
            name
            for name in imports_of(path)
            if any(name == f or name.startswith(f + ".") for f in forbidden)
        )
        if hits:
            bad[str(path.relative_to(PACKAGE.parent))] = hits
    return bad


def test_limits_are_domain_data_importing_nothing_of_the_project() -> None:
    assert offending(modules("limits.py", "budgets.py"), "streamworker") == {}


def test_the_contract_does_not_depend_on_settings_or_io() -> None:
    contract = modules("contract.py", "contract/*.py")
    assert offending(contract, "streamworker.settings") == {}
    assert offending(contract, "aiodocker", "aiokafka", "faust", "sqlalchemy") == {}


def test_the_language_registry_depends_on_neither_sandbox_nor_images() -> None:
    languages = modules("languages/*.py")
    forbidden = ("streamworker.sandbox", "streamworker.images", "streamworker.settings")
    assert offending(languages, *forbidden) == {}
    assert not (PACKAGE / "languages" / "images.py").exists()


def test_the_sandbox_does_not_depend_on_the_image_builder() -> None:
    assert offending(modules("sandbox/*.py"), "streamworker.images") == {}


def test_the_image_recipe_is_pure() -> None:
    io = ("aiodocker", "aiohttp", "asyncio", "subprocess", "shutil", "tempfile", "os")
    assert offending(modules("images/recipe.py"), *io) == {}


@pytest.mark.parametrize(
    "glob",
    [
        "doctor.py",
        "monitor.py",
        "metrics.py",
        "cli.py",
        "judge.py",
        "verdict.py",
        "settings.py",
        "languages/*.py",
        "images/recipe.py",
        "images/mirror.py",
        "images/builder.py",
    ],
)
def test_aiodocker_stays_behind_the_sandbox(glob: str) -> None:
    assert offending(modules(glob), "aiodocker") == {}


def test_docker_is_pinged_in_one_place() -> None:
    """`sandbox.probe.ping` is the one user of aiodocker's private `_ping` query."""
    pingers = [
        str(path.relative_to(PACKAGE.parent))
        for path in modules("**/*.py")
        if '"_ping"' in path.read_text()
    ]
    assert pingers == ["streamworker/sandbox/probe.py"]


def test_metrics_import_nothing_above_them() -> None:
    assert (
        imports_of(PACKAGE / "metrics.py") & {"streamworker.judge", "streamworker.verdict"} == set()
    )
    project = {
        name for name in imports_of(PACKAGE / "metrics.py") if name.startswith("streamworker")
    }
    assert project <= {"streamworker", "streamworker.__version__"}
