"""The test suite's own rules (issue 20, item 7), checked on the source of every module under tests/:

- no assertion on elapsed time: an ``assert`` may not involve the difference of two clock readings
  (``time.perf_counter() - t0``, a name bound to one, or a duration-named variable such as
  ``elapsed``/``seconds`` bounded from above). A test checks what was done (once, from a cache, a
  count), never how long it took: durations belong in benchmarks/. Deadlines
  (``time.monotonic() < deadline``) are fine: they bound a wait, they do not measure;
- no sleep-then-assert: a ``time.sleep`` outside a loop followed by an ``assert`` in the same
  function. Wait for the state instead (tests/helpers/waiting.py ``wait_until``, WebDriverWait,
  an event); a sleep inside a polling loop, or inside a stand-in that simulates slow work, is fine;
- no test module imports another: shared helpers live in tests/helpers/ or tests/conftest.py.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TIMERS = {"time", "perf_counter", "monotonic", "process_time", "time_ns", "perf_counter_ns", "monotonic_ns"}
DURATION_NAME = re.compile(r"^(elapsed|seconds|secs|duration|took|dt|per_image|wall)(_\w+)?$|_(seconds|elapsed|duration)$")
FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
LOOPS = (ast.For, ast.AsyncFor, ast.While)


def _is_timer_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    if isinstance(f, ast.Attribute) and f.attr in TIMERS and isinstance(f.value, ast.Name) and f.value.id == "time":
        return True
    return isinstance(f, ast.Name) and f.id in TIMERS - {"time"}  # from time import perf_counter


def _is_sleep(node: ast.AST) -> bool:
    if not isinstance(node, ast.Expr) or not isinstance(node.value, ast.Call):
        return False
    f = node.value.func
    return (isinstance(f, ast.Attribute) and f.attr == "sleep" and isinstance(f.value, ast.Name) and f.value.id == "time") \
        or (isinstance(f, ast.Name) and f.id == "sleep")


def _own_nodes(fn: ast.AST):
    """The nodes of ``fn``'s body, not descending into nested functions (their own scope)."""
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, FUNCS):
            stack.extend(ast.iter_child_nodes(node))


def _scopes(tree: ast.Module):
    yield tree
    yield from (n for n in ast.walk(tree) if isinstance(n, FUNCS))


def _assigned(node: ast.AST) -> list[tuple[str, ast.AST]]:
    if isinstance(node, ast.Assign):
        return [(t.id, node.value) for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name) and node.value is not None:
        return [(node.target.id, node.value)]
    return []


def elapsed_asserts(tree: ast.Module) -> list[int]:
    """Lines of asserts on elapsed wall-clock time."""
    found = []
    for scope in _scopes(tree):
        nodes = list(_own_nodes(scope))
        starts, elapsed = set(), set()  # t0 = time.perf_counter(); seconds = time.perf_counter() - t0

        def timed(expr: ast.AST) -> bool:
            return _is_timer_call(expr) or (isinstance(expr, ast.Name) and expr.id in starts)

        def measures(expr: ast.AST) -> bool:
            for n in ast.walk(expr):
                if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Sub) and timed(n.left) and timed(n.right):
                    return True
                if isinstance(n, ast.Name) and n.id in elapsed:
                    return True
            return False

        for _ in range(3):  # names bound from names bound from timers (a few steps are plenty)
            for node in nodes:
                for name, value in _assigned(node):
                    if _is_timer_call(value):
                        starts.add(name)
                    elif measures(value):
                        elapsed.add(name)
        for node in nodes:
            if not isinstance(node, ast.Assert):
                continue
            if measures(node.test) or _bounds_a_duration(node.test):
                found.append(node.lineno)
    return sorted(set(found))


def _bounds_a_duration(test: ast.AST) -> bool:
    """``x < 2.0`` where x is a bare duration-named variable (or float() of one): a time limit."""
    for cmp in (n for n in ast.walk(test) if isinstance(n, ast.Compare)):
        sides = [cmp.left, *cmp.comparators]
        for i, op in enumerate(cmp.ops):
            small, big = (sides[i], sides[i + 1]) if isinstance(op, (ast.Lt, ast.LtE)) else \
                (sides[i + 1], sides[i]) if isinstance(op, (ast.Gt, ast.GtE)) else (None, None)
            if small is None or not isinstance(big, ast.Constant) or not isinstance(big.value, (int, float)):
                continue
            inner = small.args[0] if isinstance(small, ast.Call) and small.args else small
            if isinstance(inner, ast.Name) and DURATION_NAME.search(inner.id):
                return True
    return False


