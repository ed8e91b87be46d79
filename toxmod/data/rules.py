"""Level rules (``data.level_rules``): boolean expressions over 0/1 label columns, parsed by toxmod.

A rule is text in a config, and a run's config is read back when the run is opened, so rules are
never handed to an evaluator that can run code (``DataFrame.eval`` can). The grammar is small:

    rule  := rule "|" rule | rule "&" rule | "~" rule | rule "or" rule | rule "and" rule | "not" rule
           | "(" rule ")" | column | column CMP literal | literal CMP column
    CMP   := == != < <= > >=          literal := an integer, a float, True or False

A column alone means "column is 1". Anything else (calls, attributes, subscripts, names that are not
columns) is refused with a one-line error naming the rule.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from toxmod.errors import ConfigError

_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def rule_columns(expression: str, key: str) -> set[str]:
    """The column names a rule refers to (it is parsed, so a malformed rule fails here)."""
    return {node.id for node in ast.walk(_parse(expression, key)) if isinstance(node, ast.Name)}


def evaluate_rule(expression: str, columns: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    """The rule's truth per row, over 0/1 ``columns``; ``key`` names the rule in errors."""
    tree = _parse(expression, key)
    result = _Evaluator(columns, expression, key).visit(tree.body)
    return np.asarray(result, dtype=bool)


def _parse(expression: str, key: str) -> ast.Expression:
    try:
        return ast.parse(str(expression).strip(), mode="eval")
    except SyntaxError:
        raise ConfigError(f"{key}: {expression!r} is not a rule (columns, & | ~, comparisons)") from None


class _Evaluator:
    def __init__(self, columns: Mapping[str, np.ndarray], expression: str, key: str) -> None:
        self.columns, self.expression, self.key = columns, expression, key

    def refuse(self, what: str) -> ConfigError:
        return ConfigError(
            f"{self.key}: {self.expression!r} uses {what}; a rule may only use label columns, "
            "& | ~ (and, or, not), comparisons with numbers and parentheses"
        )

    def visit(self, node: ast.AST) -> np.ndarray:
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            left, right = self.truth(node.left), self.truth(node.right)
            return left & right if isinstance(node.op, ast.BitAnd) else left | right
        if isinstance(node, ast.BoolOp):
            values = [self.truth(value) for value in node.values]
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            result = values[0]
            for value in values[1:]:
                result = combine(result, value)
            return result
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Invert, ast.Not)):
            return ~self.truth(node.operand)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Name):
            return self.column(node.id)
        raise self.refuse(type(node).__name__.lower())

    def truth(self, node: ast.AST) -> np.ndarray:
        return np.asarray(self.visit(node), dtype=bool)

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise ConfigError(
                f"{self.key}: {self.expression!r} names {name!r}, which is not a column of the data"
            )
        return np.asarray(self.columns[name])

    def operand(self, node: ast.AST) -> object:
        if isinstance(node, ast.Name):
            return self.column(node.id).astype(np.int64)
        if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float)):
            return node.value
        raise self.refuse(type(node).__name__.lower())

    def compare(self, node: ast.Compare) -> np.ndarray:
        result: np.ndarray | None = None
        left = self.operand(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            if type(op) not in _COMPARISONS:
                raise self.refuse(type(op).__name__.lower())
            right = self.operand(right_node)
            step = np.asarray(_COMPARISONS[type(op)](left, right), dtype=bool)
            result = step if result is None else result & step
            left = right
        assert result is not None, "a comparison has at least one operator"
        return result
