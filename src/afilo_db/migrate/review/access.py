"""Security changes compared with the contract: the policies and grants of
`afilo_db.security.policies` and the role attributes of `afilo_db.security.roles`.

Each check is an error whatever the size of the table: a hole in row level security leaks every
row there is, or will be.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

from pglast import ast, parse_sql
from pglast.enums import GrantTargetType, ObjectType, RoleSpecType, VariableSetKind

from afilo_db.migrate.review.findings import StatementReview
from afilo_db.migrate.review.measurements import Measurer
from afilo_db.migrate.review.syntax import deparse, qualified_name, relation_name, walk
from afilo_db.security.policies import (
    ALL_COMMANDS,
    CURRENT_USER,
    TABLES,
    Command,
    Policy,
    TableSecurity,
    policies,
)
from afilo_db.security.roles import APP_ROLE, SERVICE_ROLE

CONTRACT_ROLES: Final = (APP_ROLE, SERVICE_ROLE)
PUBLIC = "PUBLIC"
# Role attributes that let a role past row level security, whoever gets them.
BYPASSING_ATTRIBUTES: Final = ("superuser", "bypassrls")
# Attributes the contract's own roles never hold (roles._RESTRICTED).
RESTRICTED_ATTRIBUTES: Final = ("createrole", "createdb", "isreplication", "inherit")


def _table_contract(table: str | None) -> TableSecurity | None:
    short = (table or "").removeprefix("public.")
    return next((item for item in TABLES if item.table == short), None)


def _contract_policies() -> dict[tuple[str, str], Policy]:
    return {(policy.table, policy.name): policy for policy in policies()}


@lru_cache(maxsize=4096)
def _deparsed(expression: str) -> str:
    """The expression as pglast prints it, without what PostgreSQL's own printing adds or
    leaves out (output names of sub-selects, table and schema qualification), so that a policy
    read back from the catalogue compares equal to the same policy as written."""
    statement: Any = parse_sql(f"SELECT ({expression})")[0].stmt
    value = statement.targetList[0].val
    for node in walk(value):
        if isinstance(node, ast.ResTarget):
            node.name = None
        elif isinstance(node, ast.RangeVar):
            node.schemaname = None
        elif isinstance(node, ast.ColumnRef) and isinstance((node.fields or (0,))[-1], ast.String):
            node.fields = (node.fields or ())[-1:]
    return deparse(value)


@lru_cache(maxsize=1)
def _user_lookup_spellings() -> tuple[str, str]:
    """The user's profile id as `current_user_profile_id()` returns it and as the policies look
    it up themselves since revision 0010_inline_user_lookup: the same value, so a policy spelt
    either way matches the contract."""
    return _deparsed("(SELECT current_user_profile_id())"), _deparsed(CURRENT_USER)


def normalized_expression(expression: str | ast.Node | None) -> str | None:
    if expression is None:
        return None
    text = _deparsed(expression if isinstance(expression, str) else deparse(expression))
    by_function, by_lookup = _user_lookup_spellings()
    return text.replace(by_function, by_lookup)


def _role_name(role: ast.RoleSpec) -> str:
    if role.roletype == RoleSpecType.ROLESPEC_PUBLIC:
        return PUBLIC
    return str(role.rolename or role.roletype)


def _commands(name: str | None) -> tuple[Command, ...]:
    upper = (name or "all").upper()
    return ALL_COMMANDS if upper == "ALL" else (upper,)  # type: ignore[return-value]


class AccessChecks:
    def __init__(self, measurer: Measurer, recreated_policies: set[tuple[str, str]]) -> None:
        self.m = measurer
        self.recreated_policies = recreated_policies

    # row level security ------------------------------------------------------------------------

    def row_security_weakened(self, statement: StatementReview, table: str, what: str) -> None:
        enabled = self.m.value(
            "SELECT relrowsecurity OR relforcerowsecurity FROM pg_class WHERE oid = to_regclass(%s)",
            (table,),
        )
        if _table_contract(table) is not None or enabled:
            statement.find(
                "rls-weakened",
                "error",
                f"{what} on {table}: every row becomes visible to roles the policies hold back "
                "(security/policies.py enables and forces it on every table)",
            )

    def policy_created(self, statement: StatementReview, node: ast.CreatePolicyStmt) -> None:
        self._policy(
            statement,
            relation_name(node.table),
            str(node.policy_name),
            [_role_name(role) for role in node.roles or ()],
            _commands(node.cmd_name),
            bool(node.permissive),
            node.qual,
            node.with_check,
        )

    def policy_altered(self, statement: StatementReview, node: ast.AlterPolicyStmt) -> None:
        table = relation_name(node.table)
        contract = _contract_policies().get(
            ((table or "").removeprefix("public."), str(node.policy_name))
        )
        roles = [_role_name(role) for role in node.roles or ()]
        if contract is None:
            if PUBLIC in roles or set(roles) & set(CONTRACT_ROLES):
                statement.find(
                    "policy-widened",
                    "error",
                    f"policy {node.policy_name} on {table} is given to {', '.join(roles)}, "
                    "which security/policies.py does not do",
                )
            return
        self._policy(
            statement,
            table,
            str(node.policy_name),
            roles or [contract.role],
            (contract.command,),
            True,
            node.qual if node.qual is not None else contract.using,
            node.with_check if node.with_check is not None else contract.check,
        )

    def _policy(
        self,
        statement: StatementReview,
        table: str | None,
        name: str,
        roles: list[str],
        commands: tuple[Command, ...],
        permissive: bool,
        using: ast.Node | str | None,
        check: ast.Node | str | None,
    ) -> None:
        if PUBLIC in roles:
            statement.find(
                "policy-widened",
                "error",
                f"policy {name} on {table} applies to PUBLIC: every role, present and future",
            )
            return
        if not permissive:
            return  # a restrictive policy only ever narrows
        contract = _table_contract(table)
        expected = {
            (policy.role, policy.command): policy
            for policy in _contract_policies().values()
            if contract is not None and policy.table == contract.table
        }
        for role in roles:
            if role not in CONTRACT_ROLES:
                continue
            for command in commands:
                rule = expected.get((role, command))
                if rule is None:
                    statement.find(
                        "policy-widened",
                        "error",
                        f"policy {name} lets {role} {command} on {table}, which "
                        "security/policies.py does not allow",
                    )
                elif (normalized_expression(using), normalized_expression(check)) != (
                    normalized_expression(rule.using),
                    normalized_expression(rule.check),
                ):
                    statement.find(
                        "policy-widened",
                        "error",
                        f"policy {name} for {role} {command} on {table} differs from "
                        f"{rule.name} in security/policies.py",
                    )

    def policy_dropped(self, statement: StatementReview, names: Any) -> None:
        for parts in names or ():
            *table_parts, policy = (part.sval for part in parts)
            table = qualified_name(table_parts)
            short = table.removeprefix("public.")
            if (short, policy) in _contract_policies():
                if (short, policy) not in self.recreated_policies:
                    statement.find(
                        "policy-widened",
                        "error",
                        f"dropping policy {policy} on {table} takes away a policy "
                        "security/policies.py requires",
                    )
                continue
            restrictive = self.m.value(
                "SELECT NOT polpermissive FROM pg_policy"
                " WHERE polrelid = to_regclass(%s) AND polname = %s",
                (table, policy),
            )
            if restrictive:
                statement.find(
                    "policy-widened",
                    "error",
                    f"dropping the restrictive policy {policy} on {table} lets more rows through",
                )

    # grants --------------------------------------------------------------------------------------

    def granted(self, statement: StatementReview, node: ast.GrantStmt) -> None:
        if not node.is_grant:
            return
        grantees = [_role_name(role) for role in node.grantees or ()]
        if PUBLIC in grantees:
            statement.find(
                "grant-widened", "error", "GRANT to PUBLIC gives it to every role there is"
            )
        watched = [role for role in grantees if role in CONTRACT_ROLES]
        if not watched:
            return
        privileges = [
            (str(item.priv_name).upper(), [col.sval for col in item.cols or ()])
            for item in node.privileges or ()
        ]
        if node.objtype == ObjectType.OBJECT_SCHEMA:
            if not privileges or any(name != "USAGE" for name, _ in privileges):
                statement.find(
                    "grant-widened",
                    "error",
                    f"{', '.join(watched)} may only use the schema (USAGE), never create in it",
                )
            return
        if node.objtype != ObjectType.OBJECT_TABLE:
            return
        if node.targtype != GrantTargetType.ACL_TARGET_OBJECT:
            statement.find(
                "grant-widened",
                "error",
                f"a grant on every table of a schema to {', '.join(watched)} reaches tables "
                "security/policies.py does not open to them",
            )
            return
        for relation in node.objects or ():
            table = relation_name(relation)
            for role in watched:
                for why in _beyond_contract(_table_contract(table), role, privileges):
                    statement.find("grant-widened", "error", f"GRANT on {table} to {role}: {why}")

    def default_privileges(
        self, statement: StatementReview, node: ast.AlterDefaultPrivilegesStmt
    ) -> None:
        action = node.action
        if action is None:
            return
        grantees = [_role_name(role) for role in action.grantees or ()]
        if action.is_grant and (PUBLIC in grantees or set(grantees) & set(CONTRACT_ROLES)):
            statement.find(
                "grant-widened",
                "error",
                f"default privileges for {', '.join(grantees)} reach every future object, "
                "beyond what security/policies.py gives",
            )

    def role_granted(self, statement: StatementReview, node: ast.GrantRoleStmt) -> None:
        if not node.is_grant:
            return
        grantees = {_role_name(role) for role in node.grantee_roles or ()}
        granted = {str(role.priv_name) for role in node.granted_roles or ()}
        options = {item.defname: getattr(item.arg, "boolval", True) for item in node.opt or ()}
        if PUBLIC in grantees or (APP_ROLE in grantees and granted - {SERVICE_ROLE}):
            statement.find(
                "role-privileges",
                "error",
                f"granting {', '.join(sorted(granted))} to {', '.join(sorted(grantees))} gives "
                "the application rights beyond the contract of security/roles.py",
            )
        elif grantees & set(CONTRACT_ROLES) and (options.get("inherit") or options.get("admin")):
            statement.find(
                "role-privileges",
                "error",
                f"{', '.join(sorted(grantees))} must not inherit or administer "
                f"{', '.join(sorted(granted))} (security/roles.py: NOINHERIT)",
            )

    def role_attributes(self, statement: StatementReview, role: str, options: Any) -> None:
        for option in options or ():
            enabled = getattr(option.arg, "boolval", getattr(option.arg, "ival", 1))
            if not enabled:
                continue
            if option.defname in BYPASSING_ATTRIBUTES:
                statement.find(
                    "role-privileges",
                    "error",
                    f"role {role} gets {option.defname.upper()}: it bypasses row level security",
                )
            elif role in CONTRACT_ROLES and option.defname in RESTRICTED_ATTRIBUTES:
                statement.find(
                    "role-privileges",
                    "error",
                    f"role {role} gets {option.defname.upper()}, which security/roles.py denies it",
                )

    def owner_changed(self, statement: StatementReview, owner: ast.RoleSpec, what: str) -> None:
        name = _role_name(owner)
        if name in CONTRACT_ROLES or name == PUBLIC:
            statement.find(
                "role-privileges",
                "error",
                f"{what} would be owned by {name}: an owner alters and drops it, and is not "
                "held to its policies unless they are forced",
            )

    # functions -----------------------------------------------------------------------------------

    def function_options(
        self, statement: StatementReview, name: str, options: Any, existing: bool
    ) -> None:
        definer = any(
            item.defname == "security" and getattr(item.arg, "boolval", False)
            for item in options or ()
        )
        fixed_path = any(
            item.defname == "set"
            and isinstance(item.arg, ast.VariableSetStmt)
            and item.arg.name == "search_path"
            and (item.arg.args or item.arg.kind == VariableSetKind.VAR_SET_CURRENT)
            for item in options or ()
        )
        if not definer or fixed_path:
            return
        if existing and self.m.value(
            "SELECT bool_and(coalesce(array_to_string(proconfig, ',') LIKE '%%search_path=%%',"
            " false)) FROM pg_proc WHERE proname = %s",
            (name.split(".")[-1],),
        ):
            return
        statement.find(
            "security-definer-search-path",
            "error",
            f"SECURITY DEFINER function {name} has no fixed search_path: a caller's own "
            "objects on the path run with the owner's rights",
        )


def _beyond_contract(
    contract: TableSecurity | None, role: str, privileges: list[tuple[str, list[str]]]
) -> list[str]:
    if contract is None:
        return ["the table is not in security/policies.py, which gives no role any right on it"]
    if not privileges:
        return ["ALL PRIVILEGES is more than security/policies.py gives"]
    problems = []
    for privilege, columns in privileges:
        if role == SERVICE_ROLE:
            if privilege not in contract.service:
                problems.append(f"{privilege} is not among the service commands of the contract")
            continue
        rule = next((item for item in contract.app if item.command == privilege), None)
        if rule is None:
            problems.append(f"the policies give {APP_ROLE} no {privilege} on it")
        elif rule.columns and (not columns or set(columns) - set(rule.columns)):
            problems.append(
                f"{privilege} is limited to the columns {', '.join(rule.columns)} by the contract"
            )
    return problems
