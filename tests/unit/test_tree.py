"""The tests mirror the package: every module has a test file of its name, under
tests/unit/<stage>/ or tests/integration/<stage>/ (test_<module>.py, or
test_<module>_<aspect>.py for one aspect of it), so that a newcomer finds a module's
tests by its name. The few modules without one are listed here with the reason."""

from tests.conftest import ROOT

PACKAGE = ROOT / "appliance"
# module (path under appliance/, without .py) -> why it has no test file of its own
WITHOUT = {
    "__main__": "`python -m appliance`: one line calling cli.main, which test_main tests",
    "paths": "one constant, the checkout's top, which every test that reads a template uses",
    "store/migrations/env": "Alembic's entry point: every store test runs it (test_schema checks what it makes)",
    "store/migrations/versions/0001_initial": "a schema revision: test_schema checks the schema the revisions make",
    "store/migrations/versions/0002_clock": "a schema revision: test_schema checks the schema the revisions make",
}


def has_tests(module: str, tests: list[str]) -> bool:
    """Whether MODULE (e.g. "boot/qemu") has a test file of its name in its stage's
    folder (tests/*/boot/test_qemu.py, test_qemu_ovmf.py); a top-level module's in
    tests/unit/ or tests/integration/ itself."""
    stage, _, name = module.rpartition("/")
    folder = stage.split("/")[0]
    return any(t.rpartition("/")[0] in (f"unit/{folder}", f"integration/{folder}") if folder else
               t.rpartition("/")[0] in ("unit", "integration")
               for t in tests if t.rpartition("/")[2] in (f"test_{name}",) or
               t.rpartition("/")[2].startswith(f"test_{name}_"))


def test_every_module_has_a_test_file_of_its_name_in_its_stages_folder():
    tests = [str(p.relative_to(ROOT / "tests").with_suffix("")) for p in (ROOT / "tests").rglob("test_*.py")]
    modules = {str(p.relative_to(PACKAGE).with_suffix("")) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    lacking = sorted(m for m in modules - set(WITHOUT) if not has_tests(m, tests))
    assert lacking == [], f"modules without a test file of their name: {lacking}"
    assert set(WITHOUT) <= modules, f"listed but gone: {sorted(set(WITHOUT) - modules)}"
    assert has_tests("boot/qemu", ["unit/boot/test_qemu_ovmf"]) and not has_tests("boot/qemu", ["unit/runs/test_qemu"])
