"""CI keeps the shape of the code: layering (which package may import which), exchangelib kept out of the
accounts and web layers, size limits, and ruff. Each contract is also shown to catch a violation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import architecture as arch

ROOT = Path(__file__).resolve().parent.parent


def _listing(violations: list[arch.Violation]) -> str:
    return "\n".join(str(v) for v in violations)


def test_layering_holds() -> None:
    violations = arch.layering_violations(ROOT)
    assert not violations, "import layering broken:\n" + _listing(violations)


def test_accounts_and_web_do_not_load_exchangelib() -> None:
    violations = arch.exchangelib_chains(ROOT)
    assert not violations, _listing(violations)


def test_modules_and_classes_stay_small() -> None:
    violations = arch.size_violations(ROOT)
    assert not violations, "over the size limits (add a 'Size:' line to the docstring if it must be):\n" + (
        _listing(violations)
    )


# A small tree laid out like gateway/ that obeys every contract; each test below breaks it once.
CLEAN_TREE = {
    "gateway/__init__.py": "",
    "gateway/common/__init__.py": "",
    "gateway/common/timezones.py": "import zoneinfo\n",
    "gateway/caldav/__init__.py": "",
    "gateway/caldav/backend.py": "from gateway.common import timezones\n",
    "gateway/caldav/methods.py": "from . import backend\nfrom .backend import Principal\n",
    "gateway/ews/__init__.py": "",
    "gateway/ews/connection.py": "from dataclasses import dataclass\n",
    "gateway/ews/mapping.py": "import exchangelib\nfrom gateway.caldav.backend import Principal\n",
    "gateway/ews/emulator/__init__.py": "",
    "gateway/ews/emulator/soap.py": "from ...common.timezones import x\n",
    "gateway/web/__init__.py": "",
    "gateway/web/services.py": "from gateway.ews.connection import ConnectError\n",
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name, text in CLEAN_TREE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert not arch.layering_violations(tmp_path) + arch.exchangelib_chains(tmp_path)
    assert not arch.size_violations(tmp_path)
    return tmp_path


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_protocol_importing_the_backend_is_caught(tree: Path) -> None:
    _append(tree / "gateway/caldav/methods.py", "from gateway.ews import mapping\n")
    assert any(
        v.where.startswith("gateway.caldav.methods:") and "imports gateway.ews.mapping" in v.rule
        for v in arch.layering_violations(tree)
    )


def test_emulator_importing_the_gateway_is_caught(tree: Path) -> None:
    _append(tree / "gateway/ews/emulator/soap.py", "from ...caldav.backend import Principal\n")
    assert any(
        v.where.startswith("gateway.ews.emulator.soap:") and "gateway.caldav.backend" in v.rule
        for v in arch.layering_violations(tree)
    )


def test_exchangelib_reached_through_another_module_is_caught(tree: Path) -> None:
    _append(tree / "gateway/ews/connection.py", "from gateway.ews import mapping\n")
    chains = {v.where: v.rule for v in arch.exchangelib_chains(tree)}
    assert chains == {
        "gateway.web.services": "loads exchangelib on import: "
        "gateway.web.services -> gateway.ews.connection -> gateway.ews.mapping -> exchangelib"
    }


def test_lazy_and_type_checking_imports_do_not_count(tree: Path) -> None:
    _append(
        tree / "gateway/web/services.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import exchangelib\n"
        "def _later():\n    import exchangelib\n",
    )
    assert not arch.exchangelib_chains(tree)


def test_an_oversized_class_is_caught_unless_explained(tree: Path) -> None:
    body = "".join(f"    def m{i}(self):\n        return {i}\n" for i in range(130))
    (tree / "gateway/common/big.py").write_text(f"class Big:\n{body}", encoding="utf-8")
    assert [v.where for v in arch.size_violations(tree)] == ["gateway.common.big.Big"]
    (tree / "gateway/common/big.py").write_text(
        f'class Big:\n    """Size: a test of the escape hatch."""\n{body}', encoding="utf-8"
    )
    assert not arch.size_violations(tree)


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_ruff_check_and_format_are_clean() -> None:
    check = _ruff("check", "--quiet", ".")
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = _ruff("format", "--check", "--quiet", ".")
    assert fmt.returncode == 0, "ruff format would change:\n" + fmt.stdout + fmt.stderr


def test_every_module_is_drawn_in_the_architecture_doc() -> None:
    """docs/ARCHITECTURE.md names each module of gateway/ on a line of its own (path below gateway/, or
    its file name under the folder's heading line)."""
    missing = arch.undocumented_modules(ROOT, ROOT / "docs" / "ARCHITECTURE.md")
    assert not missing, "modules missing from docs/ARCHITECTURE.md: " + ", ".join(missing)


def test_a_new_module_missing_from_the_doc_is_caught(tree: Path) -> None:
    doc = tree / "ARCHITECTURE.md"
    doc.write_text(
        "".join(f"  {name.removeprefix('gateway/')}  what it does\n" for name in CLEAN_TREE), encoding="utf-8"
    )
    assert not arch.undocumented_modules(tree, doc)
    (tree / "gateway/ews/extra.py").write_text("", encoding="utf-8")
    assert arch.undocumented_modules(tree, doc) == ["ews/extra.py"]
