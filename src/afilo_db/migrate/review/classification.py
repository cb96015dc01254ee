"""Every statement of the grammar, and every subcommand of ALTER TABLE and ALTER DOMAIN, with
what it does to a database in use: the allow list the review checks against.

The keys are generated from pglast itself (`grammar_statements`, `alter_table_forms`,
`ALTER_DOMAIN_FORMS`), so a pglast that learns a new statement or form makes the grammar-coverage
test fail until it is classified here. A node missing from these tables is an error of the
review (`unclassified`), whatever the size of the table it touches: the review fails closed.

Lock levels are the PostgreSQL 18 manual's ("Explicit Locking", table 13.2, and each command's
reference page). `verdict` says what the review does with it:

- `safe`: harmless at any size (it touches no existing table's rows, or takes no lock that
  queues the application's reads and writes); recorded with its lock, nothing else;
- `examined`: a comparator of its family measures what it will do (`families/`);
- `refused`: the review cannot see what it will do (code that runs statements of its own, a
  form that makes no sense in a migration): always an error.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass
from typing import Final, Literal

from pglast import ast
from pglast.enums import AlterTableType

from afilo_db.migrate.review.locks import (
    ACCESS_EXCLUSIVE,
    ACCESS_SHARE,
    ROW_EXCLUSIVE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
)

Verdict = Literal["safe", "examined", "refused"]


@dataclass(frozen=True)
class Classification:
    """What one statement form does. `lock`: the strongest lock it takes on an existing table it
    names (None: no table lock, a catalogue row at most); `rewrites`, `scans` (reads or
    validates every row under that lock), `loses_data` (can delete values), `refuses_data` (can
    fail on rows already there), `visibility` (changes who can see or do what), `transactional`
    (PostgreSQL accepts it inside a transaction block)."""

    family: str
    verdict: Verdict
    lock: str | None = None
    rewrites: bool = False
    scans: bool = False
    loses_data: bool = False
    refuses_data: bool = False
    visibility: bool = False
    transactional: bool = True

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def grammar_statements() -> frozenset[str]:
    """Every statement node pglast's parser produces (its node classes named ...Stmt)."""
    return frozenset(
        name
        for name, node in inspect.getmembers(ast, inspect.isclass)
        if issubclass(node, ast.Node) and name.endswith("Stmt")
    )


def alter_table_forms() -> frozenset[AlterTableType]:
    return frozenset(AlterTableType)


def _safe(family: str, lock: str | None = None, **effects: bool) -> Classification:
    return Classification(family, "safe", lock, **effects)


def _examined(family: str, lock: str | None = None, **effects: bool) -> Classification:
    return Classification(family, "examined", lock, **effects)


def _refused(family: str, lock: str | None = None, **effects: bool) -> Classification:
    return Classification(family, "refused", lock, **effects)


# Objects that hold no application rows and whose creation or change takes no lock on a table
# the application uses (a catalogue row of their own).
_CATALOGUE_ONLY = (
    "AlterCollationStmt",
    "AlterEventTrigStmt",
    "AlterExtensionContentsStmt",
    "AlterFdwStmt",
    "AlterForeignServerStmt",
    "AlterOpFamilyStmt",
    "AlterOperatorStmt",
    "AlterStatsStmt",
    "AlterTSConfigurationStmt",
    "AlterTSDictionaryStmt",
    "AlterUserMappingStmt",
    "CompositeTypeStmt",
    "CreateAmStmt",
    "CreateCastStmt",
    "CreateConversionStmt",
    "CreateEnumStmt",
    "CreateEventTrigStmt",
    "CreateFdwStmt",
    "CreateForeignServerStmt",
    "CreateOpClassStmt",
    "CreateOpFamilyStmt",
    "CreatePLangStmt",
    "CreateRangeStmt",
    "CreateSchemaStmt",
    "CreateSeqStmt",
    "CreateTransformStmt",
    "CreateUserMappingStmt",
    "DefineStmt",
    "DropUserMappingStmt",
)
# Session-level commands: they change nothing stored.
_SESSION = (
    "CheckPointStmt",
    "ClosePortalStmt",
    "ConstraintsSetStmt",
    "DeallocateStmt",
    "DeclareCursorStmt",
    "DiscardStmt",
    "ExplainStmt",
    "FetchStmt",
    "ListenStmt",
    "NotifyStmt",
    "PrepareStmt",
    "UnlistenStmt",
    "VariableSetStmt",
    "VariableShowStmt",
)