def sleeps_then_asserts(tree: ast.Module) -> list[int]:
    """Lines of ``time.sleep`` calls (outside a loop) that an assert follows in the same function."""
    found = []
    for scope in _scopes(tree):
        if isinstance(scope, ast.Module):
            continue
        in_loop = {id(n) for loop in _own_nodes(scope) if isinstance(loop, LOOPS) for n in _own_nodes(loop)}
        nodes = list(_own_nodes(scope))
        asserts = [n.lineno for n in nodes if isinstance(n, ast.Assert)]
        for node in nodes:
            if _is_sleep(node) and id(node) not in in_loop and any(line > node.lineno for line in asserts):
                found.append(node.lineno)
    return sorted(found)


def _test_module(name: str | None) -> bool:
    if not name:
        return False
    last = name.split(".")[-1]
    return last.startswith("test_") and name.split(".")[0] in ("tests", last)


def imports_of_test_modules(tree: ast.Module) -> list[int]:
    """Lines importing from another test module (``tests.test_x``, ``test_x``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(_test_module(a.name) for a in node.names):
            found.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (
                _test_module(node.module) or (node.module == "tests" and any(a.name.startswith("test_") for a in node.names))):
            found.append(node.lineno)
    return found




def problems(folder: Path) -> dict[str, list[int]]:
    out = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        rel = path.relative_to(folder).as_posix()
        for kind, lines in (("asserts on elapsed time", elapsed_asserts(tree)),
                            ("sleeps then asserts", sleeps_then_asserts(tree)),
                            ("imports a test module", imports_of_test_modules(tree))):
            if lines:
                out[f"{rel}: {kind}"] = lines
    return out


# ---- the suite keeps the rules -----------------------------------------------------------------


def test_the_suite_keeps_its_rules():
    found = problems(TESTS)
    assert not found, "\n".join(f"{where} (lines {lines})" for where, lines in found.items())


# ---- the checks catch what they are for (and only that) ----------------------------------------


def _tree(src: str) -> ast.Module:
    return ast.parse(textwrap.dedent(src))


@pytest.mark.parametrize("src", [
    """
    def test_x():
        t0 = time.perf_counter()
        work()
        assert time.perf_counter() - t0 < 2
    """,
    """
    def test_x():
        start = time.monotonic()
        work()
        per_item = (time.monotonic() - start) / 10
        assert per_item < 0.05
    """,
    """
    from time import perf_counter
    def test_x():
        t = perf_counter(); work(); took = perf_counter() - t
        assert took <= 1.0, took
    """,
    """
    def test_x():
        seconds, tf = out.split()
        assert float(seconds) < 2.0
    """,
])
def test_elapsed_time_asserts_are_caught(src):
    assert elapsed_asserts(_tree(src))


def test_deadlines_and_reported_durations_are_not_elapsed_asserts():
    src = """
    def test_x():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            poll()
        assert time.monotonic() < deadline, "still running"
        job = wait(max(1.0, deadline - time.monotonic()))
        assert job["status"] == "done"
        assert report["seconds"] > 0 and stats.build_seconds >= 0
        week_ago = time.time() - 7 * 24 * 3600
        touch(path, week_ago)
        assert path.exists()
    """
    assert elapsed_asserts(_tree(src)) == []


def test_sleep_then_assert_is_caught_but_polling_and_slow_stand_ins_are_not():
    bad = """
    def test_x():
        start_job()
        with lock:
            time.sleep(0.5)
            order.append(1)
        assert order == [1, 2]
    """
    assert sleeps_then_asserts(_tree(bad)) == [5]
    fine = """
    def test_x():
        while not done():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        def slow_load(im):
            time.sleep(0.05)
            return real(im)
        assert run(slow_load) == 3
    """
    assert sleeps_then_asserts(_tree(fine)) == []


def test_imports_of_test_modules_are_caught_but_helpers_and_conftest_are_not():
    bad = """
    from tests.test_api import assert_error
    from test_jobs import rq_queue
    import tests.test_store
    def f():
        from tests import test_browser
    """
    assert imports_of_test_modules(_tree(bad)) == [2, 3, 4, 6]
    fine = """
    from tests.helpers.api import assert_error
    from tests.conftest import CATS_DOGS
    from conftest import copy_subset
    from simsearch.testing import test_double
    """
    assert imports_of_test_modules(_tree(fine)) == []
