"""The hook reference in Markdown, generated from ``hookspecs`` (for ``docs/plugins.md``)."""

from __future__ import annotations

import inspect
import re

from ordergraph.core import hookspecs


def hook_reference() -> str:
    parts = []
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(function, "ordergraph_spec"):
            continue
        args = ", ".join(inspect.signature(function).parameters)
        doc = _markdown(inspect.cleandoc(function.__doc__ or ""))
        parts.append((inspect.getsourcelines(function)[1], f"### `{name}({args})`\n\n{doc}\n"))
    return "\n".join(text for _, text in sorted(parts))


def _markdown(doc: str) -> str:
    """Docstring argument lists ("    name: text") as Markdown bullet lists."""
    doc = re.sub(r"^    (\w+): ", r"- `\1`: ", doc, flags=re.MULTILINE)
    return re.sub(r"^        ", "  ", doc, flags=re.MULTILINE)