STATEMENTS: Final[dict[str, Classification]] = {
    **{name: _safe("catalogue") for name in _CATALOGUE_ONLY},
    **{name: _safe("session") for name in _SESSION},
    # Nodes that are parts of statements, never statements of a migration on their own.
    "RawStmt": _refused("grammar"),
    "PLAssignStmt": _refused("grammar"),
    "ReturnStmt": _refused("grammar"),
    "SetOperationStmt": _safe("dml", ACCESS_SHARE),
    "TransactionStmt": _safe("session"),
    # Tables and indexes.
    "CreateStmt": _examined("tables", SHARE_ROW_EXCLUSIVE),  # on a table a foreign key names
    "CreateTableAsStmt": _examined("tables", ACCESS_SHARE),
    "CreateForeignTableStmt": _safe("tables"),
    "ViewStmt": _safe("tables", ACCESS_EXCLUSIVE, visibility=True),  # OR REPLACE: on the view
    "IndexStmt": _examined("tables", SHARE, scans=True, refuses_data=True),
    "AlterTableStmt": _examined("alter_table", ACCESS_EXCLUSIVE),  # per form: ALTER_TABLE
    "AlterTableMoveAllStmt": _refused("maintenance", ACCESS_EXCLUSIVE, rewrites=True),
    "ReplicaIdentityStmt": _safe("alter_table", ACCESS_EXCLUSIVE),
    "RuleStmt": _refused("tables", ACCESS_EXCLUSIVE, visibility=True),
    "CreateTrigStmt": _safe("tables", SHARE_ROW_EXCLUSIVE),
    "CreateStatsStmt": _safe("tables", SHARE_UPDATE_EXCLUSIVE),
    "AlterSeqStmt": _safe("catalogue"),
    "CommentStmt": _safe("catalogue", SHARE_UPDATE_EXCLUSIVE),
    "SecLabelStmt": _safe("catalogue", SHARE_UPDATE_EXCLUSIVE),
    # Dropping, renaming, moving.
    "DropStmt": _examined("drops", ACCESS_EXCLUSIVE, loses_data=True, visibility=True),
    "TruncateStmt": _examined("drops", ACCESS_EXCLUSIVE, loses_data=True),
    "RenameStmt": _examined("drops", ACCESS_EXCLUSIVE),
    "AlterObjectSchemaStmt": _examined("drops", ACCESS_EXCLUSIVE),
    "AlterObjectDependsStmt": _safe("catalogue"),
    "DropOwnedStmt": _refused("security", ACCESS_EXCLUSIVE, loses_data=True, visibility=True),
    "ReassignOwnedStmt": _refused("security", ACCESS_EXCLUSIVE, visibility=True),
    # Rows.
    "InsertStmt": _safe("dml", ROW_EXCLUSIVE),
    "SelectStmt": _safe("dml", ACCESS_SHARE),
    "UpdateStmt": _examined("dml", ROW_EXCLUSIVE, loses_data=True),
    "DeleteStmt": _examined("dml", ROW_EXCLUSIVE, loses_data=True),
    # What MERGE does depends on its join with the source, WHEN clause by WHEN clause: the
    # rehearsal copy observes it; the review refuses to pass it on a prediction.
    "MergeStmt": _refused("dml", ROW_EXCLUSIVE, loses_data=True),
    "CopyStmt": _refused("dml", ROW_EXCLUSIVE),  # reads or writes files of the server
    # Whole-table maintenance and explicit locks.
    # VACUUM refuses a transaction block, ANALYZE (the same node) does not: the family decides.
    "VacuumStmt": _examined("maintenance", SHARE_UPDATE_EXCLUSIVE),
    "ClusterStmt": _examined("maintenance", ACCESS_EXCLUSIVE, rewrites=True),
    "ReindexStmt": _examined("maintenance", SHARE, rewrites=True),
    "RefreshMatViewStmt": _examined("maintenance", ACCESS_EXCLUSIVE, rewrites=True),
    "LockStmt": _examined("maintenance", ACCESS_EXCLUSIVE),
    # Types and domains.
    "AlterEnumStmt": _examined("types"),
    "AlterTypeStmt": _safe("types"),
    "CreateDomainStmt": _safe("types"),
    "AlterDomainStmt": _examined("types", SHARE, scans=True, refuses_data=True),
    # Code that runs statements the review cannot see.
    "DoStmt": _refused("code"),
    "CallStmt": _refused("code"),
    "ExecuteStmt": _refused("code"),
    "LoadStmt": _refused("code"),
    # Functions, roles, grants, policies: who can see or do what.
    "CreateFunctionStmt": _examined("security", visibility=True),
    "AlterFunctionStmt": _examined("security", visibility=True),
    "CreateRoleStmt": _examined("security", visibility=True),
    "AlterRoleStmt": _examined("security", visibility=True),
    "AlterRoleSetStmt": _safe("security", visibility=True),
    "DropRoleStmt": _safe("security", visibility=True),
    "GrantStmt": _examined("security", visibility=True),
    "GrantRoleStmt": _examined("security", visibility=True),
    "AlterDefaultPrivilegesStmt": _examined("security", visibility=True),
    "AlterOwnerStmt": _examined("security", ACCESS_EXCLUSIVE, visibility=True),
    "CreatePolicyStmt": _examined("security", ACCESS_EXCLUSIVE, visibility=True),
    "AlterPolicyStmt": _examined("security", ACCESS_EXCLUSIVE, visibility=True),
    "CreateExtensionStmt": _safe("catalogue", visibility=True),
    "AlterExtensionStmt": _safe("catalogue", visibility=True),
    "ImportForeignSchemaStmt": _safe("catalogue", visibility=True),
    # The cluster, not the database: PostgreSQL refuses them inside a transaction block.
    "CreatedbStmt": _safe("cluster", transactional=False),
    "DropdbStmt": _refused("cluster", loses_data=True, transactional=False),
    "AlterDatabaseStmt": _safe("cluster"),
    "AlterDatabaseSetStmt": _safe("cluster"),
    "AlterDatabaseRefreshCollStmt": _safe("cluster"),
    "AlterSystemStmt": _safe("cluster", transactional=False),
    "CreateTableSpaceStmt": _safe("cluster", transactional=False),
    "DropTableSpaceStmt": _safe("cluster", transactional=False),
    "AlterTableSpaceOptionsStmt": _safe("cluster"),
    # Logical replication: a publication's tables are read by subscribers.
    "CreatePublicationStmt": _safe("replication", SHARE_UPDATE_EXCLUSIVE, visibility=True),
    "AlterPublicationStmt": _safe("replication", SHARE_UPDATE_EXCLUSIVE, visibility=True),
    "CreateSubscriptionStmt": _refused("replication", transactional=False),
    "AlterSubscriptionStmt": _refused("replication"),
    "DropSubscriptionStmt": _refused("replication", transactional=False),
}


