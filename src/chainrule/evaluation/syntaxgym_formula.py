"""The SyntaxGym prediction formula: a parser and an evaluator (no ``eval``, no pyparsing).

Grammar (the SyntaxGym schema's; loosest binding first, all binary operators left-assoc)::

    formula    := or
    or         := and ( "|" and )*
    and        := compare ( "&" compare )*
    compare    := sum ( ("<" | ">" | "=" | "<=" | ">=") sum )?
    sum        := product ( ("+" | "-") product )*
    product    := unary ( ("*" | "/") unary )*
    unary      := "-" unary | atom
    atom       := "[" formula "]" | region | number
    region     := "(" INTEGER ";" "%" CONDITION "%" ")"

``(6;%match_sing%)`` is the surprisal of region 6 in condition ``match_sing``; ``[`` ``]`` group.
Comparisons give booleans, ``&`` / ``|`` combine booleans; ``=`` is equality within 1e-9
(relative) -- surprisals are floats. A formula must evaluate to a boolean.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from chainrule.errors import DataError

_TOKEN = re.compile(
    r"\s*(?:(?P<region>\(\s*(?P<num>\d+)\s*;\s*%(?P<cond>[^%]+)%\s*\))"
    r"|(?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)"
    r"|(?P<op><=|>=|[-+*/<>=&|\[\]]))"
)


@dataclass(frozen=True)
class Node:
    op: str  # "region", "number", "neg", or a binary operator
    args: tuple = ()
    value: float = 0.0
    region: int = 0
    condition: str = ""


def _tokenize(text: str, where: str) -> list[tuple[str, object, int]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            bad = text[pos:].lstrip()
            at = len(text) - len(bad)
            raise DataError(f"{where}: cannot read the formula at character {at + 1} "
                            f"({bad[:15]!r}) of {text!r}; regions are written (N;%condition%).")
        if m.group("region"):
            out.append(("region", (int(m.group("num")), m.group("cond").strip()), m.start(1)))
        elif m.group("number"):
            out.append(("number", float(m.group("number")), m.start("number")))
        else:
            out.append((m.group("op"), None, m.start("op")))
        pos = m.end()
    out.append(("end", None, len(text)))
    return out


class _Parser:
    def __init__(self, text: str, where: str):
        self.text, self.where = text, where
        self.toks = _tokenize(text, where)
        self.i = 0

    def peek(self) -> str:
        return self.toks[self.i][0]

    def take(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    def fail(self, expected: str):
        kind, _, pos = self.toks[self.i]
        found = "the end" if kind == "end" else repr(self.text[pos:pos + 15])
        raise DataError(f"{self.where}: malformed formula {self.text!r}: expected {expected} at "
                        f"character {pos + 1}, found {found}.")

    def binary(self, ops: tuple[str, ...], below: Callable[[], Node], once: bool = False) -> Node:
        left = below()
        while self.peek() in ops:
            op = self.take()[0]
            left = Node(op, (left, below()))
            if once:
                break
        return left

    def formula(self) -> Node:
        return self.binary(("|",), self.conj)

    def conj(self) -> Node:
        return self.binary(("&",), self.compare)

    def compare(self) -> Node:
        return self.binary(("<", ">", "=", "<=", ">="), self.sum, once=True)

    def sum(self) -> Node:
        return self.binary(("+", "-"), self.product)

    def product(self) -> Node:
        return self.binary(("*", "/"), self.unary)

    def unary(self) -> Node:
        if self.peek() == "-":
            self.take()
            return Node("neg", (self.unary(),))
        return self.atom()

    def atom(self) -> Node:
        kind = self.peek()
        if kind == "[":
            self.take()
            node = self.formula()
            if self.peek() != "]":
                self.fail("']'")
            self.take()
            return node
        if kind == "region":
            (num, cond) = self.take()[1]
            return Node("region", region=num, condition=cond)
        if kind == "number":
            return Node("number", value=self.take()[1])
        self.fail("a region (N;%condition%), a number or '['")
        raise AssertionError  # unreachable


def parse_formula(text: str, where: str = "formula") -> Node:
    """Parse a prediction formula; a malformed one raises :class:`DataError` naming ``where``
    and the character position."""
    p = _Parser(text, where)
    node = p.formula()
    if p.peek() != "end":
        p.fail("an operator or the end")
    return node


def regions_of(node: Node) -> list[tuple[int, str]]:
    """Every ``(region, condition)`` the formula reads, in order of appearance."""
    if node.op == "region":
        return [(node.region, node.condition)]
    return [r for a in node.args for r in regions_of(a)]


_ARITH = {"+": lambda a, b: a + b, "-": lambda a, b: a - b,
          "*": lambda a, b: a * b, "/": lambda a, b: a / b}
_CMP = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
        ">=": lambda a, b: a >= b,
        "=": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)}


def evaluate(node: Node, lookup: Callable[[int, str], float]) -> float | bool:
    """Value of the formula, reading region surprisals with ``lookup(region, condition)``."""
    if node.op == "region":
        return lookup(node.region, node.condition)
    if node.op == "number":
        return node.value
    vals = [evaluate(a, lookup) for a in node.args]
    if node.op == "neg":
        return -_num(vals[0])
    a, b = vals
    if node.op in _ARITH:
        return _ARITH[node.op](_num(a), _num(b))
    if node.op in _CMP:
        return _CMP[node.op](_num(a), _num(b))
    if node.op == "&":
        return _bool(a) and _bool(b)
    return _bool(a) or _bool(b)


def _num(v) -> float:
    if isinstance(v, bool):
        raise DataError("a formula compares or adds the result of a comparison; put brackets "
                        "around each comparison and combine them with & or |.")
    return float(v)


def _bool(v) -> bool:
    if not isinstance(v, bool):
        raise DataError("a formula combines a number with & or |; each side of & and | must be "
                        "a comparison such as [(6;%a%) < (6;%b%)].")
    return v


__all__ = ["Node", "evaluate", "parse_formula", "regions_of"]
