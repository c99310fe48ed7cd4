"""Command-line options built from a config dataclass, so that every default lives in the dataclass.

:func:`config_options` turns each field of a dataclass (nested dataclasses field by field) into a
typer option: its name is the field's (``batch_size`` -> ``--batch-size``), its default the
dataclass's, its help the field's entry in the class docstring's ``Attributes:`` section. The
command receives one built config instead of the separate values::

    @app.command()
    @config_options(GenerationConfig)
    def generate(config: GenerationConfig, out: Path) -> None: ...

Field types map to options as: ``int``, ``float``, ``str`` as they are (``X | None`` optional);
``bool`` as ``--flag/--no-flag``; tuples as comma-separated lists (``--unet-channels 32,64,64``);
anything else as a string. ``parsers`` replaces the conversion of one field.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union

import typer

#: a field's own conversion: parse the option's text (or None) into the field's value; and a metavar
Parser = tuple[Callable[[Any], Any], str]


def field_help(cls: type) -> dict[str, str]:
    """Each field's help: its entry in the ``Attributes:`` section of ``cls``'s docstring (Google style).

    >>> @dataclass
    ... class Demo:
    ...     '''A demo.
    ...
    ...     Attributes:
    ...         steps: Denoising steps,
    ...             at least 1.
    ...     '''
    ...     steps: int = 20
    >>> field_help(Demo)
    {'steps': 'Denoising steps, at least 1.'}
    """
    doc = inspect.cleandoc(cls.__doc__ or "")
    match = re.search(r"^Attributes:\n((?:[ \t]+.*\n?|\n)+)", doc, re.MULTILINE)
    out: dict[str, list[str]] = {}
    name = None
    for line in (match.group(1) if match else "").splitlines():
        entry = re.match(r"^ {4}(\w+)(?: \([^)]*\))?: ?(.*)$", line)
        if entry:
            name = entry.group(1)
            out[name] = [entry.group(2)]
        elif name and line.strip():
            out[name].append(line.strip())
    return {k: " ".join(v).replace("``", "") for k, v in out.items()}


@dataclass(frozen=True)
class _Option:
    name: str  # the parameter's name (the field's)
    path: tuple[str, ...]  # where its value goes: ("capture", "map_size")
    annotation: Any
    default: Any
    help: str
    metavar: str | None
    convert: Callable[[Any], Any]


def _split_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def _tuple_parser(name: str, elem: type) -> Callable[[Any], Any]:
    def parse(text: Any) -> Any:
        if text is None:
            return None
        try:
            return tuple(elem(s.strip()) for s in str(text).split(",") if s.strip())
        except ValueError:
            raise typer.BadParameter(
                f"a comma-separated list of {elem.__name__}s, like 1,2, was expected; got {text!r}",
                param_hint=f"--{name.replace('_', '-')}",
            ) from None

    return parse


def _option(name: str, path: tuple[str, ...], tp: Any, default: Any, help: str, parser: Parser | None) -> _Option:
    base, optional = _split_optional(tp)
    if parser is not None:
        convert, metavar = parser
        shown = None if default is None else _text(default)
        return _Option(name, path, str | None, shown, help, metavar, convert)
    if base in (int, float, str, bool):
        return _Option(name, path, (base | None) if optional else base, default, help, None, lambda v: v)
    if typing.get_origin(base) is tuple:
        elems = [a for a in typing.get_args(base) if a is not Ellipsis]
        elem = elems[0] if elems else str
        metavar = f"{elem.__name__.upper()},..."
        shown = None if default is None else _text(default)
        return _Option(name, path, str | None, shown, help, metavar, _tuple_parser(name, elem))
    shown = None if default is None else str(default)
    return _Option(name, path, (str | None) if optional or default is None else str, shown, help, None, lambda v: v)


def _text(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)


def _options(
    cls: type, defaults: Any, path: tuple[str, ...], exclude: Sequence[str], parsers: dict[str, Parser]
) -> list[_Option]:
    hints = typing.get_type_hints(cls)
    helps = field_help(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        default = getattr(defaults, f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += _options(tp, default, (*path, f.name), exclude, parsers)
        else:
            out.append(_option(f.name, (*path, f.name), tp, default, helps.get(f.name, ""), parsers.get(f.name)))
    return out


def _build(cls: type, defaults: Any, values: dict[tuple[str, ...], Any], path: tuple[str, ...] = ()) -> Any:
    kwargs = {}
    for f in dataclasses.fields(cls):
        where = (*path, f.name)
        if where in values:
            kwargs[f.name] = values[where]
        elif dataclasses.is_dataclass(typing.get_type_hints(cls)[f.name]):
            kwargs[f.name] = _build(typing.get_type_hints(cls)[f.name], getattr(defaults, f.name), values, where)
        else:
            kwargs[f.name] = getattr(defaults, f.name)
    return cls(**kwargs)


def config_options(
    cls: type,
    *,
    defaults: Any = None,
    exclude: Sequence[str] = (),
    parsers: dict[str, Parser] | None = None,
    param: str = "config",
) -> Callable:
    """Decorate a typer command whose parameter ``param`` is a ``cls``: one option per field instead.

    ``defaults`` is an instance whose values are the options' defaults (default: ``cls()``);
    ``exclude`` names fields left out (they keep ``defaults``' values); ``parsers`` maps a field
    name to ``(parse, metavar)`` for options given in a form of their own (``16x24``). A value
    the dataclass refuses (its ``__post_init__`` raising ``ValueError`` / ``TypeError``) is a
    bad parameter: typer prints a one-line error and exits with code 2.
    """
    defaults = cls() if defaults is None else defaults
    options = _options(cls, defaults, (), exclude, parsers or {})

    def decorate(func: Callable) -> Callable:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != param]
        clash = {p.name for p in own} & {o.name for o in options}
        if clash:
            raise TypeError(f"{func.__name__} has parameters named like fields of {cls.__name__}: {sorted(clash)}")

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            values = {}
            for o in options:
                try:
                    values[o.path] = o.convert(kwargs.pop(o.name))
                except typer.BadParameter as e:
                    e.param_hint = e.param_hint or f"--{o.name.replace('_', '-')}"
                    raise
            try:
                config = _build(cls, defaults, values)
            except (TypeError, ValueError) as e:
                raise typer.BadParameter(str(e)) from None
            return func(**kwargs, **{param: config})

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + [
            inspect.Parameter(
                o.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=o.default,
                annotation=Annotated[o.annotation, typer.Option(help=o.help, metavar=o.metavar)],
            )
            for o in options
        ]
        del command.__wrapped__  # typer must read the signature below, not func's
        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate
