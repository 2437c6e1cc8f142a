"""SpecError: every mistake in a spec, located by file, line and column.

Kept free of sympy so that `optforge.SpecError` costs nothing to import.
"""


class SpecError(ValueError):
    """A spec file is malformed; `str(err)` reads `path:line:col: message`."""

    def __init__(self, message, path="<spec>", line=None, col=None):
        self.message = message
        self.path = str(path)
        self.line = line
        self.col = col
        super().__init__(self.location() + ": " + message)

    def location(self):
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return where


class SpecErrors(SpecError):
    """Several independent mistakes found in one spec (used by `optforge check`)."""

    def __init__(self, errors):
        self.errors = list(errors)
        first = self.errors[0]
        ValueError.__init__(self, "\n".join(str(e) for e in self.errors))
        self.message, self.path, self.line, self.col = first.message, first.path, first.line, first.col


class Cascade(Exception):
    """A formula read a name whose own definition was wrong: not a new mistake, so it is
    not reported (`optforge check` reports each independent mistake once)."""
