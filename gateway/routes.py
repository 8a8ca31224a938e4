"""Path templates of `google.api.http` and the route table that matches requests against them.

Template syntax (google/api/http.proto):

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    Verb     = ":" LITERAL ;

Templates are compiled once into a trie per (HTTP method, verb). Matching walks the trie
preferring a literal segment, then `*`, then `**`, so the most specific template wins. Two
templates of the same method and verb that can match the same path with neither more specific
than the other are rejected when the table is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote

T = TypeVar("T")

LITERAL, STAR, DSTAR = 0, 1, 2  # segment kinds, in matching priority
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LITERAL = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=@%]+\Z")
_ENCODED_SLASH = re.compile(r"(%2[fF])")


class TemplateError(ValueError):
    """A path template does not follow the google.api.http syntax."""


class RouteConflict(ValueError):
    """Two bindings can match the same request and neither is more specific."""


class NoRoute(LookupError):
    """No template matches the path (`allowed` lists the methods that would match it)."""

    def __init__(self, allowed: tuple[str, ...] = ()) -> None:
        super().__init__("no route")
        self.allowed = allowed


@dataclass(frozen=True)
class Variable:
    field_path: str  # dotted, as written in the template
    start: int  # first segment it captures
    end: int | None  # one past its last segment; None: up to the end of the path (`**`)

    @property
    def multi_segment(self) -> bool:
        return self.end is None or self.end - self.start > 1


@dataclass(frozen=True)
class PathTemplate:
    text: str
    segments: tuple[tuple[int, str], ...]  # (kind, literal text)
    variables: tuple[Variable, ...]
    verb: str

    @classmethod
    def parse(cls, text: str) -> PathTemplate:
        if not text.startswith("/"):
            raise TemplateError(f"{text!r}: a path template starts with '/'")
        body, verb = _split_verb(text, text[1:])
        segments: list[tuple[int, str]] = []
        variables: list[Variable] = []
        for token in _split_top_level(text, body) if body else []:
            if token.startswith("{"):
                if not token.endswith("}") or token.count("{") != 1 or token.count("}") != 1:
                    raise TemplateError(f"{text!r}: malformed variable {token!r}")
                name, has_pattern, pattern = token[1:-1].partition("=")
                if not all(_IDENT.match(part) for part in name.split(".")):
                    raise TemplateError(f"{text!r}: {name!r} is not a field path")
                if any(v.field_path == name for v in variables):
                    raise TemplateError(f"{text!r}: variable {name!r} appears twice")
                start = len(segments)
                segments.extend(
                    _segment(text, s) for s in (pattern.split("/") if has_pattern else ["*"])
                )
                end = None if segments[-1][0] == DSTAR else len(segments)
                variables.append(Variable(name, start, end))
            else:
                segments.append(_segment(text, token))
        if any(kind == DSTAR for kind, _ in segments[:-1]):
            raise TemplateError(f"{text!r}: '**' must be the last segment")
        return cls(text, tuple(segments), tuple(variables), verb)

    def bind(self, path: list[str]) -> dict[str, str]:
        """The percent-decoded value of each variable in a matching path's segments.

        A single-segment variable is decoded entirely; a multi-segment one is decoded except
        `%2F`, which stays encoded (so a decoded `/` always separated segments).
        """
        values: dict[str, str] = {}
        for var in self.variables:
            if var.multi_segment:
                raw = "/".join(path[var.start : var.end])
                parts = _ENCODED_SLASH.split(raw)
                values[var.field_path] = "".join(
                    p if i % 2 else unquote(p, errors="strict") for i, p in enumerate(parts)
                )
            else:
                values[var.field_path] = unquote(path[var.start], errors="strict")
        return values

    def openapi_path(self) -> str:
        """The template as an OpenAPI path: each variable becomes `{field.path}`."""
        parts: list[str] = []
        i = 0
        starts = {v.start: v for v in self.variables}
        while i < len(self.segments):
            var = starts.get(i)
            if var is not None:
                parts.append("{" + var.field_path + "}")
                i = len(self.segments) if var.end is None else var.end
                continue
            kind, literal = self.segments[i]
            parts.append(literal if kind == LITERAL else ("*" if kind == STAR else "**"))
            i += 1
        return "/" + "/".join(parts) + (":" + self.verb if self.verb else "")


def _split_verb(text: str, body: str) -> tuple[str, str]:
    depth, last_slash, last_colon = 0, -1, -1
    for i, char in enumerate(body):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif depth == 0 and char == "/":
            last_slash = i
        elif depth == 0 and char == ":":
            last_colon = i
        if depth not in (0, 1):
            raise TemplateError(f"{text!r}: unbalanced braces")
    if depth:
        raise TemplateError(f"{text!r}: unbalanced braces")
    if last_colon > last_slash:
        verb = body[last_colon + 1 :]
        if not _LITERAL.match(verb):
            raise TemplateError(f"{text!r}: {verb!r} is not a verb")
        return body[:last_colon], verb
    return body, ""


def _split_top_level(text: str, body: str) -> list[str]:
    tokens, depth, start = [], 0, 0
    for i, char in enumerate(body):
        depth += char == "{"
        depth -= char == "}"
        if char == "/" and depth == 0:
            tokens.append(body[start:i])
            start = i + 1
    tokens.append(body[start:])
    return tokens


def _segment(text: str, token: str) -> tuple[int, str]:
    if token == "*":
        return STAR, ""
    if token == "**":
        return DSTAR, ""
    if not _LITERAL.match(token) or "*" in token:
        raise TemplateError(f"{text!r}: {token!r} is not a valid segment")
    return LITERAL, token


def split_path(raw_path: str) -> tuple[list[str], str]:
    """The segments of a raw (still percent-encoded) path, and the verb after the last ':'
    of the last segment, if any."""
    segments = raw_path[1:].split("/") if raw_path != "/" else []
    verb = ""
    if segments and ":" in segments[-1]:
        segments[-1], verb = segments[-1].rsplit(":", 1)
    return segments, verb


# -- overlap and specificity of templates -------------------------------------------------
def overlaps(a: PathTemplate, b: PathTemplate) -> bool:
    """Whether some path matches both templates (verbs aside)."""
    for i in range(max(len(a.segments), len(b.segments))):
        if i >= len(a.segments) or i >= len(b.segments):
            rest = a.segments[i:] or b.segments[i:]
            return rest[0][0] == DSTAR
        (ka, la), (kb, lb) = a.segments[i], b.segments[i]
        if DSTAR in (ka, kb):
            return True
        if ka == kb == LITERAL and la != lb:
            return False
    return True


def covers(general: PathTemplate, specific: PathTemplate) -> bool:
    """Whether every path matching `specific` also matches `general`."""
    for i, (kg, lg) in enumerate(general.segments):
        if kg == DSTAR:
            return True
        if i >= len(specific.segments):
            return False
        ks, ls = specific.segments[i]
        if ks == DSTAR or (kg == LITERAL and (ks != LITERAL or ls != lg)):
            return False
    return len(specific.segments) == len(general.segments)


# -- the table ----------------------------------------------------------------------------
class _Node(Generic[T]):
    __slots__ = ("dstar", "literals", "star", "value")

    def __init__(self) -> None:
        self.literals: dict[str, _Node[T]] = {}
        self.star: _Node[T] | None = None
        self.dstar: tuple[PathTemplate, T] | None = None
        self.value: tuple[PathTemplate, T] | None = None

    def find(self, path: list[str], i: int) -> tuple[PathTemplate, T] | None:
        if i == len(path):
            return self.value or self.dstar
        segment = path[i]
        child = self.literals.get(segment)
        if child is not None:
            found = child.find(path, i + 1)
            if found is not None:
                return found
        if self.star is not None and segment:
            found = self.star.find(path, i + 1)
            if found is not None:
                return found
        return self.dstar


@dataclass(frozen=True)
class Entry(Generic[T]):
    method: str  # HTTP method, upper case
    template: PathTemplate
    value: T
    label: str  # names the binding in error messages, e.g. "OrderService.GetOrder"


class RouteTable(Generic[T]):
    """Every binding of the API, compiled for matching; raises RouteConflict when built from
    ambiguous or duplicate bindings."""

    def __init__(self, entries: Iterable[Entry[T]]) -> None:
        self.entries = list(entries)
        _check_conflicts(self.entries)
        self._tries: dict[tuple[str, str], _Node[T]] = {}
        self.methods: set[str] = set()
        for entry in self.entries:
            self.methods.add(entry.method)
            node = self._tries.setdefault((entry.method, entry.template.verb), _Node())
            for kind, literal in entry.template.segments:
                if kind == LITERAL:
                    node = node.literals.setdefault(literal, _Node())
                elif kind == STAR:
                    node.star = node.star or _Node()
                    node = node.star
                else:
                    node.dstar = (entry.template, entry.value)
                    break
            else:
                node.value = (entry.template, entry.value)

    def match(self, method: str, raw_path: str) -> tuple[PathTemplate, T, list[str]]:
        """The binding for a request and the path's segments; raises NoRoute.

        A ':' in the last segment is first read as a custom verb; when no template of any
        method has that verb there, it is read as part of the segment (e.g. of an id).
        """
        segments, verb = split_path(raw_path)
        found = self._find(method, segments, verb)
        if found is not None:
            return found[0], found[1], segments
        allowed = self._allowed(method, segments, verb)
        if verb and not allowed:
            segments = [*segments[:-1], f"{segments[-1]}:{verb}"]
            found = self._find(method, segments, "")
            if found is not None:
                return found[0], found[1], segments
            allowed = self._allowed(method, segments, "")
        raise NoRoute(allowed)

    def _find(self, method: str, segments: list[str], verb: str) -> tuple[PathTemplate, T] | None:
        trie = self._tries.get((method, verb))
        return trie.find(segments, 0) if trie is not None else None

    def _allowed(self, method: str, segments: list[str], verb: str) -> tuple[str, ...]:
        return tuple(
            m for m in sorted(self.methods) if m != method and self._find(m, segments, verb)
        )


def _check_conflicts(entries: list[Entry[T]]) -> None:
    problems = []
    for i, a in enumerate(entries):
        for b in entries[i + 1 :]:
            if a.method != b.method or a.template.verb != b.template.verb:
                continue
            if not overlaps(a.template, b.template):
                continue
            a_in_b, b_in_a = covers(b.template, a.template), covers(a.template, b.template)
            where = (
                f"{a.method} {a.template.text} ({a.label}) and "
                f"{b.method} {b.template.text} ({b.label})"
            )
            if a_in_b and b_in_a:
                problems.append(f"{where} bind the same paths")
            elif not (a_in_b or b_in_a):
                problems.append(f"{where} are ambiguous: some path matches both")
    if problems:
        raise RouteConflict("conflicting HTTP bindings: " + "; ".join(problems))
