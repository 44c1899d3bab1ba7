from __future__ import annotations

import importlib
import pkgutil

import promptstate as ps


def test_all_is_sorted_and_exported() -> None:
    assert ps.__all__ == sorted(ps.__all__)
    for name in ps.__all__:
        assert getattr(ps, name) is not None


def test_private_modules_declare_all() -> None:
    for mod in pkgutil.walk_packages(ps.__path__, "promptstate."):
        m = importlib.import_module(mod.name)
        assert hasattr(m, "__all__"), f"{mod.name} lacks __all__"
        for name in m.__all__:
            assert hasattr(m, name), f"{mod.name}.__all__ names missing {name}"


def test_errors_derive_from_base() -> None:
    for name in ps.__all__:
        obj = getattr(ps, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and name.endswith("Error"):
            assert issubclass(obj, ps.PromptStateError), name
