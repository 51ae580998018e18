"""The package's shape: no import circles between its modules, none held open by imports
inside functions, the module names users knew before the package was cut by concern, and
no optional framework imported by `import lstmcore`."""

from __future__ import annotations

import ast
import importlib
import pathlib
import subprocess
import sys

import pytest

import lstmcore

PACKAGE = pathlib.Path(lstmcore.__file__).parent


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imported(node, module):
    """The lstmcore modules that one import statement names (a ``from`` import of a
    submodule names the submodule, of anything else the package that holds it)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in MODULES]
    if node.level:  # relative: resolved against the importing module's package
        base = module.split(".")
        if MODULES[module].name != "__init__.py":
            base = base[:-1]
        base = base[: len(base) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    named = [f"{source}.{alias.name}" for alias in node.names]
    return [name if name in MODULES else source for name in named if name in MODULES or source in MODULES]


def _imports(module, *, inside_functions):
    found = set()
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    nodes = ast.walk(tree) if inside_functions else tree.body
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update(_imported(node, module))
    return found


def _function_bodies(module):
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_module_of_lstmcore_is_imported_inside_a_function():
    # An import inside a function is how a circle hides: the layout must not need one.
    found = []
    for module in MODULES:
        for function in _function_bodies(module):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and _imported(node, module):
                    found.append(f"{module}.{function.name} imports {_imported(node, module)}")
    assert found == []


def test_the_modules_import_each_other_in_no_circle():
    graph = {module: _imports(module, inside_functions=True) - {module} for module in MODULES}
    done, on_path, circles = set(), [], []

    def visit(module):
        if module in on_path:
            circles.append(on_path[on_path.index(module) :] + [module])
            return
        if module in done:
            return
        on_path.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        on_path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert circles == []


@pytest.mark.parametrize("old, new", [("inspect", "microscope"), ("losses", "nn.losses"), ("optim", "nn.optim")])
def test_the_earlier_module_names_are_the_same_modules(old, new):
    module = importlib.import_module(f"lstmcore.{new}")
    assert importlib.import_module(f"lstmcore.{old}") is module
    assert getattr(lstmcore, old) is module
    first_public = next(name for name in dir(module) if not name.startswith("_") and callable(getattr(module, name)))
    namespace = {}
    exec(f"from lstmcore.{old} import {first_public}", namespace)
    assert namespace[first_public] is getattr(module, first_public)


def test_the_microscope_does_not_shadow_the_standard_library():
    assert not (PACKAGE / "inspect.py").exists()
    assert "lstmcore.inspect" not in {_module_name(path) for path in PACKAGE.rglob("*.py")}


# The optional extras: importing lstmcore (and its interop modules) must load none of
# them; each is imported by the function that needs it.
OPTIONAL_PACKAGES = (
    "torch", "onnx", "onnxruntime", "h5py", "safetensors", "sklearn", "keras", "matplotlib", "pandas", "scipy",
    "mpi4py", "dask", "distributed", "pyarrow",
)  # fmt: skip


def _run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_importing_lstmcore_loads_no_optional_package():
    # lstmcore.torch (which imports torch by design) is not loaded by `import lstmcore` either.
    code = (
        "import sys, lstmcore, lstmcore.onnx, lstmcore.interop, lstmcore.interop.keras, lstmcore.distributed\n"
        "lstmcore.from_torch, lstmcore.to_torch, lstmcore.from_keras, lstmcore.interop.from_torch\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {OPTIONAL_PACKAGES!r}\n"
        "             or m.startswith('lstmcore.torch') or m.startswith('lstmcore.sklearn')))\n"
    )
    done = _run_python(code)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.parametrize(
    "package, framework, message",
    [
        ("lstmcore.sklearn", "sklearn", "lstmcore.sklearn needs scikit-learn: pip install 'lstmcore[sklearn]'"),
        ("lstmcore.torch", "torch", "lstmcore.torch needs PyTorch: pip install 'lstmcore[torch]'"),
    ],
)
def test_a_framework_subpackage_without_its_framework_names_the_extra(package, framework, message):
    # sys.modules[name] = None makes `import name` fail as if it were not installed.
    run = _run_python(f"import sys; sys.modules[{framework!r}] = None; import {package}")
    assert run.returncode != 0
    assert f"ImportError: {message}" in run.stderr
