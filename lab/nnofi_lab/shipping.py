"""Turn a Python function into something a node can run: its source, the
source of the plain functions and classes it calls from its module (and
theirs, recursively), the modules it uses (imported again on the node),
and the constants it reads. Nothing is pickled, so the node needs only
Python and the modules the function really imports (nnofi on a lab node).

A shipped function may not close over local variables; everything else it
needs comes along or is passed as arguments (str, bytes, numbers, None,
bool, and lists/tuples/dicts/sets of them).
"""
from __future__ import annotations

import ast
import builtins
import functools
import inspect
import textwrap
import types
from typing import Dict, List, Tuple

_CONST_TYPES = (str, bytes, int, float, bool, complex, type(None))


class ShippingError(TypeError):
    """A function that cannot be sent to a node, and why."""


def _is_const(v) -> bool:
    if isinstance(v, _CONST_TYPES):
        return True
    if isinstance(v, (list, tuple, set, frozenset)):
        return all(_is_const(x) for x in v)
    if isinstance(v, dict):
        return all(_is_const(k) and _is_const(x) for k, x in v.items())
    return False


def _names(code: types.CodeType):
    yield from code.co_names
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _names(c)


def _source(obj) -> Tuple[str, str, int]:
    """(dedented source without decorators, file, first line)."""
    try:
        lines, first = inspect.getsourcelines(obj)
        filename = inspect.getsourcefile(obj) or "<unknown>"
    except (OSError, TypeError) as e:
        raise ShippingError(f"cannot read the source of {obj!r}: {e}") from None
    src = textwrap.dedent("".join(lines))
    tree = ast.parse(src)
    node = tree.body[0]
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        raise ShippingError(f"{obj!r}: only def and class statements can be shipped")
    if node.decorator_list:  # decorators belong to the caller's side (pytest marks, ...)
        start = node.lineno - 1
        src = "\n" * start + "\n".join(src.splitlines()[start:]) + "\n"
    return src, filename, first


@functools.lru_cache(maxsize=None)
def bundle(func) -> Dict:
    """What the node needs to run func: {"name", "units": [(source, file,
    first line)], "imports": [(global name, module)], "consts": {name: value}}."""
    if not inspect.isfunction(func):
        raise ShippingError(f"{func!r} is not a plain Python function (def); "
                            "lambdas, methods and builtins cannot be shipped")
    if func.__name__ == "<lambda>":
        raise ShippingError("a lambda cannot be shipped: define it with def")
    units: List[Tuple[str, str, int]] = []
    imports: Dict[str, str] = {}
    consts: Dict[str, object] = {}
    owners: Dict[str, object] = {}
    done = set()

    def visit(obj):
        if id(obj) in done:
            return
        done.add(id(obj))
        if inspect.isfunction(obj) and obj.__closure__:
            free = ", ".join(obj.__code__.co_freevars)
            raise ShippingError(f"{obj.__qualname__} uses variables of an enclosing function ({free}): "
                                "define it at module level and pass them as arguments")
        units.append(_source(obj))
        if inspect.isclass(obj):
            codes = [m.__code__ for m in vars(obj).values() if inspect.isfunction(m)]
            glob = vars(inspect.getmodule(obj)) if inspect.getmodule(obj) else {}
        else:
            codes = [obj.__code__]
            glob = obj.__globals__
        for code in codes:
            for name in _names(code):
                if name not in glob or (hasattr(builtins, name) and glob[name] is getattr(builtins, name)):
                    continue
                value = glob[name]
                if name in owners and owners[name] is not value:
                    raise ShippingError(f"two shipped functions mean different things by {name!r}: "
                                        f"{owners[name]!r} and {value!r}")
                owners[name] = value
                if inspect.ismodule(value):
                    imports[name] = value.__name__
                elif inspect.isfunction(value) or (inspect.isclass(value) and value.__module__ == obj.__module__):
                    if value.__name__ != name:
                        raise ShippingError(f"{name!r} is {value.__name__} under another name: "
                                            "import it under its own name to ship it")
                    visit(value)
                elif _is_const(value):
                    consts[name] = value
                elif inspect.isclass(value) or callable(value):
                    mod = getattr(value, "__module__", None)
                    if mod and getattr(value, "__qualname__", "") == name:
                        imports[name] = f"{mod}:{name}"  # e.g. `from nnofi import Pair`
                    # otherwise an attribute name that happens to match; ignored
                elif name in code.co_varnames:
                    continue
                else:
                    raise ShippingError(
                        f"{obj.__qualname__} reads the global {name!r} ({type(value).__name__}), which cannot "
                        "be sent to a node: import it inside the function or pass it as an argument")

    visit(func)
    units.reverse()  # dependencies first (all are defined before anything runs anyway)
    return {"name": func.__name__, "units": units, "imports": sorted(imports.items()), "consts": consts}


def wants_ctl(func) -> bool:
    """Does func take the task's control channel as its first argument
    (a first parameter named `ctl`)?"""
    params = list(inspect.signature(func).parameters)
    return bool(params) and params[0] == "ctl"
