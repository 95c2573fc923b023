"""Knowledge written once. The table's columns live in adpipe/table.py, the settings in
adpipe/settings.py, the S3 keys in adpipe/windows.py (the DAGs' lineage and the S3 server's
policies mirror its areas, checked here). Every lock the warehouse's writers take lives in
adpipe/locks.py: a grep over the source fails the build when one is taken anywhere else (the
rows of adpipe_locks, the migration lock, an advisory lock, which no writer takes any more, or
in the code any row or table lock), and the migrations' SQL names only locks.py's kinds.
The job contract's failures live in adpipe/errors.py, which settings.py imports instead of
job.py (no import circle)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from adpipe import locks, windows
from adpipe.settings import SETTINGS
from adpipe.table import TABLE, TABLE_COLUMNS
from adpipe_dags import lineage
from s3.access import GRANTS

ROOT = Path(__file__).resolve().parents[2]

HOME = ROOT / "jobs" / "adpipe" / "adpipe" / "locks.py"
MIGRATIONS = ROOT / "jobs" / "adpipe" / "adpipe" / "migrations"
SOURCES = ("jobs", "dags", "platform", "tests", "bench")
# the writers' locks: adpipe_locks' rows, the migration lock, and PostgreSQL's advisory locks
# (open to every role, the reader's sessions too: no writer may take one again)
LOCK_CALL = re.compile(r"pg_(?:try_)?advisory_\w*lock|adpipe_locks|LOCK\s+(?:TABLE\s+)?schema_mig")
ADVISORY = re.compile(r"pg_(?:try_)?advisory_\w*lock")
# any row or table lock, in the code (tests take such locks to inject faults)
ANY_LOCK = re.compile(r"\bFOR (?:NO KEY )?UPDATE\b|\bFOR (?:KEY )?SHARE\b|\bLOCK TABLE\b")
# takes the old advisory keys and tries every lock as the reader role, to show it holds nothing
READER_TEST = ROOT / "tests" / "integration" / "test_reader_holds_nothing.py"
FAILURE_CLASS = re.compile(
    r"class \w+\((?:JobError|ConfigError|MissingSetting|DataError|UpstreamError)\)"
)
FUNCTION = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(\w+)\b(.*?)\$\$\s*;", re.I | re.S)


def python_files() -> list[Path]:
    return [
        path
        for top in SOURCES
        for path in (ROOT / top).rglob("*.py")
        if path != HOME and path != Path(__file__).resolve()
    ]


def test_no_lock_is_taken_outside_locks_py() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in python_files()
        if path != READER_TEST
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if LOCK_CALL.search(line) or (path.parts[len(ROOT.parts)] in CODE and ANY_LOCK.search(line))
    ]
    assert found == [], f"the writers' locks are taken in {HOME.relative_to(ROOT)} only"


def test_the_migrations_lock_only_the_kinds_locks_py_names_and_no_advisory_key() -> None:
    texts = [path.read_text() for path in sorted(MIGRATIONS.glob("*.sql"))]
    # a function's latest definition is the one in force; an applied migration stays as written
    latest = {name: body for text in texts for name, body in FUNCTION.findall(text)}
    advisory = sorted(name for name, body in latest.items() if ADVISORY.search(body))
    assert advisory == [], f"functions still taking an advisory lock: {advisory}"
    (allowed,) = [m for text in texts for m in re.findall(r"kind\s+IN\s*\(([^)]*)\)", text)]
    assert set(re.findall(r"'(\w+)'", allowed)) == set(locks.KINDS)
    named = {
        kind
        for text in texts
        for statement in text.split(";")
        if "adpipe_locks" in statement
        for found in re.findall(r"kind\s*=\s*'(\w*)'|VALUES\s*\(\s*'(\w*)'", statement)
        for kind in found
        if kind
    }
    assert named and named <= set(locks.KINDS), named - set(locks.KINDS)


def test_the_job_errors_live_in_errors_py_and_settings_imports_no_job_code() -> None:
    errors = ROOT / "jobs" / "adpipe" / "adpipe" / "errors.py"
    defined = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in python_files()
        if path != errors
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(FAILURE_CLASS, line)
    ]
    assert defined == [], "a job failure class belongs in adpipe/errors.py"
    settings = (ROOT / "jobs" / "adpipe" / "adpipe" / "settings.py").read_text()
    assert "adpipe.job" not in settings, "settings.py importing job.py makes an import circle"


# --- columns, settings and S3 keys: string constants in the code (docstrings and prose aside)
CODE = ("jobs", "dags", "platform", "bench")
KEY_FORMAT = re.compile(
    r"date=|window=|shown_date=|manifest-\d|page-|part-|\brun-"
    r"|^(?:backup|archive|quarantine|set-aside)/"
)
# mirrors where the code cannot import adpipe, checked against it below
MIRRORS = {
    ROOT / "dags" / "adpipe_dags" / "lineage.py",  # DAGs import no job code
    ROOT / "platform" / "s3" / "access.py",  # runs in the S3 server's image
}


def code_strings() -> list[tuple[Path, int, str]]:
    """Every string constant of the code that is not a docstring and not prose (help and
    messages of eight words or more), with its file and line."""
    found = []
    for top in CODE:
        for path in (ROOT / top).rglob("*.py"):
            tree = ast.parse(path.read_text())
            docs = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
                and node.body
                and isinstance(node.body[0], ast.Expr)
            }
            found += [
                (path, node.lineno, node.value)
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and len(node.value.split()) < 8
            ]
    return found


def columns_in(node: ast.AST) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return sum(1 for c in TABLE_COLUMNS if re.search(rf"\b{c}\b", node.value))
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return sum(1 for e in node.elts if isinstance(e, ast.Constant) and e.value in TABLE_COLUMNS)
    if isinstance(node, ast.Dict):
        return sum(1 for k in node.keys if isinstance(k, ast.Constant) and k.value in TABLE_COLUMNS)
    return 0


def test_the_tables_columns_are_listed_only_in_table_py() -> None:
    """A literal naming four or more of the table's columns (a column list, a SQL statement
    over them) outside adpipe/table.py spells out the table again."""
    home = ROOT / "jobs" / "adpipe" / "adpipe" / "table.py"
    api = ROOT / "dags" / "api_load" / "scripts" / "extract.py"  # the mock API's own records
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for top in CODE
        for path in (ROOT / top).rglob("*.py")
        if path not in (home, api)
        for node in ast.walk(ast.parse(path.read_text()))
        if columns_in(node) >= 4
    ]
    assert found == [], "derive the columns from adpipe.table"


def test_a_setting_is_read_and_defaulted_only_through_settings_py() -> None:
    """No job code reads a setting from the environment itself, and no DAG gives one a
    default of its own: the Setting table holds its default and its parsing."""
    home = ROOT / "jobs" / "adpipe" / "adpipe" / "settings.py"
    reads = re.compile(r"""(?:environ\.get|environ\[|getenv)\(?\s*f?["'](?:ADPIPE_)?(\w+)""")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {match.group(1)}"
        for top in ("jobs", "dags")
        for path in (ROOT / top).rglob("*.py")
        if path != home
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for match in reads.finditer(line)
        if match.group(1) in SETTINGS
    ]
    assert found == [], "read settings through adpipe.settings (DAGs: settings_env)"


def test_s3_keys_are_made_only_in_windows_py_and_its_mirrors_agree() -> None:
    home = ROOT / "jobs" / "adpipe" / "adpipe" / "windows.py"
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for path, line, text in code_strings()
        if path != home and path not in MIRRORS and KEY_FORMAT.search(text)
    ]
    assert found == [], "make S3 keys with adpipe.windows"
    assert f"{lineage.BACKUP}/" == windows.BACKUP_TABLE_PREFIX
    assert f"{lineage.ARCHIVE}/" == windows.ARCHIVE_TABLE_PREFIX
    assert f"{lineage.QUARANTINE}/" == windows.QUARANTINE_TABLE_PREFIX
    assert f"public.{TABLE}" == lineage.TABLE
    areas = {prefix for grants in GRANTS.values() for _, prefix in grants if prefix}
    assert areas == {
        windows.BACKUP_PREFIX,
        windows.QUARANTINE_PREFIX,
        windows.ARCHIVE_PREFIX,
        windows.SET_ASIDE_PREFIX,
    }


