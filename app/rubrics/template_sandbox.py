"""The Jinja sandbox judge prompt templates render in, with a time and memory budget.

Jinja's immutable sandbox stops attribute escapes but not work: a nested loop, a huge
`center` width or `'a' * 10**9` would run or allocate without bound. Here every rendering has a
deadline and a loop-iteration budget, and every operation that can make a big value (`*`, `+`,
`~`, `%`, `str.format`, string methods and the filters center, indent, wordwrap, replace, join,
format, batch, slice, tojson, json) checks the size it would produce BEFORE producing it.

Pure module (jinja2 and the standard library only): the studio renders with it and exported
reward packages get a verbatim copy, so both render the same text under the same limits.
"""

from __future__ import annotations

import functools
import json
import re
import string
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2 import filters as jinja_filters
from jinja2 import utils as jinja_utils
from jinja2.environment import Template
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

# What one rendering may use. A real prompt renders in well under a millisecond. Time is the
# rendering thread's CPU time, so a busy machine does not make an honest template fail.
MAX_RENDER_SECONDS = 2.0
MAX_LOOP_ITERATIONS = 1_000_000
# The largest text (or rendered prompt) a template may produce, and the longest list.
MAX_RENDERED_CHARS = 4_000_000
MAX_ITEMS = 1_000_000
MAX_JSON_INDENT = 16
_MAX_POWER_BITS = 100_000
_MAX_LIPSUM_PARAGRAPHS = 20

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")
_NUMBER = re.compile(r"\d+")
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


class BudgetExceeded(SecurityError):
    """A template went over its time, loop or size budget; the message says which."""


class _Budget:
    __slots__ = ("deadline", "iterations", "operations")

    def __init__(self) -> None:
        self.deadline = time.thread_time() + MAX_RENDER_SECONDS
        self.iterations = 0
        self.operations = 0


_state = threading.local()


def _active() -> _Budget | None:
    return getattr(_state, "budget", None)


def _tick(steps: int = 0) -> None:
    """Count loop iterations and check the clock; a no-op outside a rendering."""
    budget = _active()
    if budget is None:
        return
    budget.iterations += steps
    if budget.iterations > MAX_LOOP_ITERATIONS:
        raise BudgetExceeded(
            f"loops ran more than {MAX_LOOP_ITERATIONS:,} times in one rendering; "
            f"templates are limited to {MAX_LOOP_ITERATIONS:,} loop iterations"
        )
    if time.thread_time() > budget.deadline:
        raise BudgetExceeded(
            f"rendering took longer than {MAX_RENDER_SECONDS:g} s; templates must render "
            f"within {MAX_RENDER_SECONDS:g} s"
        )


def _tick_light() -> None:
    """Count a call or operator; read the clock every 32 of them (each is bounded in size)."""
    budget = _active()
    if budget is not None:
        budget.operations += 1
        if not budget.operations & 31:
            _tick()


def _too_big(size: int, what: str = "text") -> BudgetExceeded:
    return BudgetExceeded(
        f"this would make {what} of {size:,} characters; templates may produce at most "
        f"{MAX_RENDERED_CHARS:,}"
    )


def _check_chars(size: int, what: str = "text") -> None:
    if size > MAX_RENDERED_CHARS:
        raise _too_big(size, what)


def _check_items(size: int) -> None:
    if size > MAX_ITEMS:
        raise BudgetExceeded(
            f"this would make a list of {size:,} items; templates may make at most {MAX_ITEMS:,}"
        )


