"""From a spec file to a `Rule`: checks every table and key, then parses the formulas.

The spec format is documented in docs/spec-format.md. Every mistake raises
`SpecError` at the position of the key or value at fault.
"""
import difflib
import keyword
import math
import re
from dataclasses import replace
from pathlib import Path

from ..conventions.flavors import DEFAULT_FLAVOR
from ..conventions.reserved import CLASS_ATTRIBUTES
from .errors import Cascade, SpecError, SpecErrors
from .functions import COL_REDUCTIONS, MATRIX_FUNCTIONS, REDUCTION_FUNCTIONS, ROW_REDUCTIONS, WHOLE_REDUCTIONS, Normal
from .ir import (BUILTINS, HOST, MATRIX_VIEWS, OPTIONS, SHAPE_INPUTS, SQUARE_SHAPES, Assign, Hyperparameter, If,
                 Location, Loop, Range, Rule, State)
from .ir import walk as walk_statements
from .parser import BOOL, NUM, RESERVED, FormulaParser, Name
from .spec_file import read_with_bases

TOP_LEVEL = ("name", "summary", "references", "notes", "deviations", "flavor", "extends", "remove",
             "update", "skip_if", "requires", "matrix", "decay_suffixes", "lr_before_count", "sparse_update",
             "hyperparameters", "states", "options", "name_flags", "modes")
MODES = ("train", "eval")       # [modes]: steps run in "train"; "eval" is the point to evaluate
MODE_METHODS = ("train", "eval", "mode")     # runtime/modes.py's methods on such classes
# inputs of a step that a mode (a weight rewrite between steps) has no value for
MODE_UNREADABLE = ("grad", "t", "lr", "initial_lr", "wd", "rescale_grad", "clip_gradient", "ndim", "numel",
                   "rows", "cols", "machine_epsilon")
HYPERPARAMETER_KEYS = ("default", "range", "doc", "choices", "optional", "type", "keyword")
STATE_KEYS = ("init", "dtype", "shape", "when", "doc", "quantize")
TYPES = ("float", "int", "bool", "enum")

_NUMBER = r"[-+]?(?:inf|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_RANGE = re.compile(rf"^\s*([\[(])\s*({_NUMBER})\s*,\s*({_NUMBER})\s*([\])])\s*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# the params-style API's own group keys (initial_lr: where a group keeps the built-in input)
PARAM_GROUP_KEYS = ("params", "lr", "weight_decay", "initial_lr")
MAX_HYPERPARAMETERS = 64
MAX_LIST = 16           # elements of a list hyperparameter
MAX_STATES = 32


def _runtime_names():
    """Attributes of the optimizer classes the runtime builds (conventions/reserved.py): a
    hyperparameter becomes a property of its class, so it must not hide one."""
    return CLASS_ATTRIBUTES


def load_rule(path, text=None):
    """Parse and check one spec file (and the specs it extends); returns a `Rule` or raises
    `SpecError`."""
    stem = Path(path).stem
    if not _IDENT.match(stem) or keyword.iskeyword(stem):
        raise SpecError(f"spec file name '{Path(path).name}' must be a Python identifier followed by "
                        "'.toml' (it names the generated module)", path, 1, 1)
    if stem.startswith("_"):    # `__init__.toml` would generate the packages' own __init__.py
        raise SpecError(f"spec file name '{Path(path).name}' must not start with '_' (it names the "
                        "generated module; such names are reserved)", path, 1, 1)
    return _Loader(read_with_bases(path, text)).rule()


