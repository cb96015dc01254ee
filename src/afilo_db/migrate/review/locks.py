"""Lock levels, what each blocks, and the lock, rewrite and scan of each ALTER TABLE form.

From the PostgreSQL 18 manual: "Explicit Locking" (table 13.2, which command takes which lock)
and the ALTER TABLE page (which forms rewrite or scan the table).
"""

from __future__ import annotations

from typing import Final

from pglast.enums import AlterTableType

# Lock levels, weakest first, and what each one blocks while it is held.
ACCESS_SHARE = "ACCESS SHARE"
ROW_SHARE = "ROW SHARE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
# In the order of LockStmt.mode (1 = ACCESS SHARE ... 8 = ACCESS EXCLUSIVE).
LEVELS: Final = (
    ACCESS_SHARE,
    ROW_SHARE,
    ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    EXCLUSIVE,
    ACCESS_EXCLUSIVE,
)
BLOCKS: Final = {
    ACCESS_EXCLUSIVE: "reads and writes",
    EXCLUSIVE: "writes and locking reads",
    SHARE_ROW_EXCLUSIVE: "writes",
    SHARE: "writes",
    SHARE_UPDATE_EXCLUSIVE: "other schema changes and VACUUM (not reads or writes)",
    ROW_EXCLUSIVE: "nothing but writers of the same rows",
    ROW_SHARE: "nothing but EXCLUSIVE locks",
    ACCESS_SHARE: "nothing but ACCESS EXCLUSIVE locks",
}


def stronger(first: str | None, second: str) -> str:
    return second if first is None or LEVELS.index(second) > LEVELS.index(first) else first


def blocks_traffic(lock: str | None) -> bool:
    """Whether `lock` stops the application's reads or writes while it is held."""
    return lock is not None and LEVELS.index(lock) >= LEVELS.index(SHARE)


# ALTER TABLE sub-commands: (lock, rewrites the table, scans the table). The cases that depend
# on the details (ADD COLUMN with a volatile default, a type change, NOT VALID, a virtual
# generated column) are decided by the analysis. A form missing here counts as ACCESS EXCLUSIVE
# with a rewrite: an unknown form must not pass as harmless.
ALTER_TABLE_FORMS: Final[dict[AlterTableType, tuple[str, bool, bool]]] = {
    AlterTableType.AT_AddColumn: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_AddColumnToView: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_ColumnDefault: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_DropNotNull: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_SetNotNull: (ACCESS_EXCLUSIVE, False, True),
    AlterTableType.AT_SetExpression: (ACCESS_EXCLUSIVE, True, False),
    AlterTableType.AT_DropExpression: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_SetStatistics: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_SetOptions: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_ResetOptions: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_SetStorage: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_SetCompression: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_DropColumn: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_AddConstraint: (ACCESS_EXCLUSIVE, False, True),
    AlterTableType.AT_AddIndexConstraint: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_AlterConstraint: (SHARE_ROW_EXCLUSIVE, False, False),
    AlterTableType.AT_ValidateConstraint: (SHARE_UPDATE_EXCLUSIVE, False, True),
    AlterTableType.AT_DropConstraint: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_AlterColumnType: (ACCESS_EXCLUSIVE, True, False),
    AlterTableType.AT_AlterColumnGenericOptions: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_ChangeOwner: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_ClusterOn: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_DropCluster: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_SetLogged: (ACCESS_EXCLUSIVE, True, False),
    AlterTableType.AT_SetUnLogged: (ACCESS_EXCLUSIVE, True, False),
    AlterTableType.AT_DropOids: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_SetAccessMethod: (ACCESS_EXCLUSIVE, True, False),
    AlterTableType.AT_SetTableSpace: (ACCESS_EXCLUSIVE, True, False),
    AlterTableType.AT_SetRelOptions: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_ResetRelOptions: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_ReplaceRelOptions: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_EnableTrig: (SHARE_ROW_EXCLUSIVE, False, False),
    AlterTableType.AT_EnableAlwaysTrig: (SHARE_ROW_EXCLUSIVE, False, False),
    AlterTableType.AT_EnableReplicaTrig: (SHARE_ROW_EXCLUSIVE, False, False),
    AlterTableType.AT_DisableTrig: (SHARE_ROW_EXCLUSIVE, False, False),
    AlterTableType.AT_EnableTrigAll: (SHARE_ROW_EXCLUSIVE, False, False),
    AlterTableType.AT_DisableTrigAll: (SHARE_ROW_EXCLUSIVE, False, False),
    AlterTableType.AT_EnableTrigUser: (SHARE_ROW_EXCLUSIVE, False, False),
    AlterTableType.AT_DisableTrigUser: (SHARE_ROW_EXCLUSIVE, False, False),
    AlterTableType.AT_EnableRule: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_EnableAlwaysRule: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_EnableReplicaRule: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_DisableRule: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_AddInherit: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_DropInherit: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_AddOf: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_DropOf: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_ReplicaIdentity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_EnableRowSecurity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_DisableRowSecurity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_ForceRowSecurity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_NoForceRowSecurity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_GenericOptions: (ACCESS_EXCLUSIVE, False, False),
    # The partition being attached is scanned for its partition constraint (under ACCESS
    # EXCLUSIVE on it); the parent is held SHARE UPDATE EXCLUSIVE.
    AlterTableType.AT_AttachPartition: (SHARE_UPDATE_EXCLUSIVE, False, True),
    AlterTableType.AT_DetachPartition: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_DetachPartitionFinalize: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_AddIdentity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_SetIdentity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_DropIdentity: (ACCESS_EXCLUSIVE, False, False),
}
UNKNOWN_ALTER_FORM: Final = (ACCESS_EXCLUSIVE, True, False)