def _form(
    lock: str, rewrites: bool = False, scans: bool = False, **effects: bool
) -> Classification:
    return Classification("alter_table", "examined", lock, rewrites, scans, **effects)


# Every ALTER TABLE (and ALTER INDEX / VIEW / SEQUENCE / MATERIALIZED VIEW / FOREIGN TABLE)
# subcommand, from the ALTER TABLE page of the manual. The cases that depend on the details (a
# volatile default, a type change, NOT VALID, a virtual generated column, a state that is
# already so) are decided by the alter_table family.
ALTER_TABLE: Final[dict[AlterTableType, Classification]] = {
    AlterTableType.AT_AddColumn: _form(ACCESS_EXCLUSIVE, refuses_data=True),
    AlterTableType.AT_AddColumnToView: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_ColumnDefault: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_DropNotNull: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_SetNotNull: _form(ACCESS_EXCLUSIVE, scans=True, refuses_data=True),
    AlterTableType.AT_SetExpression: _form(ACCESS_EXCLUSIVE, rewrites=True, loses_data=True),
    AlterTableType.AT_DropExpression: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_SetStatistics: _form(SHARE_UPDATE_EXCLUSIVE),
    AlterTableType.AT_SetOptions: _form(SHARE_UPDATE_EXCLUSIVE),
    AlterTableType.AT_ResetOptions: _form(SHARE_UPDATE_EXCLUSIVE),
    AlterTableType.AT_SetStorage: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_SetCompression: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_DropColumn: _form(ACCESS_EXCLUSIVE, loses_data=True),
    AlterTableType.AT_AddConstraint: _form(ACCESS_EXCLUSIVE, scans=True, refuses_data=True),
    AlterTableType.AT_AddIndexConstraint: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_AlterConstraint: _form(SHARE_ROW_EXCLUSIVE),
    AlterTableType.AT_ValidateConstraint: _form(
        SHARE_UPDATE_EXCLUSIVE, scans=True, refuses_data=True
    ),
    AlterTableType.AT_DropConstraint: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_AlterColumnType: _form(
        ACCESS_EXCLUSIVE, rewrites=True, loses_data=True, refuses_data=True
    ),
    AlterTableType.AT_AlterColumnGenericOptions: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_ChangeOwner: _form(ACCESS_EXCLUSIVE, visibility=True),
    AlterTableType.AT_ClusterOn: _form(SHARE_UPDATE_EXCLUSIVE),
    AlterTableType.AT_DropCluster: _form(SHARE_UPDATE_EXCLUSIVE),
    AlterTableType.AT_SetLogged: _form(ACCESS_EXCLUSIVE, rewrites=True),
    AlterTableType.AT_SetUnLogged: _form(ACCESS_EXCLUSIVE, rewrites=True),
    AlterTableType.AT_DropOids: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_SetAccessMethod: _form(ACCESS_EXCLUSIVE, rewrites=True),
    AlterTableType.AT_SetTableSpace: _form(ACCESS_EXCLUSIVE, rewrites=True),
    AlterTableType.AT_SetRelOptions: _form(SHARE_UPDATE_EXCLUSIVE),
    AlterTableType.AT_ResetRelOptions: _form(SHARE_UPDATE_EXCLUSIVE),
    AlterTableType.AT_ReplaceRelOptions: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_EnableTrig: _form(SHARE_ROW_EXCLUSIVE),
    AlterTableType.AT_EnableAlwaysTrig: _form(SHARE_ROW_EXCLUSIVE),
    AlterTableType.AT_EnableReplicaTrig: _form(SHARE_ROW_EXCLUSIVE),
    AlterTableType.AT_DisableTrig: _form(SHARE_ROW_EXCLUSIVE),
    AlterTableType.AT_EnableTrigAll: _form(SHARE_ROW_EXCLUSIVE),
    AlterTableType.AT_DisableTrigAll: _form(SHARE_ROW_EXCLUSIVE),
    AlterTableType.AT_EnableTrigUser: _form(SHARE_ROW_EXCLUSIVE),
    AlterTableType.AT_DisableTrigUser: _form(SHARE_ROW_EXCLUSIVE),
    AlterTableType.AT_EnableRule: _form(ACCESS_EXCLUSIVE, visibility=True),
    AlterTableType.AT_EnableAlwaysRule: _form(ACCESS_EXCLUSIVE, visibility=True),
    AlterTableType.AT_EnableReplicaRule: _form(ACCESS_EXCLUSIVE, visibility=True),
    AlterTableType.AT_DisableRule: _form(ACCESS_EXCLUSIVE, visibility=True),
    AlterTableType.AT_AddInherit: _form(ACCESS_EXCLUSIVE, visibility=True),
    AlterTableType.AT_DropInherit: _form(ACCESS_EXCLUSIVE, visibility=True),
    AlterTableType.AT_AddOf: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_DropOf: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_ReplicaIdentity: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_EnableRowSecurity: _form(ACCESS_EXCLUSIVE, visibility=True),
    AlterTableType.AT_DisableRowSecurity: _form(ACCESS_EXCLUSIVE, visibility=True),
    AlterTableType.AT_ForceRowSecurity: _form(ACCESS_EXCLUSIVE, visibility=True),
    AlterTableType.AT_NoForceRowSecurity: _form(ACCESS_EXCLUSIVE, visibility=True),
    AlterTableType.AT_GenericOptions: _form(ACCESS_EXCLUSIVE),
    # The partition being attached is scanned for its partition constraint (under ACCESS
    # EXCLUSIVE on it); the parent is held SHARE UPDATE EXCLUSIVE.
    AlterTableType.AT_AttachPartition: _form(SHARE_UPDATE_EXCLUSIVE, scans=True, refuses_data=True),
    AlterTableType.AT_DetachPartition: _form(ACCESS_EXCLUSIVE, visibility=True),
    AlterTableType.AT_DetachPartitionFinalize: _form(SHARE_UPDATE_EXCLUSIVE),
    AlterTableType.AT_AddIdentity: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_SetIdentity: _form(ACCESS_EXCLUSIVE),
    AlterTableType.AT_DropIdentity: _form(ACCESS_EXCLUSIVE),
    # Internal forms PostgreSQL queues while it executes another one (an index rebuilt after a
    # type change, a constraint re-added); the grammar never writes them, so a tree holding one
    # was not made by the parser.
    AlterTableType.AT_CookedColumnDefault: Classification("alter_table", "refused"),
    AlterTableType.AT_AddIndex: Classification("alter_table", "refused"),
    AlterTableType.AT_ReAddIndex: Classification("alter_table", "refused"),
    AlterTableType.AT_ReAddConstraint: Classification("alter_table", "refused"),
    AlterTableType.AT_ReAddDomainConstraint: Classification("alter_table", "refused"),
    AlterTableType.AT_ReAddComment: Classification("alter_table", "refused"),
    AlterTableType.AT_ReAddStatistics: Classification("alter_table", "refused"),
}

