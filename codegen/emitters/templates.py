"""The jinja2 environment shared by the emitters (templates live in codegen/templates/).

Spec text reaches a template only through the filters registered here (all from
`codegen/escaping.py`), one per context: `docstring` (inside a Python `\"\"\"` string),
`pycomment` / `ccomment` (one comment line), `comment_lines(prefix)` (multi-line text as
comment lines), `md` / `md_code` (Markdown text and code spans), `latex_text` and
`ident` (a name the parser accepted; anything else is refused). HTML templates
(`*.html.j2`) are autoescaped: only MathML built by the printers is marked `safe`.
"""
from functools import lru_cache
from pathlib import Path

import jinja2

from .. import escaping

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
MAX_FILE_CHARS = 2_000_000   # printed size of one generated file


class FileTooLarge(Exception):
    """A rendering passed MAX_FILE_CHARS (`size`: the characters rendered when it stopped)."""

    def __init__(self, size):
        super().__init__(size)
        self.size = size


def render_limited(template, **context):
    """`template.render(**context)`, stopped with FileTooLarge once the text passes
    MAX_FILE_CHARS: a spec whose code would be too large costs no more than the limit."""
    parts, size = [], 0
    for part in template.generate(**context):
        size += len(part)
        if size > MAX_FILE_CHARS:
            raise FileTooLarge(size)
        parts.append(part)
    return "".join(parts)


@lru_cache(maxsize=None)
def environment():
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False,
                                            default=False),
    )
    env.filters["py"] = repr
    env.filters["format_param"] = lambda name, pattern: pattern % name
    env.filters["docstring"] = escaping.docstring
    env.filters["pycomment"] = escaping.python_comment
    env.filters["ccomment"] = escaping.c_comment
    env.filters["comment_lines"] = escaping.comment_lines
    env.filters["md"] = escaping.markdown
    env.filters["md_code"] = escaping.markdown_code
    env.filters["latex_text"] = escaping.latex_text
    env.filters["ident"] = escaping.identifier
    env.filters["url"] = escaping.url
    return env
