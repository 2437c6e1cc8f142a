"""The only ways spec text reaches generated files: escaped for the context it lands in.

A spec is data. Its free text (summary, docs, notes, references, the update block
quoted in comments, file names) is written into generated Python, C++, Markdown and
HTML; each function here makes one context safe whatever the text holds, so that
no character sequence can end the docstring or comment, start a line of code, or
add markup. Identifiers are never escaped: they come from the parser, and
`identifier` refuses anything else. The emitters' templates use these as jinja2
filters (`emitters/templates.py`), so a new target's template gets the same ones.
"""
import re
import urllib.parse

# Characters that start markup anywhere in a line (HTML, code, emphasis, links, math, cells);
# `_` only at a word's edge (inside a word it is no emphasis); `#`, `>`, `-`, `+`, `=`, `1.`
# only at the start (headings, quotes, lists).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]<|$]|(?<!\w)_|_(?!\w))")
_MARKDOWN_BLOCK_START = re.compile(r"^(\s*\d*)([-+.)=#>])")
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&",
                  "#": r"\#", "^": r"\^{}", "_": r"\_", "%": r"\%", "~": r"\~{}", "|": r"\textbar{}",
                  "<": r"\textless{}", ">": r"\textgreater{}"}


def _escape_char(ch):
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text, ascii_only=False):
    """`text` with every character that is not printable (line and paragraph separators,
    carriage returns, form feeds, NUL, ...) written as a `\\x..`/`\\u....` escape: the
    result is one line in every language's sense of a line."""
    return "".join(ch if ch.isprintable() and (ch.isascii() or not ascii_only) else _escape_char(ch)
                   for ch in str(text))


def docstring(text):
    """Text for the inside of a Python `\"\"\"` string literal whose value is exactly `text`:
    backslashes are escaped (no escape sequence), so is every double quote followed by
    another or ending the text (no unescaped `""`, hence no closing quotes), and
    every non-printable character but the newline is an escape sequence."""
    text = str(text)
    out = []
    for k, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':   # escaped when it could join a run of three or the closing quotes
            out.append('\\"' if text[k + 1:k + 2] in ('"', "") else '"')
        elif ch == "\n" or ch.isprintable():
            out.append(ch)
        else:
            out.append(_escape_char(ch))
    return "".join(out)


def python_comment(text):
    """One line of a Python `#` comment: nothing in it can end the line."""
    return visible(text)


def c_comment(text):
    """One line of a C/C++/CUDA `//` comment: ASCII only, no line end, and never a trailing
    backslash (which would splice the next line into the comment)."""
    line = visible(text, ascii_only=True).rstrip()
    if line.endswith("\\"):
        line = line[:-1] + "\\x5c"
    return line


def comment_lines(text, prefix):
    """Multi-line text as comment lines, each starting with `prefix` (`# `, `// `)."""
    escape = c_comment if prefix.lstrip().startswith("//") else python_comment
    return "\n".join((prefix + escape(line)).rstrip() for line in str(text).split("\n"))


def markdown(text):
    """Inline Markdown text (a paragraph, a list item, a table cell) that shows `text` as it
    is: one line, and every character that could start markup, HTML, math or a table
    cell boundary is backslash-escaped."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", visible(text))
    return _MARKDOWN_BLOCK_START.sub(r"\1\\\2", escaped)   # "- x", "+ x", "1. x": not a list


def latex_text(text):
    """`text` for LaTeX text mode (inside `\\text{...}`), one line, specials escaped."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in visible(text, ascii_only=True))


def identifier(name):
    """A name the parser accepted, checked once more: generated code has no other names."""
    name = str(name)
    if not (name.isidentifier() and name.isascii()):
        raise ValueError(f"not an ASCII identifier: {name!r}")
    return name


def markdown_code(text):
    """A Markdown code span showing `text`: its fence is longer than any run of backticks in
    it, and `|` is escaped so that a table cell does not end inside it."""
    text = visible(text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return fence + pad + text.replace("|", "\\|") + pad + fence


def url(path):
    """A relative link target: percent-encoded, so it cannot end the link or the attribute."""
    return urllib.parse.quote(str(path), safe="/.-_~")