# ALTER DOMAIN subcommands (AlterDomainStmt.subtype, a letter: pglast has no enum for them;
# PostgreSQL's parsenodes.h lists them). A constraint added to a domain is checked against every
# column of that type, under SHARE on each table (the ALTER DOMAIN page).
ALTER_DOMAIN_FORMS: Final[dict[str, tuple[str, Classification]]] = {
    "T": ("SET / DROP DEFAULT", _safe("types")),
    "N": ("DROP NOT NULL", _safe("types")),
    "O": ("SET NOT NULL", _examined("types", SHARE, scans=True, refuses_data=True)),
    "C": ("ADD CONSTRAINT", _examined("types", SHARE, scans=True, refuses_data=True)),
    "X": ("DROP CONSTRAINT", _safe("types")),
    "V": ("VALIDATE CONSTRAINT", _examined("types", SHARE, scans=True, refuses_data=True)),
}


def classify(node: ast.Node) -> Classification | None:
    """The statement's classification, None when the allow list does not have it."""
    return STATEMENTS.get(type(node).__name__)


def classify_alter_table(form: AlterTableType) -> Classification | None:
    return ALTER_TABLE.get(form)


def classify_alter_domain(form: str) -> Classification | None:
    found = ALTER_DOMAIN_FORMS.get(form)
    return found[1] if found else None
