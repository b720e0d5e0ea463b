"""The CLI layer holds no SQL: every module under pgsearch/commands/ parses options, calls the
library and prints what it returns. A command that needs the database calls a library function
(pgsearch.api, pgsearch.datasets, pgsearch.curate.*, ...), which owns the statement.

The check reads the source (ast), so a command added later is covered without touching this
file. It fails on:
- calls of .execute / .executemany / .cursor / .fetch* (a connection or cursor at work), and of
  .copy with arguments (COPY; a bare `.copy()` is a dict or list copy);
- imports of psycopg.sql, psycopg.rows, psycopg.copy or sqlglot, and `psycopg.sql` attributes;
- string literals (f-strings included, docstrings not) that read as an SQL statement.
"""

from __future__ import annotations

import ast
import pkgutil
import re
from pathlib import Path

import pytest

import pgsearch.commands

DB_CALLS = {"execute", "executemany", "cursor", "fetchone", "fetchall", "fetchmany"}
SQL_MODULES = ("psycopg.sql", "psycopg.rows", "psycopg.copy", "sqlglot")

# Statements whose shape cannot be prose: matched whatever the case.
_STATEMENT = re.compile(
    r"""^\s*\(?\s*(
        SELECT\b.*\bFROM\b | INSERT\s+INTO\b | UPDATE\s+[\w."]+\s+SET\b | DELETE\s+FROM\b
      | WITH\s+(RECURSIVE\s+)?\w+\s+AS\s*\( | MERGE\s+INTO\b
      | (CREATE|ALTER|DROP)\s+(OR\s+REPLACE\s+|UNIQUE\s+|TEMP(ORARY)?\s+|MATERIALIZED\s+)*
        (TABLE|INDEX|VIEW|SCHEMA|EXTENSION|ROLE|FUNCTION|SEQUENCE|TYPE|TRIGGER|DATABASE)\b
      | COPY\s+[\w."(), ]+\s+(FROM|TO)\s
    )""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)
# One-word statements that could start a sentence ("Show the ...", "Set ..."): upper case only.
_UPPER_STATEMENT = re.compile(
    r"^\s*(SELECT\s|SHOW\s+\w|EXPLAIN\b|VACUUM\b|ANALYZE\b|TRUNCATE\b|GRANT\s|REVOKE\s|SET\s+\w+\s*(=|TO\b)"
    r"|BEGIN\b|COMMIT\b|ROLLBACK\b|LISTEN\s|NOTIFY\s|LOCK\s+TABLE\b|REFRESH\s+MATERIALIZED\b)"
)


def looks_like_sql(text: str) -> bool:
    return bool(_STATEMENT.match(text) or _UPPER_STATEMENT.match(text))


def _sql_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in SQL_MODULES)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (module, class, function)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _text(node: ast.JoinedStr) -> str:
    """An f-string's literal parts with {} where the values go."""
    return "".join(str(part.value) if isinstance(part, ast.Constant) else "{}" for part in node.values)


def sql_use(source: str, filename: str = "<source>") -> list[str]:
    """Every use of SQL in `source`, as 'line: what'."""
    tree = ast.parse(source, filename)
    docstrings = _docstrings(tree)
    inside_fstring = {
        id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values
    }
    found: list[str] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name in DB_CALLS or (name == "copy" and (node.args or node.keywords)):
                found.append(f"{line}: .{name}() call")
        elif isinstance(node, ast.Import):
            found.extend(f"{line}: import {a.name}" for a in node.names if _sql_module(a.name))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            found.extend(
                f"{line}: from {module} import {a.name}"
                for a in node.names
                if _sql_module(module) or _sql_module(f"{module}.{a.name}")
            )
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ("sql", "rows", "copy")
            and isinstance(node.value, ast.Name)
            and node.value.id == "psycopg"
        ):
            found.append(f"{line}: psycopg.{node.attr}")
        elif isinstance(node, ast.JoinedStr):
            if looks_like_sql(_text(node)):
                found.append(f"{line}: SQL in an f-string: {_text(node)[:60]!r}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and id(node) not in inside_fstring
            and looks_like_sql(node.value)
        ):
            found.append(f"{line}: SQL string: {node.value[:60]!r}")
    return found


def command_modules() -> list[Path]:
    package = Path(pgsearch.commands.__file__).parent
    paths = [package / "__init__.py"]
    for info in pkgutil.walk_packages([str(package)]):
        relative = Path(*info.name.split("."))
        path = package / (relative / "__init__.py" if info.ispkg else relative.with_suffix(".py"))
        paths.append(path)
    return sorted(paths)


def test_every_command_module_is_checked() -> None:
    from pgsearch.cli import COMMANDS

    checked = {p.stem for p in command_modules()}
    for target in COMMANDS.values():
        module = target.partition(":")[0]
        assert module.rsplit(".", 1)[1] in checked, module


@pytest.mark.parametrize("path", command_modules(), ids=lambda p: p.name)
def test_commands_hold_no_sql(path: Path) -> None:
    found = sql_use(path.read_text(encoding="utf-8"), str(path))
    assert not found, (
        f"{path.name} uses SQL; move it into a library function (pgsearch/api.py, datasets.py, "
        "curate/..., ...) and call that:\n  " + "\n  ".join(found)
    )


def test_the_check_sees_sql() -> None:
    """The check itself: each kind of SQL use is caught, prose and docstrings are not."""
    bad = {
        "conn.execute('x')": ".execute() call",
        "with conn.cursor() as cur: pass": ".cursor() call",
        "cur.copy('COPY t FROM STDIN')": ".copy() call",
        "from psycopg import sql": "from psycopg import sql",
        "import sqlglot.expressions": "import sqlglot.expressions",
        "from psycopg.rows import dict_row": "from psycopg.rows import dict_row",
        "q = psycopg.sql.SQL('x')": "psycopg.sql",
        "q = 'SELECT id FROM pgsearch.assets WHERE dataset_id = %s'": "SQL string",
        "q = 'select count(*) from pgsearch.shapes'": "SQL string",
        "q = f'UPDATE pgsearch.assets SET groups = {x}'": "SQL in an f-string",
        "q = ('DELETE FROM pgsearch.assets' ' WHERE id = %s')": "SQL string",
        "q = 'SHOW server_version'": "SQL string",
        "q = 'WITH t AS (SELECT 1) SELECT * FROM t'": "SQL string",
    }
    for source, what in bad.items():
        found = sql_use(source)
        assert found and what in found[0], (source, found)
    fine = [
        '"""SELECT * FROM pgsearch.v_assets in a docstring."""',
        'def f():\n    """pgsearch db psql -c \'SELECT count(*) FROM pgsearch.assets\'"""',
        "x = 'Show, per embedding model, how many assets are embedded'",
        "x = 'Set the role\\'s password'",
        "x = 'select a region, get its query'",
        "x = '     pgsearch db psql   (then: SELECT * FROM pgsearch.similar_assets(1, 5);)'",
        "rows = [r.copy() for r in rows]",
        "from pgsearch.api import connect",
    ]
    for source in fine:
        assert sql_use(source) == [], source