# --- the tests and the bench call the product's functions and read its columns; no copies
CHECKS = ("tests", "bench")  # what checks the product, and so must not keep its own version


def top_functions(top: str) -> list[tuple[Path, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every module-level function under ``top``, with its file."""
    return [
        (path, node)
        for path in sorted((ROOT / top).rglob("*.py"))
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, ...]:
    arguments = function.args
    return tuple(a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs))


def body(function: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The function's statements, its docstring aside, as the parser sees them."""
    statements = function.body[1:] if ast.get_docstring(function) is not None else function.body
    return "\n".join(ast.dump(s) for s in statements)


def test_the_tests_and_the_bench_define_no_copy_of_a_product_function() -> None:
    """A function of the tests or the bench with a product function's name and parameters
    (backup_prefix(start, end), rfc3339(moment)), or its very statements under another name,
    is a second home of what the product does: it stays right when the product changes, and
    the test passes on its own copy. Import the product's function; a test that pins a format
    on purpose writes the expected text out, saying so. (The name alone is no copy: a test's
    reconcile(day) runs the reconcile image.)"""
    product = top_functions("jobs")
    signatures = {(f.name, parameters(f)): path for path, f in product}
    bodies = {body(f): (path, f.name) for path, f in product}
    found = []
    for top in CHECKS:
        for path, function in top_functions(top):
            where = f"{path.relative_to(ROOT)}:{function.lineno} {function.name}"
            home = signatures.get((function.name, parameters(function)))
            if home is None and body(function) in bodies:
                home, _ = bodies[body(function)]
            if home is not None:
                found.append(f"{where} (the product's: {home.relative_to(ROOT)})")
    assert found == [], f"import the product's function instead: {found}"


def test_the_tests_spell_out_no_column_list() -> None:
    """A string of the tests naming four or more of the table's columns (a column list, a
    SQL statement over them) spells out the table again; derive it from adpipe.table
    (helpers.ROWS). A record's fields, as the API sends them, are data, not a list."""
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in (ROOT / "tests").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and columns_in(node) >= 4
    ]
    assert found == [], "derive the columns from adpipe.table"
