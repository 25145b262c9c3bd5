"""A sandboxed template engine for text that staff write and loyalty renders (campaign subjects,
text and HTML versions).

Staff templates get a dedicated :class:`django.template.Engine`, not the project's: it loads no
template files and no tag libraries, and knows only Django's built-in filters and the built-in
tags in :data:`ALLOWED_TAGS` (conditions, loops, ``with``, ``firstof``, ``cycle``, ``now``,
``spaceless``, ``widthratio``, ``filter``, ``comment``, ``verbatim``, ``templatetag``, ``lorem``,
``regroup``, ``ifchanged``, ``resetcycle``, ``autoescape``). Everything else is refused with a
clear message when the template is compiled: ``{% load %}`` (which would let a template run a
shop's or loyalty's own tags, e.g. mint a guest-claim link), ``{% debug %}`` (dumps the context
and the loaded modules), ``{% include %}``, ``{% extends %}``, ``{% block %}``, ``{% url %}``,
``{% csrf_token %}``, ``{% querystring %}``.

The values a template sees are plain strings, numbers and dates (no model instances), listed
per use: :data:`CAMPAIGN_VARIABLES` for campaigns. :func:`staff_template_validate` also refuses
variables outside that list, so a typo shows in the form instead of an empty gap in an email.

- :func:`staff_template_compile` (previews and sends): the compiled template; raises
  :class:`StaffTemplateRefused` (a ``TemplateSyntaxError``) for what the sandbox refuses and
  ``TemplateSyntaxError`` for what does not compile.
- :func:`staff_template_validate` (forms, ``Campaign.clean``): the same, plus the variables.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache

from django.template import Engine, Library, Template, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import FilterExpression, Lexer, Node, TokenType, Variable
from django.utils.translation import gettext as _

#: Built-in tags staff templates may use (with their inner and end tags).
ALLOWED_TAGS = (
    "autoescape",
    "comment",
    "cycle",
    "filter",
    "firstof",
    "for",
    "if",
    "ifchanged",
    "lorem",
    "now",
    "regroup",
    "resetcycle",
    "spaceless",
    "templatetag",
    "verbatim",
    "widthratio",
    "with",
)
_INNER_TAGS = {"else", "elif", "empty"}
_ALLOWED_COMMANDS = frozenset(ALLOWED_TAGS) | {f"end{tag}" for tag in ALLOWED_TAGS} | _INNER_TAGS

#: What a campaign's subject, text and HTML may use (``services.campaigns.message_context``).
CAMPAIGN_VARIABLES = {
    "first_name": "the member's first name (may be empty)",
    "balance": "their points balance (with the email's bonus points)",
    "tier": "the name of their tier (may be empty)",
    "incentive": "the incentive sentence: bonus points or a reward code (empty without one)",
    "incentive_expires_on": "the date the incentive runs out (a date; empty without one)",
    "unsubscribe_url": "their one-click unsubscribe link",
    "shop_url": "the shop's home page (LOYALTY['SITE_URL'])",
    "shop_name": "the shop's name",
    "program_name": "the programme's name",
}
#: Names every template has: Django's literals and the loop variable.
_ALWAYS = {"True", "False", "None", "forloop"}


class StaffTemplateRefused(TemplateSyntaxError):
    """The template uses something the sandbox does not allow (a tag, a variable)."""


@lru_cache(maxsize=1)
def staff_template_engine() -> Engine:
    """The sandbox: no loaders, no libraries, built-in filters and the allowed tags only."""
    library = Library()
    library.filters.update(defaultfilters.register.filters)
    library.tags.update({name: defaulttags.register.tags[name] for name in ALLOWED_TAGS})

    class SandboxEngine(Engine):
        default_builtins: list[str] = []

    engine = SandboxEngine(loaders=[], libraries={}, builtins=[], debug=False, string_if_invalid="")
    engine.template_builtins = [library]
    return engine


def _refuse_tags(source: str) -> None:
    for token in Lexer(source).tokenize():
        if token.token_type != TokenType.BLOCK:
            continue
        command = (token.contents.split() or [""])[0]
        if command not in _ALLOWED_COMMANDS:
            raise StaffTemplateRefused(
                _("{%% %(tag)s %%} is not allowed here (line %(line)d). Templates may use these tags: %(allowed)s.")
                % {"tag": command, "line": token.lineno, "allowed": ", ".join(ALLOWED_TAGS)}
            )


def staff_template_compile(source: str) -> Template:
    """Compile ``source`` in the sandbox. Raises :class:`StaffTemplateRefused` for a tag it does
    not allow, ``TemplateSyntaxError`` for a template that does not compile."""
    source = source or ""
    _refuse_tags(source)
    return staff_template_engine().from_string(source)


def _names(expression: FilterExpression) -> Iterator[str]:
    values = [expression.var, *(arg for _func, args in expression.filters for _lookup, arg in args)]
    for value in values:
        if isinstance(value, Variable) and value.lookups:
            yield value.lookups[0]


def _expressions(value, depth: int = 0) -> Iterator[FilterExpression]:
    """Filter expressions held by a node's attributes (conditions of an ``if`` included)."""
    if depth > 6 or isinstance(value, Node | str | bytes | int | float):
        return
    if isinstance(value, FilterExpression):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _expressions(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _expressions(item, depth + 1)
    elif hasattr(value, "__dict__") and type(value).__module__.startswith("django.template"):
        for item in vars(value).values():
            yield from _expressions(item, depth + 1)


def _bound_names(node: Node) -> Iterable[str]:
    """Names a tag defines for the template: loop variables, ``with`` names, ``as`` targets."""
    yield from getattr(node, "loopvars", ())
    yield from (getattr(node, "extra_context", None) or {}).keys()
    for attr in ("var_name", "asvar", "variable_name", "target"):
        name = getattr(node, attr, None)
        if isinstance(name, str):
            yield name


def staff_template_validate(source: str, *, variables: Iterable[str]) -> Template:
    """:func:`staff_template_compile`, and refuse variables other than ``variables`` (and those
    the template defines itself with ``for``, ``with`` or ``as``)."""
    template = staff_template_compile(source)
    nodes = template.nodelist.get_nodes_by_type(Node)
    known = set(variables) | _ALWAYS
    for node in nodes:
        known.update(_bound_names(node))
    for node in nodes:
        for expression in _expressions({k: v for k, v in vars(node).items() if k != "token"}):
            for name in _names(expression):
                if name not in known:
                    raise StaffTemplateRefused(
                        _("Unknown variable “%(name)s”. Templates may use: %(known)s.")
                        % {"name": name, "known": ", ".join(sorted(set(variables)))}
                    )
    return template