def _length(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return len(str(value))


def _int_arg(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# ---- format strings ---------------------------------------------------------------------------


def check_percent_format(fmt: str) -> None:
    """Refuse `%`-formats whose width or precision would make an oversized text."""
    for match in _PERCENT_SPEC.finditer(fmt):
        for number in match.group(1, 2):
            if number == "*":
                raise BudgetExceeded("'*' widths in % formats are not allowed in templates")
            if number is not None:
                _check_chars(int(number), "a formatted value")


def check_brace_format(fmt: str) -> None:
    """Refuse `str.format` specs whose width or precision would make an oversized text."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error itself
    for _literal, _name, spec, _conversion in fields:
        if not spec:
            continue
        if "{" in spec:
            raise BudgetExceeded("nested {} in format specs are not allowed in templates")
        for number in _NUMBER.findall(spec):
            _check_chars(int(number), "a formatted value")


# ---- filters ----------------------------------------------------------------------------------


def _replace_size(s: str, old: Any, new: Any, count: Any = -1) -> int:
    old_s, new_s = str(old), str(new)
    occurrences = len(s) + 1 if old_s == "" else s.count(old_s)
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        occurrences = min(occurrences, count)
    return len(s) + occurrences * max(len(new_s) - len(old_s), 0)


def _join_size(items: list[Any], separator: str) -> int:
    return sum(_length(item) for item in items) + max(len(items) - 1, 0) * len(separator)


def _filter_center(value: Any, width: int = 80) -> str:
    _check_chars(max(_int_arg(width), _length(value)))
    return jinja_filters.do_center(value, width)


def _filter_indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    pad = len(width) if isinstance(width, str) else _int_arg(width)
    _check_chars(len(text) + (text.count("\n") + 1) * pad)
    return jinja_filters.do_indent(text, width, first, blank)


@jinja_filters.pass_environment
def _filter_wordwrap(
    environment: Any,
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    text = str(s)
    joiner = wrapstring if wrapstring is not None else environment.newline_sequence
    if _int_arg(width) < 1:
        raise BudgetExceeded("wordwrap needs a width of at least 1")
    _check_chars(len(text) + (len(text) // width + 1) * len(str(joiner)))
    _tick(len(text) // width + 1)
    return jinja_filters.do_wordwrap(
        environment, text, width, break_long_words, wrapstring, break_on_hyphens
    )


@jinja_filters.pass_eval_context
def _filter_replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    _check_chars(_replace_size(str(s), old, new, -1 if count is None else count))
    return jinja_filters.do_replace(eval_ctx, s, old, new, count)


@jinja_filters.pass_eval_context
def _filter_join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = list(value)
    _check_items(len(items))
    if attribute is None:
        _check_chars(_join_size(items, str(d)))
    result = jinja_filters.sync_do_join(eval_ctx, items, d, attribute)
    _check_chars(len(result))
    return str(result)


def _filter_format(value: Any, *args: Any, **kwargs: Any) -> str:
    check_percent_format(str(value))
    return jinja_filters.do_format(value, *args, **kwargs)


def _filter_batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    _check_items(_int_arg(linecount))
    return jinja_filters.do_batch(value, linecount, fill_with)


def _filter_slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    _check_items(_int_arg(slices))
    return jinja_filters.sync_do_slice(value, slices, fill_with)


@jinja_filters.pass_eval_context
def _filter_tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> Any:
    if indent is not None and _int_arg(indent) > MAX_JSON_INDENT:
        raise BudgetExceeded(f"tojson indents by at most {MAX_JSON_INDENT} in templates")
    return jinja_filters.do_tojson(eval_ctx, value, indent)


def json_filter(value: Any, indent: int | None = 2) -> str:
    """`{{ value | json }}`: pretty JSON text, unescaped (the templates' own filter)."""
    if indent is not None and _int_arg(indent) > MAX_JSON_INDENT:
        raise BudgetExceeded(f"json indents by at most {MAX_JSON_INDENT} in templates")
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    _check_chars(len(text))
    return text


_BOUNDED_FILTERS: dict[str, Callable[..., Any]] = {
    "center": _filter_center,
    "indent": _filter_indent,
    "wordwrap": _filter_wordwrap,
    "replace": _filter_replace,
    "join": _filter_join,
    "format": _filter_format,
    "batch": _filter_batch,
    "slice": _filter_slice,
    "tojson": _filter_tojson,
    "json": json_filter,
}


# ---- the environment --------------------------------------------------------------------------


def _bounded_iter(iterable: Any) -> Iterator[Any]:
    """Every `{% for %}` loops over this: each iteration counts against the budget (the clock is
    read every few iterations, the cheap counter every time)."""
    budget = _active()
    if budget is None:
        yield from iterable
        return
    for item in iterable:
        budget.iterations += 1
        if budget.iterations > MAX_LOOP_ITERATIONS or not budget.iterations & 63:
            _tick()
        yield item


def _check_method_call(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    if isinstance(owner, str | bytes):
        if name in _WIDTH_METHODS:
            width = args[0] if args else kwargs.get("width", 0)
            _check_chars(_int_arg(width))
        elif name == "expandtabs":
            tabsize = args[0] if args else kwargs.get("tabsize", 8)
            _check_chars(len(owner) * max(_int_arg(tabsize), 1))
        elif name == "replace" and len(args) >= 2 and isinstance(owner, str):
            count = args[2] if len(args) > 2 else kwargs.get("count", -1)
            _check_chars(_replace_size(owner, args[0], args[1], count))
        elif name == "join" and args:
            items = list(args[0])
            _check_items(len(items))
            _check_chars(_join_size(items, str(owner)))
            args = (items, *args[1:])
    elif isinstance(owner, int) and name == "to_bytes":
        length = args[0] if args else kwargs.get("length", 1)
        _check_chars(_int_arg(length))


class BoundedTemplate(Template):
    """A template whose every rendering runs under a fresh budget, wherever it is rendered."""

    def _chunks(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[str]:
        ctx = self.new_context(dict(*args, **kwargs))
        try:
            yield from self.root_render_func(ctx)
        except Exception:
            # Re-raised with the template's own line numbers in the traceback.
            yield self.environment.handle_exception()

    def render(self, *args: Any, **kwargs: Any) -> str:
        return "".join(self.generate(*args, **kwargs))

    def generate(self, *args: Any, **kwargs: Any) -> Iterator[str]:
        outer = _active()
        if outer is None:
            _state.budget = _Budget()
        size = chunks = 0
        try:
            # Jinja's own generate() minus one generator layer (a judge run renders millions).
            for chunk in self._chunks(args, kwargs):
                size += len(chunk)
                if size > MAX_RENDERED_CHARS:
                    raise BudgetExceeded(
                        f"the rendered prompt exceeds {MAX_RENDERED_CHARS:,} characters"
                    )
                chunks += 1
                if not chunks & 63:
                    _tick()
                yield chunk
        finally:
            if outer is None:
                _state.budget = None


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with a time, loop and size budget (see the module docstring)."""

    template_class = BoundedTemplate
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters.update(_BOUNDED_FILTERS)
        self.globals["lipsum"] = _bounded_lipsum(jinja_utils.generate_lorem_ipsum)
        # Read by generated code as environment.bounded_iter / environment.bounded_concat.
        self.bounded_iter = _bounded_iter
        self.bounded_concat = _bounded_concat

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in list(tree.find_all(nodes.For)):
            iterable: nodes.Expr = loop.iter  # type: ignore[assignment]
            loop.iter = nodes.Call(
                nodes.EnvironmentAttribute("bounded_iter"), [iterable], [], None, None
            ).set_lineno(loop.lineno)
        for concat in list(tree.find_all(nodes.Concat)):
            # `a ~ b`: joined by bounded_concat, which measures before joining.
            joined: nodes.Expr = nodes.Call(
                nodes.EnvironmentAttribute("bounded_concat"),
                [nodes.Tuple(list(concat.nodes), "load")],
                [],
                None,
                None,
            ).set_lineno(concat.lineno)  # type: ignore[assignment]
            concat.nodes = [joined]
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick_light()
        if operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and max(left.bit_length(), 1) * right > _MAX_POWER_BITS
            ):
                raise BudgetExceeded("a power this large is not allowed in templates")
        elif operator == "*":
            sequence, times = (
                (left, right) if isinstance(left, str | list | tuple) else (right, left)
            )
            if isinstance(sequence, str | list | tuple) and isinstance(times, int):
                if isinstance(sequence, str):
                    _check_chars(len(sequence) * times)
                else:
                    _check_items(len(sequence) * times)
        elif operator == "+":
            if isinstance(left, str) and isinstance(right, str):
                _check_chars(len(left) + len(right))
            elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
                _check_items(len(left) + len(right))
        elif operator == "%" and isinstance(left, str):
            check_percent_format(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _tick_light()
        if isinstance(__obj, types.BuiltinMethodType | types.MethodType):
            _check_method_call(__obj, args, kwargs)
        elif isinstance(__obj, LoopContext) and args:
            # loop(children) in a recursive loop: the children's iterations count too.
            args = (_bounded_iter(args[0]), *args[1:])
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        check_brace_format(value.__self__)
        return wrapper


def _bounded_concat(values: tuple[Any, ...]) -> str:
    texts = [str(v) for v in values]
    _check_chars(sum(len(t) for t in texts))
    return "".join(texts)


def _bounded_lipsum(lipsum: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(lipsum)
    def bounded(n: int = 5, *args: Any, **kwargs: Any) -> Any:
        if _int_arg(n) > _MAX_LIPSUM_PARAGRAPHS:
            raise BudgetExceeded(f"lipsum makes at most {_MAX_LIPSUM_PARAGRAPHS} paragraphs")
        return lipsum(n, *args, **kwargs)

    return bounded


def make_environment() -> BoundedSandbox:
    """The environment judge prompts render in: plain text (no escaping), strict undefined,
    `{% %}` lines leave no blank lines, and the `json` filter."""
    return BoundedSandbox(
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
