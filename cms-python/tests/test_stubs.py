"""The checked-in stubs match the module: the names and signatures of ``cms/_cms.pyi`` against the native
module (``mypy.stubtest`` checks the whole package in scripts/test.sh; this test runs in any venv)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import cms
from cms import _cms

STUB = Path(cms.__file__).with_name("_cms.pyi")


def _stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text(encoding="utf-8"))


def _parameters(function: ast.FunctionDef) -> list[str]:
    return [argument.arg for argument in function.args.args if argument.arg not in ("self", "cls")]


def test_stub_names_are_the_module_names() -> None:
    stub_names = {
        node.name for node in _stub_tree().body if isinstance(node, (ast.ClassDef, ast.FunctionDef))
    } | {
        node.target.id
        for node in _stub_tree().body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    runtime_names = {name for name in dir(_cms) if not name.startswith("_")}
    assert stub_names == runtime_names


def test_stub_functions_and_methods_have_the_runtime_signatures() -> None:
    for node in _stub_tree().body:
        if isinstance(node, ast.FunctionDef):
            runtime = inspect.signature(getattr(_cms, node.name))
            assert list(runtime.parameters) == _parameters(node), node.name
        elif isinstance(node, ast.ClassDef) and not issubclass(getattr(_cms, node.name), BaseException):
            cls = getattr(_cms, node.name)
            members = {item.name: item for item in node.body if isinstance(item, ast.FunctionDef)}
            runtime_members = {name for name in dir(cls) if not name.startswith("_")}
            assert {name for name in members if not name.startswith("_")} == runtime_members, node.name
            for name, item in members.items():
                if name == "__new__":
                    runtime = inspect.signature(cls)
                elif isinstance(inspect.getattr_static(cls, name), property) or inspect.isgetsetdescriptor(
                    inspect.getattr_static(cls, name)
                ):
                    continue
                else:
                    runtime = inspect.signature(getattr(cls, name))
                runtime_parameters = [parameter for parameter in runtime.parameters if parameter != "self"]
                assert runtime_parameters == _parameters(item), f"{node.name}.{name}"


def test_exception_classes_carry_the_documented_attributes() -> None:
    error = cms.InputError("x")
    assert isinstance(error, cms.CmsError)
    for node in _stub_tree().body:
        if isinstance(node, ast.ClassDef) and node.name == "CmsError":
            annotated = {item.target.id for item in node.body if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)}
            assert annotated == {"code", "location", "source"}
    try:
        cms.call("no_such_method")
    except cms.CmsError as raised:
        assert (raised.code, raised.location, raised.source) == ("invalid_value", "call field method", "call")


def test_public_names_exist() -> None:
    for name in cms.__all__:
        assert hasattr(cms, name), name