class _Loader:
    def __init__(self, spec):
        self.spec = spec
        self.data = spec.data
        self.errors = []          # independent mistakes, reported together
        self.poisoned = set()     # names whose entry was wrong: formulas reading them are not reported

    def _attempt(self, check, *args, poison=None):
        """Run one independent check; its mistake is recorded and the rest still runs."""
        try:
            return check(*args)
        except SpecError as err:
            self.errors.append(err)
        except Cascade:
            pass
        if poison is not None:
            self.poisoned.add(poison)
        return None

    def _raise_errors(self):
        if self.errors:   # in the order found: the first is the primary mistake
            raise self.errors[0] if len(self.errors) == 1 else SpecErrors(self.errors)

    def error(self, message, *keys, value=False):
        return self.spec.error(message, *keys, value=value)

    def loc(self, *keys):
        line, col = self.spec.where(*keys)
        return Location(self.spec.owner(*keys).path, line, col)

    def parser(self, key, names, errors=None):
        """A formula parser positioned at the string value of a top-level key."""
        return FormulaParser(names, self.spec.owner(key).path, self.spec.string_origin(key),
                             errors=errors, poisoned=self.poisoned, verbatim=self.spec.verbatim(key))

    # -- top level ---------------------------------------------------------
    def rule(self):
        """The Rule; every independent mistake found is raised together (SpecErrors)."""
        try:
            return self._rule()
        except SpecError as err:
            if self.errors and not isinstance(err, SpecErrors) and err not in self.errors:
                self.errors.append(err)
                self._raise_errors()
            raise
        except Cascade:
            self._raise_errors()
            raise

    def _rule(self):
        self._check_scope()
        for spec in self.spec.files:
            for key in spec.data:
                if key not in TOP_LEVEL:
                    self.errors.append(spec.error(_unknown("key", key, TOP_LEVEL), key))
            remove = spec.data.get("remove", [])
            if not isinstance(remove, list) or not all(isinstance(r, str) for r in remove):
                raise spec.error("remove must be a list of hyperparameter or state names", "remove", value=True)
        name = self._attempt(self._name)
        flavor = self._attempt(self._flavor)
        update = self._attempt(self._string, "update", True)   # None: reported; the tables are still checked
        learning_rate, hyperparameters = self._hyperparameters()
        names = {b.name: Name(b.name, b.kind, NUM, "shape input" if b.name in SHAPE_INPUTS else "builtin",
                              b.optional, b.assignable)
                 for b in BUILTINS.values()}
        for hp in hyperparameters:
            hp_type = {"bool": BOOL, "enum": "enum"}.get(hp.type, NUM)
            finite = hp.type == "int" and hp.range is not None and math.isfinite(hp.range.lo) \
                and math.isfinite(hp.range.hi) and not hp.optional
            names[hp.name] = Name(hp.name, HOST, hp_type, "hyperparameter", hp.optional, False, hp.choices,
                                  int_range=(hp.range.lo, hp.range.hi) if finite else None,
                                  list_of=hp.list, elements=(int(hp.name.rsplit("_", 1)[1]),) if hp.list else ())
        for list_name in dict.fromkeys(hp.list for hp in hyperparameters if hp.list):
            elements = tuple(hp.name for hp in hyperparameters if hp.list == list_name)
            names[list_name] = Name(list_name, HOST, "list", "hyperparameter", False, False, elements=elements)
        name_flags = self._name_flags(names)
        for flag in name_flags:
            names[flag] = Name(flag, HOST, BOOL, "name flag", False, False)
        states = self._states(names)
        statements = []
        if update is not None:
            statements, states = self._parse_update(update, names, states)
            if statements or not self._update_failed:   # a wrong statement still counts as assigning its target
                self._check_writes(statements, states)
        for st in states:
            names[st.name] = Name(st.name, st.kind, NUM, "state", False, True, group=st.shape == "group",
                                  shape=st.matrix_shape)
        skip_if, skip_text = None, ""
        if "skip_if" in self.data:
            skip_text = self._string("skip_if")
            skip_if = self._attempt(self._condition, "skip_if", names, skip_text)
        requires, requires_text = None, ""
        if "requires" in self.data:
            requires_text = self._string("requires")
            requires = self._attempt(self._condition, "requires", names, requires_text)
        options = self._options()
        matrix = self._attempt(self._matrix, statements, states)
        modes = self._attempt(self._modes, names, states) or {}
        self._raise_errors()
        return Rule(
            name=name, key=name.lower(), flavor=flavor,
            summary=self._string("summary"),
            references=self._strings("references"),
            notes=self._strings("notes"),
            deviations=self._strings("deviations"),
            learning_rate=learning_rate,
            hyperparameters=tuple(hyperparameters),
            states=tuple(states),
            statements=statements,
            update_text=update,
            skip_if=skip_if, skip_if_text=skip_text,
            requires=requires, requires_text=requires_text, name_flags=name_flags,
            decay_suffixes=self._strings("decay_suffixes") if "decay_suffixes" in self.data else None,
            lr_before_count=self._flag("lr_before_count"),
            sparse_update=self._choice("sparse_update", ("standard", "lazy")),
            options=options,
            path=self.spec.path,
            source=self.spec.text,
            extends=str(self.spec.files[0].path) if len(self.spec.files) > 1 else "",
            matrix=matrix,
            modes=modes,
        )

    def _matrix(self, statements, states):
        """The matrix view: the `matrix` key, else "first_rest" for a rule that uses matrix
        functions or column states, else "" (an element-wise rule)."""
        if "matrix" in self.data:
            view = self._choice("matrix", MATRIX_VIEWS)
            if view == "last_two":
                _per_matrix_scalars(statements, states)
            return view
        uses = any((isinstance(stmt, Assign) and stmt.expr.has(*MATRIX_FUNCTIONS))
                   or (isinstance(stmt, Loop) and isinstance(stmt.count, str))   # repeated by NumPy code
                   for stmt in walk_statements(statements))
        return "first_rest" if uses or any(st.shape in ("cols", *SQUARE_SHAPES) for st in states) else ""

    def _modes(self, names, states):
        """[modes]: {"train": block, "eval": block}, each a straight-line, element-wise rewrite
        of the weight from the states and hyperparameters (Schedule-Free's y and x); returns
        {mode: (statements, text)}."""
        table = self._table("modes")
        if not table:
            return {}
        for key in table:
            if key not in MODES:
                raise self.error(_unknown("mode", key, MODES), "modes", key)
        for key in MODES:
            if key not in table:
                raise self.error(f"[modes] needs both {' and '.join(MODES)}; '{key}' is missing", "modes")
        if self.data.get("matrix") or any(st.shape in ("rows", "cols", *SQUARE_SHAPES) or st.when is not None
                                          for st in states):
            raise self.error("[modes] is for element-wise rules whose states always exist (no matrix "
                             "view, no row or column states, no state with 'when')", "modes")
        for name in MODE_METHODS:   # the classes of a rule with modes have these methods
            if name in names and names[name].role == "hyperparameter":
                raise self.error(f"hyperparameter '{name}' would hide the method {name}() of a rule "
                                 "with [modes]: give it another name", "hyperparameters", name)
        scope = {name: meta for name, meta in names.items() if meta.role != "name flag"}
        scope["weight"] = replace(scope["weight"], assignable=True)
        for st in states:
            scope[st.name] = Name(st.name, st.kind, NUM, "state", False, False)
        out = {}
        for key in MODES:
            text = table[key]
            keys = ("modes", key)
            if not isinstance(text, str) or not text.strip():
                raise self.error(f"mode '{key}' must be a formula string such as \"weight = x\"", *keys, value=True)
            parser = FormulaParser(scope, self.spec.owner(*keys).path, self.spec.string_origin(*keys),
                                   poisoned=self.poisoned, verbatim=self.spec.verbatim(*keys))
            statements = parser.parse_block(text)
            assigned = set()
            for stmt in statements:
                if not isinstance(stmt, Assign):
                    raise SpecError(f"mode '{key}' is straight-line assignments: no if or for",
                                    stmt.loc.path, stmt.loc.line, stmt.loc.col)
                read = sorted(sym.name for sym in stmt.expr.free_symbols
                              if sym.name in MODE_UNREADABLE and sym.name not in assigned)
                if read:
                    raise SpecError(f"mode '{key}' cannot read '{read[0]}': a mode rewrites the weight "
                                    "between steps, from the states and hyperparameters only",
                                    stmt.loc.path, stmt.loc.line, stmt.loc.col)
                if stmt.expr.has(Normal, *REDUCTION_FUNCTIONS, *MATRIX_FUNCTIONS):
                    raise SpecError(f"mode '{key}' must be element-wise: no norms, means, noise or "
                                    "matrix functions", stmt.loc.path, stmt.loc.line, stmt.loc.col)
                assigned.add(stmt.target)
            if "weight" not in assigned:
                raise self.error(f"mode '{key}' never assigns 'weight'", *keys, value=True)
            out[key] = (statements, text)
        return out

    def _condition(self, key, names, text):
        condition = self.parser(key, names).parse_condition(text, ("hyperparameter", "builtin", "shape input",
                                                                          "name flag"))
        if not condition.free_symbols:
            raise self.error(f"'{key}' is always {'true' if condition else 'false'}: it must read a "
                             "hyperparameter or an input", key, value=True)
        return condition

    def _name(self):
        name = self._string("name", required=True)
        if not _IDENT.match(name) or keyword.iskeyword(name):
            raise self.error(f"name '{name}' must be a Python identifier (it names the optimizer class)",
                             "name", value=True)
        if name.startswith("_"):
            # lower-cased, it starts every kernel symbol: C++ reserves global names starting with
            # '_', and the runtime looks up no entry point whose name does
            raise self.error(f"name '{name}' must not start with '_' (it names the optimizer class and the "
                             "generated kernels; such names are reserved)", "name", value=True)
        return name

    def _flavor(self):
        flavor = self._string("flavor") or DEFAULT_FLAVOR
        if not _IDENT.match(flavor):
            raise self.error(f"flavor '{flavor}' must be an identifier such as 'mxnet2'", "flavor", value=True)
        return flavor

    def _check_scope(self):
        """Top-level keys written after a [table] header belong to that table in TOML: say so
        (once, where the key is) instead of reporting a missing key and a strange entry."""
        self.misplaced = set()
        for spec in self.spec.files:
            for table in ("hyperparameters", "states", "options", "name_flags", "modes"):
                entries = spec.data.get(table)
                if not isinstance(entries, dict):
                    continue
                for key in list(entries):
                    value = entries[key]
                    if key in TOP_LEVEL and key not in spec.data and isinstance(value, (str, list)) \
                            and value not in ("zeros", "weight"):   # a state may be called so
                        self.errors.append(spec.error(
                            f"'{key}' is inside the [{table}] table: in TOML every key after a [table] "
                            f"header belongs to that table; move '{key}' above the first [table] header",
                            table, key))
                        self.misplaced.add(key)
                        if isinstance(self.data.get(table), dict):   # the merged table
                            self.data[table].pop(key, None)

    def _parse_update(self, update, names, states):
        """Parse the update; scalar states assigned from a reduction become device scalars
        (a second parse then reads them as such from the first statement on)."""
        for _ in range(2):
            scope = dict(names)
            for st in states:
                scope[st.name] = Name(st.name, st.kind, NUM, "state", False, True, group=st.shape == "group",
                                      shape=st.matrix_shape)
            errors = []
            parser = self.parser("update", scope, errors)
            before = len(self.errors)
            statements = self._attempt(parser.parse_block, update) or []
            self._update_failed = len(self.errors) > before     # the block as a whole (syntax)
            self._assigned_by_wrong = parser.poisoned
            if errors or not parser.device_states:
                self.errors += errors
                return statements, states
            states = [replace(st, device=True) if st.name in parser.device_states else st for st in states]
        return statements, states

    def _string(self, key, required=False):
        if key not in self.data:
            if required:
                if key in self.misplaced or any(f"did you mean '{key}'" in e.message for e in self.errors):
                    raise Cascade(key)   # a misspelt key was already reported
                raise SpecError(f"missing required key '{key}'", self.spec.path, 1, 1)
            return ""
        value = self.data[key]
        if not isinstance(value, str):
            raise self.error(f"'{key}' must be a string, not {_type_name(value)}", key, value=True)
        if required and not value.strip():
            raise self.error(f"'{key}' must not be empty", key, value=True)
        return value

    def _strings(self, key):
        value = self.data.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(f"'{key}' must be a list of strings", key, value=True)
        return tuple(value)

    def _table(self, key):
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.error(f"'{key}' must be a table ([{key}])", key)
        return value

    # -- hyperparameters ---------------------------------------------------
    def _hyperparameters(self):
        table = self._table("hyperparameters")
        if len(table) > MAX_HYPERPARAMETERS:
            raise self.error(f"{len(table)} hyperparameters: more than the limit of {MAX_HYPERPARAMETERS}",
                             "hyperparameters")
        learning_rate = 0.01  # MXNet's base default when a class sets none
        out = []
        for name, entry in table.items():
            keys = ("hyperparameters", name)
            if name == "learning_rate":
                learning_rate = self._learning_rate(entry, keys)
                continue
            if isinstance(entry, list) or (isinstance(entry, dict) and isinstance(entry.get("default"), list)):
                elements = self._attempt(self._list_hyperparameter, name, entry, keys, poison=name)
                out.extend(elements or ())
                continue
            hp = self._attempt(self._new_hyperparameter, name, entry, keys, poison=name)
            if hp is not None:
                out.append(hp)
        declared = set(table)
        for hp in out:
            if hp.list and hp.name in declared:
                self.errors.append(self.error(f"hyperparameter '{hp.name}' has the name of element "
                                              f"{hp.name.rsplit('_', 1)[1]} of the list '{hp.list}'",
                                              "hyperparameters", hp.name))
        return learning_rate, out

    def _list_hyperparameter(self, name, entry, keys):
        """`betas = [0.0, 0.9, 0.99]` (or `{ default = [...], range = ..., doc = ... }`): a
        list of numbers of a fixed length, read in the update as `betas[0]`, ...; each element
        is a hyperparameter of its own (`betas_0`, ...) checked against the list's range, and
        every API family takes the list as one argument (a tuple of that length)."""
        self._check_new_name(name, keys, "hyperparameter")
        entry = {"default": entry} if isinstance(entry, list) else entry
        for key in ("optional", "choices"):
            if key in entry:
                raise self.error(f"a list hyperparameter has no '{key}': its elements are numbers",
                                 *keys, key)
        values = entry["default"]
        if not 2 <= len(values) <= MAX_LIST:
            raise self.error(f"a list hyperparameter has 2 to {MAX_LIST} elements, '{name}' has {len(values)}",
                             *keys, *(("default",) if isinstance(self._table("hyperparameters")[name], dict) else ()),
                             value=True)
        out = []
        for k, value in enumerate(values):
            element = dict(entry, default=value, keyword=entry.get("keyword") or name)
            if isinstance(value, (list, dict)) or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.error(f"element {k} of '{name}' is not a number: a list hyperparameter lists "
                                 "numbers", *keys, value=True)
            hp = self._hyperparameter(f"{name}[{k}]", element, keys)    # messages name it as written
            out.append(replace(hp, name=f"{name}_{k}", list=name))
        return out

    def _new_hyperparameter(self, name, entry, keys):
        self._check_new_name(name, keys, "hyperparameter")
        return self._hyperparameter(name, entry, keys)

    def _learning_rate(self, entry, keys):
        value = entry.get("default") if isinstance(entry, dict) else entry
        if isinstance(entry, dict):
            extra = set(entry) - {"default", "doc"}
            if extra:
                raise self.error("learning_rate takes only a default", *keys)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise self.error("learning_rate default must be a finite number >= 0", *keys, value=True)
        return float(value)

    def _check_new_name(self, name, keys, what):
        if not _IDENT.match(name) or keyword.iskeyword(name):
            raise self.error(f"{what} name '{name}' must be a Python identifier", *keys)
        if name in BUILTINS:    # the most specific message first: lr, wd, t, ... are reserved too
            raise self.error(f"{what} '{name}' clashes with the built-in input '{name}'", *keys)
        if name.startswith("_") or name in RESERVED or name in _runtime_names():
            raise self.error(f"{what} name '{name}' is reserved: the generated code or the optimizer "
                             "class uses it (names starting with '_' are reserved too)", *keys)
        if name in OPTIONS or name in ("learning_rate", "flavor"):
            raise self.error(f"{what} '{name}' clashes with an optimizer option of the same name", *keys)

    def _hyperparameter(self, name, entry, keys):
        if not isinstance(entry, dict):
            entry = {"default": entry}
        entry = self._known_keys(entry, keys, "hyperparameter key", HYPERPARAMETER_KEYS)
        optional = entry.get("optional", False)
        if not isinstance(optional, bool):
            raise self.error("'optional' must be true or false", *keys, "optional", value=True)
        has_default = "default" in entry
        default = entry.get("default")
        hp_type = entry.get("type")
        if hp_type is not None and hp_type not in TYPES:
            raise self.error(f"type '{hp_type}' is not one of {', '.join(TYPES)}", *keys, "type", value=True)
        if not has_default and not optional:
            raise self.error(f"hyperparameter '{name}' needs a default (or optional = true for None)", *keys)
        inferred = _infer_type(default, entry) if has_default else None
        if inferred == "unknown":
            raise self.error(f"default of '{name}' must be a number, a bool or a string, "
                             f"not {_type_name(default)}", *keys, "default", value=True)
        if hp_type is None:
            hp_type = inferred or "float"
        elif inferred is not None and inferred != hp_type and not (hp_type == "float" and inferred == "int"):
            raise self.error(f"default {default!r} of '{name}' is not a {hp_type}", *keys, "default", value=True)
        if hp_type == "float" and has_default:
            default = float(default)
            if math.isnan(default):
                raise self.error(f"default of '{name}' is NaN: a default must be a number", *keys, "default",
                                 value=True)
            # an infinite default is checked against the range below: only a range closed at that
            # infinity ("[0, inf]") takes it, as at run time
            if math.isinf(default) and "range" not in entry:
                raise self.error(f"default of '{name}' is infinite: give a range that includes it, "
                                 "such as \"[0, inf]\"", *keys, "default", value=True)
        choices = ()
        if hp_type == "enum":
            choices = entry.get("choices")
            if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
                raise self.error(f"enum '{name}' needs choices = [\"a\", \"b\", ...]", *keys)
            if len(set(choices)) != len(choices):
                raise self.error(f"choices of '{name}' repeat a value", *keys, "choices", value=True)
            choices = tuple(choices)
            if has_default and default not in choices:
                raise self.error(f"default '{default}' of '{name}' is not one of its choices "
                                 f"({', '.join(choices)})", *keys, "default", value=True)
        elif "choices" in entry:
            raise self.error(f"only enum hyperparameters have choices ('{name}' is a {hp_type})",
                             *keys, "choices")
        hp_range = None
        if "range" in entry:
            if hp_type not in ("float", "int"):
                raise self.error(f"only numeric hyperparameters have a range ('{name}' is a {hp_type})",
                                 *keys, "range")
            hp_range = self._range(entry["range"], keys)
            if has_default and default not in hp_range:   # the name stays usable in formulas
                self.errors.append(self.error(f"default {default!r} of '{name}' is outside its range "
                                              f"{hp_range}", *keys, "default", value=True))
        doc = entry.get("doc", "")
        if not isinstance(doc, str):
            raise self.error("'doc' must be a string", *keys, "doc", value=True)
        keyword = entry.get("keyword", "")
        if not isinstance(keyword, str) or (keyword and not _IDENT.match(keyword)):
            raise self.error("'keyword' must name a params-style argument such as \"betas\"",
                             *keys, "keyword", value=True)
        if (keyword or name) in PARAM_GROUP_KEYS:
            raise self.error(f"'{keyword or name}' is a key of every params-style parameter group "
                             f"({', '.join(PARAM_GROUP_KEYS)}): give the hyperparameter another "
                             "name or keyword", *keys, *(("keyword",) if keyword else ()))
        return Hyperparameter(name, hp_type, default, optional, hp_range, choices, doc, self.loc(*keys),
                              keyword)

    def _known_keys(self, entry, keys, what, allowed):
        """An unknown key is reported and left out; the entry's other keys are still checked."""
        for key in entry:
            if key not in allowed:
                self.errors.append(self.error(_unknown(what, key, allowed), *keys, key))
        return {key: value for key, value in entry.items() if key in allowed}

    def _range(self, text, keys):
        where = keys + ("range",)
        if not isinstance(text, str):
            raise self.error("range must be a string such as \"[0, 1)\"", *where, value=True)
        match = _RANGE.match(text)
        if not match:
            raise self.error(f"range '{text}' is not an interval such as \"[0, 1)\" or \"(0, inf)\"",
                             *where, value=True)
        lo, hi = float(match.group(2)), float(match.group(3))
        if lo > hi:
            raise self.error(f"range '{text}' is empty: its lower end is above its upper end", *where, value=True)
        return Range(lo, hi, match.group(1) == "[", match.group(4) == "]")

    def _name_flags(self, names):
        flags = {}
        for flag, suffixes in self._table("name_flags").items():
            keys = ("name_flags", flag)
            self._check_new_name(flag, keys, "name flag")
            if flag in names:
                raise self.error(f"name flag '{flag}' has the same name as a hyperparameter", *keys)
            if not isinstance(suffixes, list) or not suffixes \
                    or not all(isinstance(x, str) and x for x in suffixes):
                raise self.error(f"name flag '{flag}' must list name suffixes, such as [\"bias\", \"gamma\"]",
                                 *keys, value=True)
            flags[flag] = tuple(suffixes)
        return flags

    # -- states ------------------------------------------------------------
    def _states(self, names):
        if len(self._table("states")) > MAX_STATES:
            raise self.error(f"{len(self._table('states'))} states: more than the limit of {MAX_STATES}", "states")
        out = []
        for name, entry in self._table("states").items():
            state = self._attempt(self._new_state, name, entry, ("states", name), names, poison=name)
            if state is not None:
                out.append(state)
        return out

    def _new_state(self, name, entry, keys, names):
        self._check_new_name(name, keys, "state")
        if name in names or name in self.poisoned:
            raise self.error(f"state '{name}' has the same name as a hyperparameter", *keys)
        return self._state(name, entry, keys, names)

    def _state(self, name, entry, keys, names):
        if not isinstance(entry, dict):
            entry = {"init": entry}
        entry = self._known_keys(entry, keys, "state key", STATE_KEYS)
        if "init" not in entry:
            raise self.error(f"state '{name}' is never initialised: give init = \"zeros\", \"weight\", "
                             "a number (a per-parameter scalar) or a hyperparameter's name", *keys)
        init = entry["init"]
        shape = entry.get("shape")
        if shape in SQUARE_SHAPES:
            return self._square_state(name, entry, keys, names)
        if isinstance(init, str) and init not in ("zeros", "weight"):
            return self._hyperparameter_state(name, entry, keys, names)
        if isinstance(init, bool) or not (isinstance(init, (int, float)) or init in ("zeros", "weight")):
            raise self.error(f"state init {init!r} is not \"zeros\", \"weight\", a number or a "
                             "hyperparameter's name", *keys, *(("init",) if "init" in entry else ()), value=True)
        if isinstance(init, (int, float)):
            if shape not in (None, "scalar", "group"):
                raise self.error("a state initialised with a number is a per-parameter scalar "
                                 "(shape = \"scalar\") or one value per param group (shape = \"group\")",
                                 *keys, "shape", value=True)
            shape, init = shape or "scalar", float(init)
        shape = shape or "weight"
        if shape not in ("weight", "rows", "cols", "scalar", "group"):
            raise self.error(f"state shape '{shape}' is not \"weight\", \"rows\", \"cols\", \"scalar\", "
                             "\"group\", \"rows_by_rows\" or \"cols_by_cols\"", *keys, "shape", value=True)
        if shape in ("scalar", "group") and not isinstance(init, float):
            raise self.error(f"a {shape} state needs a number or a hyperparameter's name as init", *keys)
        if shape == "group" and "when" in entry:
            raise self.error("a group state always exists: remove 'when'", *keys, "when", value=True)
        if shape == "group" and "dtype" in entry:
            raise self.error("a group state is one float64 per param group: remove 'dtype'", *keys, "dtype",
                             value=True)
        if shape in ("rows", "cols") and init == "weight":
            raise self.error(f"a {shape} state cannot be a copy of the weight", *keys, "init", value=True)
        dtype = self._dtype(entry, keys)
        when, when_text = self._when(entry, keys, names)
        doc = entry.get("doc", "")
        quantize = self._quantize(entry, keys, shape == "weight" and init != "weight", shape)
        return State(name, init, dtype, shape, when, when_text, doc, self.loc(*keys), quantize=quantize)

    def _dtype(self, entry, keys):
        """A state's `dtype`: "weight" (the weight's) or "float32"."""
        dtype = entry.get("dtype", "weight")
        if dtype not in ("weight", "float32"):
            raise self.error(f"state dtype '{dtype}' is not \"weight\" or \"float32\"", *keys, "dtype", value=True)
        return dtype

    def _when(self, entry, keys, names):
        """A state's `when`: (sympy condition over hyperparameters and shape inputs, its text),
        or (None, "") for a state that always exists."""
        when_text = entry.get("when", "")
        if "when" not in entry:
            return None, ""
        if not isinstance(when_text, str):
            raise self.error("'when' must be a condition string such as \"momentum != 0\"",
                             *keys, "when", value=True)
        parser = FormulaParser(names, self.spec.owner(*keys).path, self._inline_origin(keys + ("when",)),
                               poisoned=self.poisoned, verbatim=self.spec.verbatim(*keys, "when"))
        return parser.parse_condition(when_text, ("hyperparameter", "shape input")), when_text

    def _square_state(self, name, entry, keys, names):
        """A (rows, rows) or (cols, cols) state, one per matrix of the view (Shampoo's
        preconditioners): init "zeros", or a multiple of the identity, "identity" (1), a
        number or a numeric hyperparameter's name (Shampoo's epsilon * I)."""
        init, shape = entry["init"], entry["shape"]
        if isinstance(init, bool) or not isinstance(init, (int, float, str)) or init == "weight":
            raise self.error(f"a {shape} state starts as \"zeros\", \"identity\", a number or a numeric "
                             "hyperparameter's name (that multiple of the identity)", *keys, "init", value=True)
        if isinstance(init, str) and init not in ("zeros", "identity"):
            meta = names.get(init)
            if meta is None or meta.role != "hyperparameter" or meta.type != NUM or meta.optional or meta.list_of:
                raise self.error(f"state init {init!r} is not \"zeros\", \"identity\", a number or the name of a "
                                 "numeric hyperparameter that is never None", *keys, "init", value=True)
        if isinstance(init, (int, float)):
            init = float(init)
        dtype = self._dtype(entry, keys)
        when, when_text = self._when(entry, keys, names)
        return State(name, init, dtype, shape, when, when_text, entry.get("doc", ""), self.loc(*keys),
                     quantize=self._quantize(entry, keys, False, shape))

    def _quantize(self, entry, keys, default, shape):
        """A state's `quantize`: "signed", "unsigned" or "" (never stored quantized). The
        default is "signed" for a weight-shaped state that does not start as the weight."""
        if "quantize" not in entry:
            return "signed" if default else ""
        value = entry["quantize"]
        if value is False:
            return ""
        if value is True:
            value = "signed"
        if value not in ("signed", "unsigned"):
            raise self.error(f"state quantize {value!r} is not \"signed\", \"unsigned\", true or false",
                             *keys, "quantize", value=True)
        if shape != "weight":
            raise self.error(f"a {shape} state is never stored quantized (only weight-shaped states are): "
                             "remove 'quantize'", *keys, "quantize", value=True)
        return value

    def _hyperparameter_state(self, name, entry, keys, names):
        """A state that starts filled with a hyperparameter's value (torch.optim.Adagrad's
        `initial_accumulator_value`; Prodigy's d from `d0` with shape = "scalar"): a
        weight-shaped array or a per-parameter scalar, always present (a state under `when`
        would start every step from the value, which is the hyperparameter itself)."""
        init = entry["init"]
        meta = names.get(init)
        if meta is None or meta.role != "hyperparameter" or meta.type != NUM or meta.optional or meta.list_of:
            raise self.error(f"state init {init!r} is not \"zeros\", \"weight\", a number or the name of a "
                             "numeric hyperparameter that is never None", *keys, "init", value=True)
        shape = entry.get("shape", "weight")
        if shape not in ("weight", "scalar", "group"):
            raise self.error(f"a state initialised from a hyperparameter has the weight's shape, is a scalar "
                             f"(shape = \"scalar\"), one value per group (shape = \"group\") or that multiple "
                             f"of the identity (shape = \"rows_by_rows\" or \"cols_by_cols\"), not '{shape}'",
                             *keys, "shape", value=True)
        if "when" in entry:
            raise self.error("a state initialised from a hyperparameter always exists: remove 'when'",
                             *keys, "when", value=True)
        if shape == "group" and "dtype" in entry:
            raise self.error("a group state is one float64 per param group: remove 'dtype'", *keys, "dtype",
                             value=True)
        dtype = self._dtype(entry, keys)
        return State(name, init, dtype, shape, None, "", entry.get("doc", ""), self.loc(*keys),
                     quantize=self._quantize(entry, keys, shape == "weight", shape))

    def _inline_origin(self, keys):
        line, col = self.spec.where(*keys, value=True)
        return (line or 1, (col or 0) + 1)  # skip the opening quote

    def _options(self):
        options = {}
        for key, value in self._table("options").items():
            self._attempt(self._option, options, key, value)
        return options

    def _option(self, options, key, value):
        if key not in OPTIONS:
            raise self.error(_unknown("option", key, tuple(OPTIONS)), "options", key)
        expected = OPTIONS[key]
        if key == "aggregate_num" and isinstance(value, dict):
            options[key] = self._aggregate_from_environment(value)
            return
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is float and not (isinstance(value, float) and math.isfinite(value) and value >= 0):
            raise self.error(f"option '{key}' must be a finite number >= 0", "options", key, value=True)
        if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
            raise self.error(f"option '{key}' must be a {expected.__name__}", "options", key, value=True)
        options[key] = value

    def _aggregate_from_environment(self, table):
        """aggregate_num = { env = "VAR", default = 4, max = 45 }: the default is read from an
        environment variable when the optimizer is created, as MXNet does."""
        keys = ("options", "aggregate_num")
        def count(value):
            return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2 ** 31
        if set(table) - {"env", "default", "max"} or not isinstance(table.get("env"), str) \
                or not _IDENT.match(table["env"]) or not count(table.get("default")) \
                or ("max" in table and not count(table["max"])):
            raise self.error("aggregate_num must be an int or { env = \"VAR\", default = N, max = M } "
                             "(VAR an environment variable name, N and M ints >= 0)", *keys, value=True)
        return dict(table)

    def _choice(self, key, choices):
        value = self.data.get(key, choices[0])
        if value not in choices:
            raise self.error(f"'{key}' must be one of " + ", ".join(f'"{c}"' for c in choices),
                             key, value=True)
        return value

    def _flag(self, key):
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise self.error(f"'{key}' must be true or false", key, value=True)
        return value

    # -- whole-rule checks -------------------------------------------------
    def _check_writes(self, statements, states):
        written = set(self._assigned_by_wrong)   # targets of statements reported as wrong

        def walk(block):
            for stmt in block:
                if isinstance(stmt, Assign):
                    written.add(stmt.target)
                elif isinstance(stmt, If):
                    walk(stmt.body)
                    walk(stmt.orelse)
                elif isinstance(stmt, Loop):
                    walk(stmt.body)
        walk(statements)
        if "weight" not in written:
            self.errors.append(self.error("the update never assigns 'weight'", "update"))
        for st in states:
            # a copy of the weight taken when the state is created and only read (the initial
            # point, as in Prodigy or the Lookahead anchor) is a read-only state
            if st.name not in written and st.init != "weight":
                self.errors.append(self.error(f"state '{st.name}' is never written by the update (only a "
                                              "copy of the weight, init = \"weight\", may be read-only)",
                                              "states", st.name))


