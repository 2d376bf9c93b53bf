"""Generate the API reference pages from the packages' ``__all__`` lists.

Every public module (no ``_``-prefixed component, not ``__main__``, not shadowed by a same-named attribute of its
package, defining ``__all__``) of the documented packages gets a page ``api/<module>.rst`` with an autosummary table
of its ``__all__``; autosummary then writes one stub page per object under ``api/generated/``. An object exported by
several modules is documented once, under the first module that exports it (the package before its submodules), and
listed as a re-export elsewhere. A module that lands later gets its page on the next build, with no edit here.

The templates in ``_templates/autosummary`` read two tables this module computes:

* ``instances``: module-level objects that are instances of a public class with public methods (the distribution
  generators ``sawdist.vonmises_fisher`` etc.), documented as data with a table of their class's methods;
* ``external_members``: for each class, the member names its bases from outside our packages define, which its
  page does not list (overrides of PyTensor ``Op`` hooks and the like);
* ``inherited_stop``: for each class, the classes from outside our packages in its MRO, so that ``:inherited-members:``
  shows methods inherited from our own (possibly private) bases, and nothing from ``object``, exceptions, PyTorch or
  PyMC.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

#: Packages whose public modules are documented, in page order.
PACKAGES = ("sawdist", "sawdist.extraction")
#: Members a user calls on subclasses of external bases (PyMC distributions, torch modules); other overrides of an
#: external base's methods (PyTensor ``Op`` hooks such as ``perform`` or ``c_code``) are implementation details,
#: and their docstrings, inherited from the external base, are not numpydoc.
EXTERNAL_OVERRIDES_SHOWN = frozenset({"dist", "logp", "logcdf", "support_point", "forward", "rng_fn"})

#: Re-exported name -> the name it is documented under (filled by :func:`collect`), so that a cross-reference to
#: ``sawdist.capacity.fit_family`` finds ``sawdist.fit_family`` wherever the object's page is.
ALIASES: dict[str, str] = {}

#: Modules documented by a hand-written page instead (relative to ``api/``).
SPECIAL_PAGES = {"sawdist.cli": "../cli"}


def _is_private(modname: str) -> bool:
    return any(part.startswith("_") for part in modname.split("."))


def public_modules(packages=PACKAGES) -> list[str]:
    """Names of the documented modules, the top package first and then its submodules in alphabetical order."""
    found = []
    for package_name in packages:
        package = importlib.import_module(package_name)
        names = [package_name]
        if hasattr(package, "__path__"):
            names += sorted(
                info.name
                for info in pkgutil.walk_packages(package.__path__, prefix=package_name + ".")
                if not _is_private(info.name) and not info.name.endswith("__main__")
            )
        for name in names:
            parent, _, leaf = name.rpartition(".")
            module = importlib.import_module(name)
            if parent:
                shadow = getattr(importlib.import_module(parent), leaf, module)
                if shadow is not module:  # e.g. the function sawdist.fit hides the module sawdist.fit
                    continue
            if getattr(module, "__all__", None) is not None and name not in found:
                found.append(name)
    return found


def _ours(obj) -> bool:
    return (getattr(obj, "__module__", None) or "").split(".")[0] in PACKAGES


def _public_methods(cls) -> list[str]:
    return sorted(
        name for name, member in inspect.getmembers(cls) if not name.startswith("_") and callable(member)
    )


def collect(modules):
    """Return ``(pages, instances, inherited_stop, external_members)``.

    ``pages[module] = (documented_here, reexported)``; ``external_members[class]`` are the names defined by the
    class's bases from outside our packages (hidden from its page unless in :data:`EXTERNAL_OVERRIDES_SHOWN`).
    """
    canonical: dict[int, str] = {}
    pages = {}
    instances = {}
    inherited_stop = {}
    external_members = {}
    public_classes = {}
    for modname in modules:
        module = importlib.import_module(modname)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and _ours(obj):
                public_classes.setdefault(obj, f"{modname}.{name}")
    for modname in modules:
        module = importlib.import_module(modname)
        here, elsewhere = [], []
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                elsewhere.append(obj.__name__)
                continue
            key = id(obj)
            if key in canonical and not isinstance(obj, (int, float, str, bool, type(None))):
                elsewhere.append(canonical[key])
                ALIASES[f"{modname}.{name}"] = canonical[key]
                continue
            fullname = f"{modname}.{name}"
            canonical[key] = fullname
            here.append(name)
            if inspect.isclass(obj):
                external_members[fullname] = sorted(
                    {name for base in inspect.getmro(obj)[1:] if not _ours(base) for name in vars(base)}
                    - EXTERNAL_OVERRIDES_SHOWN
                )
                inherited_stop[fullname] = ",".join(
                    sorted({base.__name__ for base in inspect.getmro(obj)[1:] if not _ours(base)} | {"object"})
                )
            elif type(obj) in public_classes:
                methods = _public_methods(type(obj))
                if methods:
                    instances[fullname] = {"cls": public_classes[type(obj)], "methods": methods}
        pages[modname] = (here, elsewhere)
    return pages, instances, inherited_stop, external_members


def _title(text: str) -> str:
    return f"{text}\n{'=' * len(text)}\n"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def write_pages(outdir: Path, pages) -> None:
    """Write ``api/index.rst`` and one page per module; remove the pages of modules that are gone."""
    lines = [
        _title("API reference"),
        "Every public name of every public module, generated from the modules' ``__all__`` and their numpydoc",
        "docstrings. The command line is documented in :doc:`../cli`.",
        "",
    ]
    for package in PACKAGES:
        # a module belongs to the most specific documented package it is in (sawdist.extraction.* not to sawdist)
        mods = [m for m in pages if max((p for p in PACKAGES if m == p or m.startswith(p + ".")), key=len) == package]
        if not mods:
            continue
        lines += [".. toctree::", f"   :caption: {package}", "   :maxdepth: 1", ""]
        lines += [f"   {m}" for m in mods]
        lines.append("")
    _write_if_changed(outdir / "index.rst", "\n".join(lines))

    for modname, (here, elsewhere) in pages.items():
        text = [_title(f"``{modname}``"), f".. automodule:: {modname}", "   :no-members:", "",
                f".. currentmodule:: {modname}", ""]
        if here:
            text += [".. autosummary::", "   :toctree: generated/", "   :nosignatures:", ""]
            text += [f"   {name}" for name in here]
            text.append("")
        submodules = [name for name in elsewhere if name in pages or name in SPECIAL_PAGES]
        reexports = [name for name in elsewhere if name not in submodules]
        if submodules:
            text += [".. rubric:: Submodules", ""]
            text += [f"* :doc:`{SPECIAL_PAGES.get(name, name)}`" for name in submodules]
            text.append("")
        if reexports:
            # currentmodule None: the full names below may start with this module's name (autosummary warns then)
            text += [".. rubric:: Also available here", "", ".. currentmodule:: None", "",
                     ".. autosummary::", "   :nosignatures:", ""]
            text += [f"   ~{name}" for name in reexports]
            text.append("")
        _write_if_changed(outdir / f"{modname}.rst", "\n".join(text))

    for stale in outdir.glob("*.rst"):
        if stale.stem != "index" and stale.stem not in pages:
            stale.unlink()
    generated = outdir / "generated"
    if generated.is_dir():  # stubs of objects that are gone would otherwise stay in the build and fail to import
        expected = {f"{m}.{name}" for m, (here, _) in pages.items() for name in here}
        for stub in generated.glob("*.rst"):
            if stub.stem not in expected:
                stub.unlink()
