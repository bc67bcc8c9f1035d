"""The shape CI keeps: import layering and size limits, read from the source text (nothing is imported).

The rules are data (``LAYERS``, ``NO_EXCHANGELIB``, the two size limits) so a reader sees the whole
contract in one place; ``tests/test_architecture.py`` applies them to ``gateway/`` and proves on a
throw-away tree that a violation is reported.

Only imports executed when a module is imported count: those at module level, including inside
``try``/``if`` blocks, but not under ``if TYPE_CHECKING:`` and not inside functions (a lazy import is how
a command avoids loading exchangelib until it needs it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 250
# A module or class may exceed a limit when its docstring has a line starting with this marker that
# says why (e.g. "Size: one EWS operation per method; splitting would scatter the protocol").
SIZE_MARKER = "Size:"


@dataclass(frozen=True)
class Layer:
    """Modules under ``package`` may import, of the gateway, only modules under ``may_import``."""

    package: str
    may_import: tuple[str, ...]
    why: str


LAYERS: tuple[Layer, ...] = (
    Layer(
        "gateway.caldav",
        ("gateway.caldav", "gateway.common"),
        "the protocol knows nothing of Exchange, accounts, pages or the database",
    ),
    Layer(
        "gateway.ews.emulator",
        ("gateway.ews.emulator", "gateway.common"),
        "the emulator is a separate server: it shares only the pure helpers in common/",
    ),
    Layer("gateway.common", ("gateway.common",), "common/ holds pure helpers every part may use"),
    Layer(
        "gateway.booking",
        ("gateway.booking", "gateway.caldav", "gateway.common", "gateway.store"),
        "the booking API asks the calendar store only through caldav/backend.py, like the protocol",
    ),
    Layer(
        "gateway.ews",
        ("gateway.ews", "gateway.common", "gateway.caldav.backend", "gateway.store"),
        "a backend implements caldav/backend.py and sees nothing else of the protocol, nor the pages",
    ),
)

# Packages whose import must not load exchangelib, not even through another gateway module: the CLI
# adds a user and the pages render without the EWS stack.
NO_EXCHANGELIB: tuple[str, ...] = ("gateway.accounts", "gateway.web", "gateway.booking")
EXCHANGELIB = "exchangelib"


@dataclass(frozen=True)
class Violation:
    where: str  # module (and line) where the rule is broken
    rule: str  # what it breaks, as a sentence

    def __str__(self) -> str:
        return f"{self.where}: {self.rule}"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path, package: str = "gateway") -> dict[str, Path]:
    """Every module of ``package`` below ``root``, by dotted name."""
    return {module_name(root, p): p for p in sorted((root / package).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_nodes(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run on import: the body, descending into if/try/with but not functions or classes'
    methods, and skipping ``if TYPE_CHECKING:`` branches."""
    for node in body:
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_nodes(node.body)
            yield from _import_time_nodes(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _import_time_nodes(block)
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from _import_time_nodes(node.body)
        else:
            yield node


def imports(name: str, path: Path) -> list[tuple[str, int]]:
    """The modules ``name`` imports when it is imported, absolute, with their line numbers.

    ``from pkg import sub`` is recorded as ``pkg.sub`` (a submodule or a name in ``pkg``; both load
    ``pkg``, and the caller resolves which one exists)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in _import_time_nodes(tree.body):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.extend(
                (f"{base}.{alias.name}" if alias.name != "*" else base, node.lineno) for alias in node.names
            )
    return found


def _resolve(target: str, known: dict[str, Path]) -> str | None:
    """The gateway module ``target`` loads (itself, or the package that defines the imported name)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _layer_of(module: str) -> Layer | None:
    # The most specific layer wins (the emulator lies inside gateway.ews).
    matching = [layer for layer in LAYERS if _within(module, layer.package)]
    return max(matching, key=lambda layer: len(layer.package), default=None)


def layering_violations(root: Path) -> list[Violation]:
    """Imports that break ``LAYERS`` (direct imports of gateway modules)."""
    known = modules(root)
    violations = []
    for name, path in known.items():
        layer = _layer_of(name)
        if layer is None:
            continue
        for target, line in imports(name, path):
            if not _within(target, "gateway"):
                continue
            resolved = _resolve(target, known) or target
            if not any(_within(resolved, allowed) for allowed in layer.may_import):
                violations.append(
                    Violation(f"{name}:{line}", f"imports {resolved}, but {layer.package}: {layer.why}")
                )
    return violations


def exchangelib_chains(root: Path) -> list[Violation]:
    """Modules of ``NO_EXCHANGELIB`` packages whose import loads exchangelib, with the chain."""
    known = modules(root)
    graph = {name: [(t, _resolve(t, known)) for t, _ in imports(name, path)] for name, path in known.items()}
    violations = []
    for start in (n for n in known if any(_within(n, p) for p in NO_EXCHANGELIB)):
        chain = _chain_to_exchangelib(start, graph)
        if chain:
            violations.append(Violation(start, "loads exchangelib on import: " + " -> ".join(chain)))
    return violations


def _chain_to_exchangelib(start: str, graph: dict[str, list[tuple[str, str | None]]]) -> list[str] | None:
    """Breadth-first: the shortest import chain from ``start`` to exchangelib, or None."""
    parents: dict[str, str | None] = {start: None}
    queue = [start]
    while queue:
        current = queue.pop(0)
        for target, resolved in graph.get(current, []):
            if _within(target, EXCHANGELIB):
                chain = [EXCHANGELIB, current]
                while parents[chain[-1]] is not None:
                    chain.append(parents[chain[-1]])  # type: ignore[arg-type]
                return chain[::-1]
            # Importing a.b.c also runs a/__init__ and a/b/__init__.
            for step in _with_parents(resolved):
                if step in graph and step not in parents:
                    parents[step] = current
                    queue.append(step)
    return None


def _with_parents(module: str | None) -> list[str]:
    if not module:
        return []
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _explained(node: ast.AST) -> bool:
    doc = ast.get_docstring(node) or ""  # type: ignore[arg-type]
    return any(line.strip().startswith(SIZE_MARKER) for line in doc.splitlines())


def size_violations(root: Path) -> list[Violation]:
    """Modules over ``MAX_MODULE_LINES`` and classes over ``MAX_CLASS_LINES`` without a Size: line."""
    violations = []
    for name, path in modules(root).items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES and not _explained(tree):
            violations.append(Violation(name, f"{lines} lines (limit {MAX_MODULE_LINES})"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.end_lineno:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_CLASS_LINES and not _explained(node):
                    violations.append(
                        Violation(f"{name}.{node.name}", f"{length} lines (limit {MAX_CLASS_LINES})")
                    )
    return violations


def undocumented_modules(root: Path, doc: Path) -> list[str]:
    """Modules of gateway/ (as paths below it) that ``doc`` does not name as the first word of a line.

    A line's first word is a path relative to gateway/ (``ews/backend/facade.py``) or, inside an indented
    block under a folder line (``  ews/emulator/``), a file of that folder (``app.py``). Package
    ``__init__.py`` files need no line of their own, except the top-level ``__main__.py`` is named with cli.py.
    """
    named: set[str] = set()
    folder = ""
    for line in doc.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if not words:
            continue
        first = words[0]
        if first.endswith("/"):
            folder = first
        elif first.endswith(".py"):
            named.add(first)
            named.add(folder + first)
    named.add("__main__.py")
    paths = (p.relative_to(root / "gateway").as_posix() for p in (root / "gateway").rglob("*.py"))
    return sorted(p for p in paths if not p.endswith("__init__.py") and p not in named)
