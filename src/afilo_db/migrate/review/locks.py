"""Lock levels, what each blocks, and the lock, rewrite and scan of each ALTER TABLE form."""

from __future__ import annotations

from pglast.enums import AlterTableType

# Lock levels and what each one blocks while it is held.
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
SHARE = "SHARE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
BLOCKS = {
    ACCESS_EXCLUSIVE: "reads and writes",
    SHARE_ROW_EXCLUSIVE: "writes",
    SHARE: "writes",
    SHARE_UPDATE_EXCLUSIVE: "other schema changes and VACUUM (not reads or writes)",
    ROW_EXCLUSIVE: "nothing but writers of the same rows",
}

# ALTER TABLE sub-commands: (lock, rewrites the table, scans the table). From the ALTER TABLE
# page of the PostgreSQL manual; the rewrite / scan cases that depend on the details
# (ADD COLUMN with a volatile default, a type change, NOT VALID) are decided in _alter_command.
ALTER_TABLE_FORMS: dict[AlterTableType, tuple[str, bool, bool]] = {
    AlterTableType.AT_AddColumn: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_DropColumn: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_AlterColumnType: (ACCESS_EXCLUSIVE, True, False),
    AlterTableType.AT_SetNotNull: (ACCESS_EXCLUSIVE, False, True),
    AlterTableType.AT_DropNotNull: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_ColumnDefault: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_AddConstraint: (ACCESS_EXCLUSIVE, False, True),
    AlterTableType.AT_ValidateConstraint: (SHARE_UPDATE_EXCLUSIVE, False, True),
    AlterTableType.AT_DropConstraint: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_EnableRowSecurity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_DisableRowSecurity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_ForceRowSecurity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_NoForceRowSecurity: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_SetLogged: (ACCESS_EXCLUSIVE, True, False),
    AlterTableType.AT_SetUnLogged: (ACCESS_EXCLUSIVE, True, False),
    AlterTableType.AT_SetStatistics: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_SetOptions: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_SetRelOptions: (SHARE_UPDATE_EXCLUSIVE, False, False),
    AlterTableType.AT_AttachPartition: (SHARE_UPDATE_EXCLUSIVE, False, True),
    AlterTableType.AT_DetachPartition: (ACCESS_EXCLUSIVE, False, False),
    AlterTableType.AT_EnableTrig: (SHARE_ROW_EXCLUSIVE, False, False),
    AlterTableType.AT_DisableTrig: (SHARE_ROW_EXCLUSIVE, False, False),
}