def _unknown(what, key, allowed):
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown {what} '{key}'{hint} (allowed: {', '.join(allowed)})"


def _infer_type(default, entry):
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):  # `beta = 1` means a float unless type = "int"
        return "int" if entry.get("type") == "int" else "float"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "enum"
    return "unknown"


def _type_name(value):
    return {bool: "a bool", int: "an int", float: "a float", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def find_specs(root):
    """Every spec file under `root` (flavors live in subfolders), sorted for deterministic output."""
    return sorted(Path(root).rglob("*.toml"), key=lambda p: (len(p.relative_to(root).parts), p.as_posix()))


def _per_matrix_scalars(statements, states):
    """Under matrix = "last_two" a mean along a matrix axis keeps the batch axes: a (1, 1)
    value built from one outside any norm is one value per matrix of the batch, which a
    scalar state (one value per parameter) cannot hold."""
    scalars = {st.name for st in states if st.shape == "scalar"}
    per_matrix = set()

    def has_mean(expr):
        if isinstance(expr, WHOLE_REDUCTIONS):
            return False
        if isinstance(expr, ROW_REDUCTIONS + COL_REDUCTIONS):
            return True
        if getattr(expr, "is_Symbol", False):
            return expr.name in per_matrix
        return any(has_mean(a) for a in expr.args)

    for stmt in walk_statements(statements):
        if not isinstance(stmt, Assign):
            continue
        if has_mean(stmt.expr):
            if stmt.target in scalars:
                raise SpecError(f"scalar state '{stmt.target}' cannot hold a mean over matrix axes under "
                                'matrix = "last_two": that is one value per matrix of the batch (use '
                                'norm() for a whole-tensor value, or matrix = "first_rest")',
                                stmt.loc.path, stmt.loc.line, stmt.loc.col)
            per_matrix.add(stmt.target)
        else:
            per_matrix.discard(stmt.target)
