"""Reading a spec file: TOML data plus where each key and value stands in the file.

`tomllib` gives the data but no positions; errors in a spec must name line and
column, so a small scanner records the position of every key (top level, table
and inline-table keys) and of every string value. Nothing in a spec is executed.
"""
import os
import re
from pathlib import Path

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .errors import SpecError

_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class Position:
    """Where a key and its value start (1-based line and column)."""

    __slots__ = ("line", "col", "value_line", "value_col", "trimmed_newline")

    def __init__(self, line, col, value_line, value_col, trimmed_newline=False):
        self.line, self.col = line, col
        self.value_line, self.value_col = value_line, value_col
        # a multi-line string whose first newline TOML drops: content starts one line down
        self.trimmed_newline = trimmed_newline


class SpecFile:
    """A parsed spec: `data` as TOML gives it and `positions` keyed by key path."""

    def __init__(self, path, text):
        self.path = str(path)
        self.text = text
        try:
            self.data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise _toml_error(err, self.path, text) from None
        except ValueError:   # Python refuses to convert an integer of more than 4300 digits
            run = re.search(r"\d[\d_]{4000,}", text)
            line, col = _linecol(text, run.start()) if run else (1, 1)
            raise SpecError("invalid TOML: a number beyond the limit of 4000 digits", self.path,
                            line, col) from None
        self.positions = _scan_positions(text)

    @classmethod
    def read(cls, path):
        path = Path(path)
        try:   # bytes, decoded without newline translation: positions are those of the file
            text = path.read_bytes().decode("utf-8")
        except OSError as err:
            raise SpecError(f"cannot read spec: {err.strerror}", path) from None
        except UnicodeDecodeError as err:
            line, col = _linecol(err.object.decode("utf-8", "replace"),
                                 len(err.object[:err.start].decode("utf-8", "replace")))
            raise SpecError(f"spec is not valid UTF-8 ({err.reason})", path, line, col) from None
        return cls(path, text)

    def where(self, *keys, value=False):
        """(line, col) of a key path such as ('hyperparameters', 'beta1', 'range')."""
        pos = self.positions.get(tuple(keys))
        while pos is None and len(keys) > 1:  # fall back to the enclosing key
            keys = keys[:-1]
            pos = self.positions.get(tuple(keys))
        if pos is None:
            return None, None
        return (pos.value_line, pos.value_col) if value else (pos.line, pos.col)

    def error(self, message, *keys, value=False):
        line, col = self.where(*keys, value=value) if keys else (None, None)
        if line is None:   # no key to point at: the file's start
            line, col = 1, 1
        return SpecError(message, self.path, line, col)

    def string_origin(self, *keys):
        """(line, col) in the file of the first character of a string value's content."""
        pos = self.positions.get(tuple(keys))
        if pos is None:
            return 1, 1
        if pos.trimmed_newline:
            return pos.value_line + 1, 1
        line = self.text.split("\n")[pos.value_line - 1]   # lines as TOML counts them
        opening = line[pos.value_col - 1:pos.value_col + 2]
        delimiter = 3 if opening in ('"""', "'''") else 1
        return pos.value_line, pos.value_col + delimiter

    def verbatim(self, *keys):
        """Whether a string value's content is its text in the file (a literal string, or a
        basic string without escapes), so that positions inside it are file positions."""
        pos = self.positions.get(tuple(keys))
        if pos is None:
            return False
        scanner = _Scanner(self.text)
        scanner.i = scanner.starts[pos.value_line - 1] + pos.value_col - 1
        start = scanner.i
        if scanner.peek() == "'":
            return True
        scanner.string()
        return "\\" not in self.text[start:scanner.i]


