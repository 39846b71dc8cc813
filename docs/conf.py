"""Sphinx configuration: the API reference, built from the docstrings.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(``pip install -e ".[docs]"``; ``.ci/run`` builds it with warnings as errors).
Nothing is fetched at build time: no intersphinx, a theme that ships with Sphinx.
"""
import argparse
import sys
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's diffjpeg, as installed with -e

import diffjpeg  # noqa: E402

project = "diffjpeg"
author = "the diffjpeg authors"
copyright = "2026, the diffjpeg authors"
release = version = diffjpeg.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode", "myst_parser"]  # myst: the guide pages, Markdown
exclude_patterns = ["_build"]
myst_heading_anchors = 3  # "page.md#a-heading" links resolve
html_theme = "alabaster"  # ships with Sphinx: no download, no extra dependency
html_theme_options = {"description": "JPEG as a differentiable PyTorch layer, bit-exact with libjpeg-turbo"}

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # dataclass "Attributes:" as fields, not a second description of each
napoleon_custom_sections = [("Shape", "params_style")]


class CommandHelp(SphinxDirective):
    """``.. command-help::``: the ``--help`` of ``diffjpeg`` and each subcommand, from the parser itself."""

    def run(self):
        from diffjpeg.tools.cli import parser

        top = parser()
        sections = [("diffjpeg", top)]
        for action in top._actions:  # argparse keeps its subparsers here, and nowhere public
            if isinstance(action, argparse._SubParsersAction):
                sections += [(f"diffjpeg {name}", sub) for name, sub in action.choices.items()]
        out = []
        for title, p in sections:
            section = nodes.section(ids=[nodes.make_id(title)])
            section += nodes.title(text=title)
            section += nodes.literal_block(text=p.format_help())
            out.append(section)
        return out


def setup(app):
    app.add_directive("command-help", CommandHelp)
