"""ALTER TABLE and ALTER INDEX, form by form: the lock each form takes (`classification`), its
rewrite or scan, the rows it fails on and the values it changes or loses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from pglast import ast
from pglast.enums import (
    AlterTableType,
    ConstrType,
    NullTestType,
    ObjectType,
)
from psycopg import sql as pgsql

from afilo_db.db.versions import server_version_at_least
from afilo_db.migrate.review.classification import classify_alter_table
from afilo_db.migrate.review.families.dml import null_after_writes
from afilo_db.migrate.review.families.maintenance import maintenance
from afilo_db.migrate.review.families.registry import compares
from afilo_db.migrate.review.families.tables import unique_violations
from afilo_db.migrate.review.findings import StatementReview
from afilo_db.migrate.review.locks import (
    ACCESS_EXCLUSIVE,
    LEVELS,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
)
from afilo_db.migrate.review.measurements import MeasurementError
from afilo_db.migrate.review.syntax import (
    column_names,
    deparse,
    identifier,
    relation_name,
)

if TYPE_CHECKING:
    from afilo_db.migrate.review.analysis import Analyzer

SERIAL_TYPES: Final = frozenset(
    {"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"}
)


@compares(ast.AlterTableStmt)
def alter_table(analyzer: Analyzer, statement: StatementReview, node: ast.AlterTableStmt) -> None:
    name = relation_name(node.relation)
    if node.objtype == ObjectType.OBJECT_INDEX:
        alter_index(analyzer, statement, name, node)
        return
    existing = analyzer.existing(statement, name)
    table = str(name)
    for command in node.cmds or ():
        form = classify_alter_table(command.subtype)
        if form is None or form.verdict == "refused" or form.lock is None:
            unknown_form(statement, table, command.subtype)
            continue
        analyzer.lock(statement, form.lock)
        if command.subtype in (
            AlterTableType.AT_DisableRowSecurity,
            AlterTableType.AT_NoForceRowSecurity,
        ):
            what = (
                "DISABLE ROW LEVEL SECURITY"
                if command.subtype == AlterTableType.AT_DisableRowSecurity
                else "NO FORCE ROW LEVEL SECURITY"
            )
            analyzer.access.row_security_weakened(statement, table, what)
        elif command.subtype == AlterTableType.AT_ChangeOwner:
            analyzer.access.owner_changed(statement, command.newowner, f"table {table}")
        elif command.subtype == AlterTableType.AT_DetachPartition and command.def_.concurrent:
            statement.transactional = False
        if not existing:
            continue
        statement.scans |= form.scans
        alter_command(analyzer, statement, table, command, form.rewrites)


def unknown_form(statement: StatementReview, table: str, form: AlterTableType) -> None:
    statement.find(
        "unclassified",
        "error",
        f"ALTER TABLE {table} ({form.name}): a form the review's allow list does not have",
    )


def alter_index(
    analyzer: Analyzer, statement: StatementReview, index: str | None, node: Any
) -> None:
    for command in node.cmds or ():
        form = classify_alter_table(command.subtype)
        if form is None or form.verdict == "refused" or form.lock is None:
            unknown_form(statement, str(index), command.subtype)
            continue
        analyzer.lock(statement, form.lock)
        if form.rewrites and index and analyzer.m.index_table(index):
            analyzer.lock(statement, ACCESS_EXCLUSIVE)
            maintenance(
                analyzer, statement, analyzer.m.index_table(index), f"ALTER INDEX {index} (rewrite)"
            )


def alter_command(
    analyzer: Analyzer, statement: StatementReview, table: str, command: Any, rewrites: bool
) -> None:
    subtype = command.subtype
    if subtype == AlterTableType.AT_AddColumn:
        add_column(analyzer, statement, table, command.def_)
    elif subtype == AlterTableType.AT_DropColumn:
        drop_column(analyzer, statement, table, command.name)
    elif subtype == AlterTableType.AT_AlterColumnType:
        change_type(analyzer, statement, table, command.name, command.def_)
    elif subtype == AlterTableType.AT_SetNotNull:
        set_not_null(analyzer, statement, table, command.name)
    elif subtype == AlterTableType.AT_SetExpression:
        generated = analyzer.m.value(
            "SELECT attgenerated FROM pg_attribute WHERE attrelid = to_regclass(%s)"
            " AND attname = %s",
            (table, command.name),
        )
        if generated != "v":
            rewrite(analyzer, statement, f"SET EXPRESSION of the stored column {command.name}")
    elif subtype == AlterTableType.AT_AddConstraint and isinstance(command.def_, ast.Constraint):
        add_constraint(analyzer, statement, table, command.def_)
    elif subtype == AlterTableType.AT_ValidateConstraint:
        validate(analyzer, statement, table, command.name)
    elif subtype == AlterTableType.AT_AttachPartition:
        attach(analyzer, statement, table, command.def_)
    elif subtype in (
        AlterTableType.AT_SetLogged,
        AlterTableType.AT_SetUnLogged,
        AlterTableType.AT_SetTableSpace,
        AlterTableType.AT_SetAccessMethod,
    ):
        relation_move(analyzer, statement, table, command)
    elif rewrites:
        rewrite(analyzer, statement, subtype.name)


def rewrite(analyzer: Analyzer, statement: StatementReview, why: str) -> None:
    statement.rewrites = True
    statement.find(
        "table-rewrite",
        analyzer.blocking(statement),
        f"{why} rewrites all {statement.table_rows} rows of {statement.table} (and its "
        "indexes) under ACCESS EXCLUSIVE: no reads or writes meanwhile",
        statement.table_rows,
    )


def relation_move(analyzer: Analyzer, statement: StatementReview, table: str, command: Any) -> None:
    persistence, method, space = analyzer.m.row(
        "SELECT c.relpersistence, coalesce(a.amname, ''), coalesce(t.spcname, 'pg_default')"
        " FROM pg_class c LEFT JOIN pg_am a ON a.oid = c.relam"
        " LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE c.oid = to_regclass(%s)",
        (table,),
    )
    unchanged = {
        AlterTableType.AT_SetLogged: persistence == "p",
        AlterTableType.AT_SetUnLogged: persistence == "u",
        AlterTableType.AT_SetAccessMethod: (command.name or "heap") == method,
        AlterTableType.AT_SetTableSpace: command.name == space,
    }[command.subtype]
    if unchanged:
        statement.notes.append(f"{command.subtype.name}: already so, nothing to rewrite")
        return
    words = {
        AlterTableType.AT_SetLogged: "SET LOGGED",
        AlterTableType.AT_SetUnLogged: "SET UNLOGGED",
        AlterTableType.AT_SetAccessMethod: f"SET ACCESS METHOD {command.name}",
        AlterTableType.AT_SetTableSpace: f"SET TABLESPACE {command.name}",
    }[command.subtype]
    maintenance(analyzer, statement, table, f"ALTER TABLE {words}")


def drop_column(analyzer: Analyzer, statement: StatementReview, table: str, column: str) -> None:
    if analyzer.m.column_type(table, column) is None:
        statement.notes.append(f"{table}.{column} does not exist (yet): nothing to lose")
        return
    statement.find(
        "breaking-change",
        "error",
        f"dropping {table}.{column} breaks code that still reads or writes it",
    )
    lost = analyzer.measure(
        statement,
        f"non-null values in {column}",
        pgsql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(
            identifier(table), pgsql.Identifier(column)
        ),
    )
    if lost:
        statement.find("data-loss", "error", f"dropping {table}.{column} loses {lost} values", lost)


def set_not_null(analyzer: Analyzer, statement: StatementReview, table: str, column: str) -> None:
    facts = analyzer.m.row(
        "SELECT a.attnotnull, EXISTS (SELECT FROM pg_constraint c WHERE c.conrelid = a.attrelid"
        " AND c.contype = 'c' AND c.convalidated AND pg_get_constraintdef(c.oid)"
        " = format('CHECK ((%%I IS NOT NULL))', a.attname))"
        " FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attname = %s"
        " AND NOT a.attisdropped",
        (table, column),
    )
    quoted = pgsql.Identifier(column).as_string(analyzer.m.connection)
    if facts is None and (table, column) in analyzer.added_columns:
        default = analyzer.added_columns[(table, column)]
        facts, now_null = (False, False), (f"({default}) IS NULL" if default else "true")
    elif facts is None:
        raise MeasurementError(f"column {table}.{column} does not exist yet")
    else:
        now_null = f"{quoted} IS NULL"
    already, checked = facts
    statement.scans = False
    if already:
        statement.notes.append(f"{column} is NOT NULL already: nothing to check")
        return
    if checked or (table, column) in analyzer.proven_not_null:
        statement.find(
            "set-not-null-scan",
            "info",
            f"SET NOT NULL on {table}.{column} skips its scan: a validated "
            f"CHECK ({column} IS NOT NULL) proves it",
        )
        return
    statement.scans = True
    nulls = analyzer.measure(
        statement,
        f"rows with {column} NULL",
        pgsql.SQL("SELECT count(*) FROM {} WHERE {}").format(
            identifier(table), pgsql.SQL(null_after_writes(analyzer, table, column, now_null))
        ),
    )
    if nulls:
        statement.find(
            "constraint-violated",
            "error",
            f"{nulls} rows of {table} have {column} NULL: SET NOT NULL fails on them",
            nulls,
        )
    elif statement.table_rows:
        statement.find(
            "set-not-null-scan",
            analyzer.scanning(statement),
            f"SET NOT NULL scans all {statement.table_rows} rows of {table} "
            f"({analyzer.size_words(statement)}) under ACCESS EXCLUSIVE",
            statement.table_rows,
        )


def add_column(analyzer: Analyzer, statement: StatementReview, table: str, column: Any) -> None:
    constraints = list(column.constraints or ())
    kinds = {ConstrType(constraint.contype) for constraint in constraints}
    default = next(
        (c.raw_expr for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None
    )
    type_name = column.typeName.names[-1].sval if column.typeName else ""
    rows = statement.table_rows or 0
    analyzer.added_columns[(table, str(column.colname))] = (
        deparse(default) if default is not None else None
    )
    why = None
    if any(
        c.contype == ConstrType.CONSTR_GENERATED and c.generated_kind != "v" for c in constraints
    ):
        why = "a stored generated column"
    elif ConstrType.CONSTR_IDENTITY in kinds:
        why = "an identity column (a sequence number for every row)"
    elif type_name in SERIAL_TYPES:
        why = f"a {type_name} column (a nextval() default for every row)"
    elif default is not None and analyzer.m.is_volatile(default):
        why = "a volatile default"
    if why:
        rewrite(analyzer, statement, f"adding {table}.{column.colname}, {why},")
    if (
        ConstrType.CONSTR_NOTNULL in kinds
        and default is None
        and type_name not in SERIAL_TYPES
        and not (kinds & {ConstrType.CONSTR_GENERATED, ConstrType.CONSTR_IDENTITY})
    ):
        statement.find(
            "not-null-without-default",
            "error",
            f"new column {table}.{column.colname} is NOT NULL without a default: "
            + (
                f"it fails on the {rows} existing rows"
                if rows
                else "the code still running inserts without it and fails"
            ),
            rows,
        )
    if kinds & {ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY}:
        statement.find(
            "blocking-index-build",
            analyzer.blocking(statement),
            f"a UNIQUE column on {table} builds its index under ACCESS EXCLUSIVE",
            rows,
        )
    for constraint in constraints:
        if constraint.contype == ConstrType.CONSTR_FOREIGN and constraint.pktable is not None:
            # REFERENCES on a new column holds the referenced table as ADD FOREIGN KEY does.
            statement.other_locks[str(relation_name(constraint.pktable))] = SHARE_ROW_EXCLUSIVE


def change_type(
    analyzer: Analyzer, statement: StatementReview, table: str, name: str, column: Any
) -> None:
    old = analyzer.m.column_type(table, name)
    if old is None:
        raise MeasurementError(f"column {table}.{name} does not exist yet")
    new = deparse(column.typeName)
    if not binary_coercible(analyzer, old, new):
        rewrite(analyzer, statement, f"changing {table}.{name} from {old} to {new}")
    failures, changed = conversion(analyzer, statement, table, name, old, new, column.raw_default)
    if failures:
        statement.find(
            "constraint-violated",
            "error",
            f"converting {table}.{name} to {new} fails on {failures} existing rows: "
            "the migration would stop there",
            failures,
        )
    if changed:
        statement.find(
            "data-loss",
            "error",
            f"converting {table}.{name} to {new} changes {changed} values",
            changed,
        )


def conversion(
    analyzer: Analyzer,
    statement: StatementReview,
    table: str,
    name: str,
    old: str,
    new: str,
    using: ast.Node | None,
) -> tuple[int, int]:
    """(rows the conversion fails on, values it changes), comparing typed values: a string
    becoming a number is compared as a number, anything else in its old type.

    Rows it fails on are counted in one scan where PostgreSQL's input function decides (a
    string read as the new type, a string too long for it); otherwise, once the one-scan
    conversion fails, row by row."""
    facts = analyzer.m.row(
        "SELECT format_type(oid, NULL), typcategory, %s LIKE '%%(%%' FROM pg_type"
        " WHERE oid = to_regtype(%s)",
        (new, new),
    )
    if facts is None:
        raise MeasurementError(f"type {new} does not exist yet")
    base, category, modified = facts
    old_category = analyzer.m.value(
        "SELECT typcategory FROM pg_type WHERE oid = to_regtype(%s)", (old,)
    )
    column = pgsql.Identifier(name).as_string(analyzer.m.connection)
    expression = deparse(using) if using is not None else column
    converted = f"CAST(({expression}) AS {new})"
    # pg_input_is_valid is PostgreSQL 16's. Before it, a row the conversion fails on is found by
    # converting it (conversion_by_row, once the one-scan conversion fails), a string too long
    # for its new length by comparing it with the cast that cuts it short, and a changed value
    # by comparing the texts: a string the new type writes otherwise ('007' as 7) then counts as
    # changed, a false alarm at worst, never a loss missed.
    input_checked = server_version_at_least(analyzer.m.connection, 16)
    if old_category == "S" and category != "S" and not input_checked:
        differs = f"({converted})::text IS DISTINCT FROM {column}::text"
    elif old_category == "S" and category != "S":
        # A string that is no valid value of the new type cannot survive as itself.
        differs = (
            f"NOT pg_input_is_valid({column}::text, {literal(base)})"
            f" OR {converted} IS DISTINCT FROM CAST({column} AS {base})"
        )
    else:
        differs = f"CAST({converted} AS {old}) IS DISTINCT FROM {column}"
    source = identifier(table).as_string(analyzer.m.connection)
    present = f"{column} IS NOT NULL"
    valid = None
    if category in ("S", "V") and modified:
        # A too long string or bit string: the assignment ALTER TYPE makes refuses it
        # (an explicit cast would cut it short instead; trailing spaces it drops either way).
        valid = (
            f"pg_input_is_valid(({expression})::text, {literal(new)})"
            if input_checked
            else f"rtrim(({converted})::text) = rtrim(({expression})::text)"
        )
    elif input_checked and old_category == "S" and reads_column_as(using, name, new):
        # A string becomes the new type through the type's input function.
        valid = f"pg_input_is_valid({column}::text, {literal(new)})"
    failures = 0
    if valid is not None:
        failures = analyzer.measure(
            statement,
            f"rows {name} cannot be converted on",
            pgsql.SQL(f"SELECT count(*) FROM {source} WHERE {present} AND NOT {valid}"),
        )
    attempted = valid or "true"
    label = f"values of {name} changed by the conversion"
    try:
        # count() of the converted value makes every row convert, whatever `differs` skips.
        changed = analyzer.measure(
            statement,
            label,
            pgsql.SQL(
                f"SELECT count(*) FILTER (WHERE {present} AND {attempted} AND ({differs}))"
                f" + 0 * count({converted}) FILTER (WHERE {attempted}) FROM {source}"
            ),
        )
    except MeasurementError:
        failures, changed = analyzer.m.conversion_by_row(table, expression, new, differs, present)
        statement.measurements[f"rows {name} cannot be converted on"] = failures
        statement.measurements[label] = changed
    return failures, changed


def base_name(analyzer: Analyzer, type_name: str) -> str | None:
    name = analyzer.m.value("SELECT format_type(to_regtype(%s), NULL)", (type_name,))
    return str(name) if name else None


def binary_coercible(analyzer: Analyzer, old: str, new: str) -> bool:
    """Type changes PostgreSQL makes without rewriting: the same type with a larger (or no)
    length, precision or scale-preserving precision, and binary-coercible casts (varchar to
    text)."""
    facts = analyzer.m.row(
        "SELECT o.oid = n.oid, EXISTS (SELECT FROM pg_cast WHERE castsource = o.oid"
        " AND casttarget = n.oid AND castmethod = 'b'),"
        " format_type(o.oid, NULL), %s NOT LIKE '%%(%%'"
        " FROM pg_type o, pg_type n WHERE o.oid = to_regtype(%s) AND n.oid = to_regtype(%s)",
        (new, old, new),
    )
    if facts is None:
        raise MeasurementError(f"type {new} does not exist yet")
    same, binary, base, unlimited = facts
    if {base, str(base_name(analyzer, new))} == {
        "timestamp without time zone",
        "timestamp with time zone",
    }:
        # No rewrite when the session's time zone is UTC (PostgreSQL 12 and later).
        return bool(
            analyzer.m.value(
                "SELECT utc_offset = interval '0' AND NOT is_dst FROM pg_timezone_names"
                " WHERE name = current_setting('TimeZone')"
            )
        ) and type_modifiers(old) == type_modifiers(new)
    sizes_old, sizes_new = type_modifiers(old), type_modifiers(new)
    if same:
        if unlimited or sizes_old == sizes_new:
            return True
        if not sizes_old:
            return False
        if base == "numeric" and len(sizes_old) == len(sizes_new) == 2:
            return sizes_new[0] >= sizes_old[0] and sizes_new[1] == sizes_old[1]
        if base in ("character varying", "bit varying") or base.startswith(
            ("timestamp", "time", "interval")
        ):
            return sizes_new[0] >= sizes_old[0]
        return False
    return bool(binary and unlimited and base != "bpchar" and not old.startswith("character("))


def add_constraint(
    analyzer: Analyzer, statement: StatementReview, table: str, constraint: Any
) -> None:
    kind = ConstrType(constraint.contype)
    rows = statement.table_rows or 0
    name = constraint.conname or kind.name
    not_valid = bool(constraint.skip_validation)
    if kind in (
        ConstrType.CONSTR_UNIQUE,
        ConstrType.CONSTR_PRIMARY,
        ConstrType.CONSTR_EXCLUSION,
    ):
        if constraint.indexname is None:
            statement.scans = True
            statement.find(
                "blocking-index-build",
                analyzer.blocking(statement),
                f"adding {name} builds an index on {table} ({analyzer.size_words(statement)}) "
                "under ACCESS EXCLUSIVE (no reads or writes meanwhile)",
                rows,
            )
            if kind != ConstrType.CONSTR_EXCLUSION:
                unique_violations(
                    analyzer,
                    statement,
                    table,
                    constraint.keys,
                    primary=kind == ConstrType.CONSTR_PRIMARY,
                )
        return
    if kind == ConstrType.CONSTR_CHECK:
        expression = constraint.raw_expr
        proves = not_null_column(expression)
        if not_valid:
            statement.scans = False
            analyzer.transaction.not_valid.add((table, name))
            if proves:
                analyzer.unvalidated_not_null[(table, name)] = proves
            return
        if proves:
            analyzer.proven_not_null.add((table, proves))
        violations = analyzer.measure(
            statement,
            "rows violating the constraint",
            pgsql.SQL("SELECT count(*) FROM {} WHERE NOT ({})").format(
                analyzer.rows_of(table), pgsql.SQL(deparse(expression))
            ),
        )
    elif kind == ConstrType.CONSTR_FOREIGN:
        referenced = relation_name(constraint.pktable)
        analyzer.lock(statement, SHARE_ROW_EXCLUSIVE)
        if referenced:
            statement.other_locks[referenced] = SHARE_ROW_EXCLUSIVE
        if not_valid or referenced is None:
            statement.scans = False
            analyzer.transaction.not_valid.add((table, name))
            return
        violations = foreign_key_violations(analyzer, statement, table, referenced, constraint)
    else:
        return
    if violations:
        statement.find(
            "constraint-violated",
            "error",
            f"{violations} rows of {table} already break {name}",
            violations,
        )
    elif rows:
        statement.find(
            "constraint-scan",
            analyzer.scanning(statement),
            f"adding {name} scans all {rows} rows of {table} ({analyzer.size_words(statement)}) "
            f"while holding {statement.lock}",
            rows,
        )


def foreign_key_violations(
    analyzer: Analyzer, statement: StatementReview, table: str, referenced: str, constraint: Any
) -> int:
    local = column_names(constraint.fk_attrs)
    remote = column_names(constraint.pk_attrs) or local
    match = pgsql.SQL(" AND ").join(
        pgsql.SQL("r.{} = t.{}").format(pgsql.Identifier(a), pgsql.Identifier(b))
        for a, b in zip(remote, local, strict=False)
    )
    present = pgsql.SQL(" AND ").join(
        pgsql.SQL("t.{} IS NOT NULL").format(pgsql.Identifier(c)) for c in local
    )
    return analyzer.measure(
        statement,
        "rows violating the constraint",
        pgsql.SQL(
            "SELECT count(*) FROM {} WHERE {} AND NOT EXISTS (SELECT 1 FROM {} AS r WHERE {})"
        ).format(analyzer.rows_of(table, "t"), present, identifier(referenced), match),
    )


def validate(analyzer: Analyzer, statement: StatementReview, table: str, name: str) -> None:
    proves = analyzer.unvalidated_not_null.get((table, name)) or analyzer.m.value(
        "SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid"
        " AND a.attnum = ANY (c.conkey) WHERE c.conrelid = to_regclass(%s) AND c.conname = %s"
        " AND pg_get_constraintdef(c.oid) = format('CHECK ((%%I IS NOT NULL)) NOT VALID',"
        " a.attname)",
        (table, name),
    )
    if proves:
        analyzer.proven_not_null.add((table, str(proves)))
    held = analyzer.transaction.locks.get(table)
    if (table, name) in analyzer.transaction.not_valid or (
        held is not None and LEVELS.index(held) > LEVELS.index(SHARE_UPDATE_EXCLUSIVE)
    ):
        statement.find(
            "validate-in-same-transaction",
            analyzer.blocking(statement),
            f"VALIDATE CONSTRAINT {name} scans {table} ({analyzer.size_words(statement)}) in "
            f"the transaction that holds {held or ACCESS_EXCLUSIVE} on it since ADD "
            "CONSTRAINT: the validation runs under that lock",
            statement.table_rows,
        )


def attach(analyzer: Analyzer, statement: StatementReview, table: str, command: Any) -> None:
    partition = relation_name(command.name)
    if partition is None or not analyzer.m.table_exists(partition):
        return
    statement.other_locks[partition] = ACCESS_EXCLUSIVE
    rows = analyzer.m.size(partition).rows
    if rows:
        statement.find(
            "constraint-scan",
            "error" if rows >= analyzer.limits.large_rows else "warning",
            f"ATTACH PARTITION scans all {rows} rows of {partition} under ACCESS EXCLUSIVE "
            "on it (a CHECK constraint matching the bound, validated first, skips the scan)",
            rows,
        )


def not_null_column(expression: Any) -> str | None:
    """The column a CHECK (col IS NOT NULL) is about, if it is one."""
    if (
        isinstance(expression, ast.NullTest)
        and expression.nulltesttype == NullTestType.IS_NOT_NULL
        and isinstance(expression.arg, ast.ColumnRef)
        and expression.arg.fields
    ):
        return str(expression.arg.fields[-1].sval)
    return None


def reads_column_as(using: ast.Node | None, column: str, new: str) -> bool:
    """Whether the conversion is the column itself, or the column cast to the new type."""
    if using is None:
        return True
    if not isinstance(using, ast.TypeCast) or not isinstance(using.arg, ast.ColumnRef):
        return False
    fields = using.arg.fields or ()
    return (
        bool(fields)
        and getattr(fields[-1], "sval", None) == column
        and (deparse(using.typeName) == new)
    )


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def type_modifiers(type_name: str) -> list[int]:
    if "(" not in type_name:
        return []
    inside = type_name.split("(", 1)[1].split(")", 1)[0]
    return [int(part) for part in inside.split(",") if part.strip().isdigit()]