def _linecol(text, offset):
    """1-based (line, col) of a character offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _toml_error(err, path, text):
    message = str(err)
    match = _TOML_POS.search(message)
    if match:
        return SpecError("invalid TOML: " + message[: match.start()], path,
                         int(match.group(1)), int(match.group(2)))
    match = _TOML_END.search(message)
    if match:
        lines = text.rstrip("\n").split("\n")
        return SpecError("invalid TOML: " + message[: match.start()], path,
                         len(lines), len(lines[-1]) + 1)
    return SpecError("invalid TOML: " + message, path, 1, 1)   # tomllib gave no position


class _Scanner:
    """Walks TOML text far enough to find keys, values and string extents."""

    def __init__(self, text):
        self.text = text
        self.i = 0
        # line starts for offset -> (line, col)
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def linecol(self, offset):
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, offset - self.starts[lo] + 1

    def peek(self, n=1):
        return self.text[self.i:self.i + n]

    def skip_space(self, newlines=False):
        while self.i < len(self.text):
            ch = self.text[self.i]
            if ch in " \t" or (newlines and ch in "\r\n"):
                self.i += 1
            elif ch == "#":
                while self.i < len(self.text) and self.text[self.i] != "\n":
                    self.i += 1
            else:
                break

    def key(self):
        """A dotted key; returns its parts (quoted parts unquoted)."""
        parts = []
        while True:
            self.skip_space()
            ch = self.peek()
            if ch in "\"'":
                start = self.i
                self.string()
                parts.append(self.text[start + 1:self.i - 1])
            else:
                match = _BARE_KEY.match(self.text, self.i)
                if not match:
                    break
                parts.append(match.group())
                self.i = match.end()
            self.skip_space()
            if self.peek() == ".":
                self.i += 1
                continue
            break
        return parts

    def string(self):
        """Skip one string literal; returns True when it was multi-line and began with a newline."""
        quote = self.peek()
        if self.peek(3) == quote * 3:
            self.i += 3
            trimmed = self.peek() == "\n" or self.peek(2) == "\r\n"
            end = self.text.find(quote * 3, self.i)
            while end != -1 and quote == '"' and _escaped(self.text, end):
                end = self.text.find(quote * 3, end + 1)
            end = len(self.text) if end == -1 else end + 3
            while end < len(self.text) and self.text[end] == quote:  # up to two quotes may end the content
                end += 1
            self.i = end
            return trimmed
        self.i += 1
        while self.i < len(self.text) and self.text[self.i] != quote:
            if quote == '"' and self.text[self.i] == "\\":
                self.i += 1
            if self.text[self.i] == "\n":
                break
            self.i += 1
        self.i += 1
        return False

    def value(self, prefix, positions):
        """Skip a value; inline tables record their keys under `prefix`."""
        ch = self.peek()
        if ch in "\"'":
            return self.string()
        if ch == "{":
            self.i += 1
            while True:
                self.skip_space()
                if self.peek() in ("}", ""):
                    self.i += 1
                    return False
                key_start = self.i
                parts = self.key()
                self.skip_space()
                if self.peek() != "=" or not parts:
                    return False  # tomllib already accepted the file; be lenient
                self.i += 1
                self.skip_space()
                value_start = self.i
                path = prefix + tuple(parts)
                trimmed = False
                positions[path] = None  # placeholder to keep insertion order
                trimmed = self.value(path, positions)
                positions[path] = Position(*self.linecol(key_start), *self.linecol(value_start), trimmed)
                self.skip_space()
                if self.peek() == ",":
                    self.i += 1
        if ch == "[":
            self.i += 1
            depth = 1
            while self.i < len(self.text) and depth:
                self.skip_space(newlines=True)
                ch = self.peek()
                if ch in "\"'":
                    self.string()
                    continue
                if ch == "{":
                    self.value(prefix, {})
                    continue
                depth += {"[": 1, "]": -1}.get(ch, 0)
                self.i += 1
            return False
        while self.i < len(self.text) and self.text[self.i] not in ",}\n#":
            self.i += 1
        return False


def _escaped(text, index):
    count = 0
    while index > 0 and text[index - 1] == "\\":
        count += 1
        index -= 1
    return count % 2 == 1


def _scan_positions(text):
    scanner = _Scanner(text)
    positions = {}
    table = ()
    while scanner.i < len(text):
        scanner.skip_space(newlines=True)
        if scanner.i >= len(text):
            break
        if scanner.peek() == "[":
            array_table = scanner.peek(2) == "[["
            scanner.i += 2 if array_table else 1
            start = scanner.i
            table = tuple(scanner.key())
            positions.setdefault(table, Position(*scanner.linecol(start), *scanner.linecol(start)))
            while scanner.i < len(text) and text[scanner.i] != "\n":
                scanner.i += 1
            continue
        key_start = scanner.i
        parts = scanner.key()
        scanner.skip_space()
        if not parts or scanner.peek() != "=":
            while scanner.i < len(text) and text[scanner.i] != "\n":
                scanner.i += 1
            continue
        scanner.i += 1
        scanner.skip_space()
        value_start = scanner.i
        path = table + tuple(parts)
        trimmed = scanner.value(path, positions)
        positions[path] = Position(*scanner.linecol(key_start), *scanner.linecol(value_start), trimmed)
    return positions


class MergedSpec:
    """A spec merged with the specs it extends (`extends = "../adam.toml"`).

    The most derived file wins key by key: top-level keys are replaced, table
    entries ([hyperparameters], [states], [options]) are replaced or added one by
    one, and `remove = [...]` drops inherited entries. Every value keeps the file
    and position it came from, so errors point into the right file.
    """

    TABLES = ("hyperparameters", "states", "options", "name_flags")

    def __init__(self, files):
        self.files = files                     # base first, most derived last
        self.path = files[-1].path
        self.text = files[-1].text
        self.data = {}
        self._origin = {}
        for spec in files:
            self._apply(spec)

    def _apply(self, spec):
        for name in spec.data.get("remove", []) if isinstance(spec.data.get("remove"), list) else []:
            for table in ("hyperparameters", "states"):
                if name in self.data.get(table, {}):
                    del self.data[table][name]
        for key, value in spec.data.items():
            if key in ("extends", "remove"):
                self._origin[(key,)] = spec
                continue
            if key in self.TABLES and isinstance(value, dict) and isinstance(self.data.get(key), dict):
                table = self.data[key]
                for entry, entry_value in value.items():
                    table[entry] = entry_value
                    self._origin[(key, entry)] = spec
                self._origin.setdefault((key,), spec)
                continue
            self.data[key] = dict(value) if isinstance(value, dict) else value
            self._origin[(key,)] = spec
            if isinstance(value, dict):
                for entry in value:
                    self._origin[(key, entry)] = spec

    def owner(self, *keys):
        """The file that provided a key path (the derived file when none did)."""
        while keys:
            spec = self._origin.get(tuple(keys[:2]))
            if spec is not None:
                return spec
            keys = keys[:-1]
        return self.files[-1]

    def where(self, *keys, value=False):
        return self.owner(*keys).where(*keys, value=value)

    def error(self, message, *keys, value=False):
        return self.owner(*keys).error(message, *keys, value=value)

    def string_origin(self, *keys):
        return self.owner(*keys).string_origin(*keys)

    def verbatim(self, *keys):
        return self.owner(*keys).verbatim(*keys)


def read_with_bases(path, text=None):
    """A spec and everything it extends, as a MergedSpec."""
    chain = []
    seen = set()
    current = SpecFile(path, text) if text is not None else SpecFile.read(path)
    while True:
        chain.append(current)
        seen.add(Path(current.path).resolve())
        base = current.data.get("extends")
        if base is None:
            break
        if not isinstance(base, str) or not base.endswith(".toml"):
            raise current.error("extends must name a spec file, such as \"../adam.toml\"", "extends", value=True)
        base_path = Path(os.path.normpath(Path(current.path).parent / base))
        if base_path.resolve() in seen:
            raise current.error(f"extends makes a cycle through {base}", "extends", value=True)
        if not base_path.is_file():
            raise current.error(f"extends: no spec file {base} next to {Path(current.path).name}",
                                "extends", value=True)
        try:
            current = SpecFile.read(base_path)
        except SpecError as err:   # reported where the derived spec names it, and where it is
            if err.path != str(base_path):
                raise
            raise current.error(f"extends {base}: {err}", "extends", value=True) from None
    return MergedSpec(list(reversed(chain)))
