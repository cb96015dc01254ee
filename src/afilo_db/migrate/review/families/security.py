"""Functions, roles, grants, default privileges, owners and policies, compared with the
contract (`access`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pglast import ast

from afilo_db.migrate.review.families.registry import compares
from afilo_db.migrate.review.findings import StatementReview
from afilo_db.migrate.review.locks import (
    ACCESS_EXCLUSIVE,
)
from afilo_db.migrate.review.syntax import (
    deparse,
    relation_name,
)

if TYPE_CHECKING:
    from afilo_db.migrate.review.analysis import Analyzer


@compares(ast.CreateFunctionStmt)
def create_function(
    analyzer: Analyzer, statement: StatementReview, node: ast.CreateFunctionStmt
) -> None:
    name = ".".join(part.sval for part in node.funcname or ())
    analyzer.access.function_options(statement, name, node.options, existing=False)


@compares(ast.AlterFunctionStmt)
def alter_function(
    analyzer: Analyzer, statement: StatementReview, node: ast.AlterFunctionStmt
) -> None:
    name = ".".join(part.sval for part in (node.func.objname if node.func else None) or ())
    analyzer.access.function_options(statement, name, node.actions, existing=True)


@compares(ast.CreateRoleStmt)
def create_role(analyzer: Analyzer, statement: StatementReview, node: ast.CreateRoleStmt) -> None:
    analyzer.access.role_attributes(statement, str(node.role), node.options)


@compares(ast.AlterRoleStmt)
def alter_role(analyzer: Analyzer, statement: StatementReview, node: ast.AlterRoleStmt) -> None:
    role = node.role.rolename if node.role else None
    analyzer.access.role_attributes(statement, str(role), node.options)


@compares(ast.GrantStmt)
def grant(analyzer: Analyzer, statement: StatementReview, node: ast.GrantStmt) -> None:
    analyzer.access.granted(statement, node)


@compares(ast.GrantRoleStmt)
def grant_role(analyzer: Analyzer, statement: StatementReview, node: ast.GrantRoleStmt) -> None:
    analyzer.access.role_granted(statement, node)


@compares(ast.AlterDefaultPrivilegesStmt)
def alter_default_privileges(
    analyzer: Analyzer, statement: StatementReview, node: ast.AlterDefaultPrivilegesStmt
) -> None:
    analyzer.access.default_privileges(statement, node)


@compares(ast.AlterOwnerStmt)
def alter_owner(analyzer: Analyzer, statement: StatementReview, node: ast.AlterOwnerStmt) -> None:
    if node.newowner is not None:
        analyzer.access.owner_changed(statement, node.newowner, deparse(node.object))


@compares(ast.CreatePolicyStmt)
def create_policy(
    analyzer: Analyzer, statement: StatementReview, node: ast.CreatePolicyStmt
) -> None:
    statement.table = relation_name(node.table)
    analyzer.lock(statement, ACCESS_EXCLUSIVE)
    analyzer.access.policy_created(statement, node)


@compares(ast.AlterPolicyStmt)
def alter_policy(analyzer: Analyzer, statement: StatementReview, node: ast.AlterPolicyStmt) -> None:
    statement.table = relation_name(node.table)
    analyzer.lock(statement, ACCESS_EXCLUSIVE)
    analyzer.access.policy_altered(statement, node)
