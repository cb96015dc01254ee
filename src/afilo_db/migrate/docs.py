"""`afilo-db generate`: what derives from the schema, read from the live migrated database.

docs/schema.md lists every table, column, constraint, index and policy, with a Mermaid ER
diagram; docs/schema.svg is the same graph drawn by Graphviz `dot`. The document carries a hash of
the schema it describes, so `migrate status` can tell when it is stale.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from afilo_db.errors import OperationError

DOCS_DIRECTORY = Path("docs")
HASH_MARKER = re.compile(r"<!-- schema-hash: ([0-9a-f]{64}) -->")

_TABLES = """
SELECT c.oid, c.relname, c.relkind = 'p', c.relrowsecurity, c.relforcerowsecurity,
       obj_description(c.oid, 'pg_class')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND c.relname <> 'alembic_version'
ORDER BY c.relname
"""
_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attgenerated <> ''
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
_CONSTRAINTS = """
SELECT conname, contype, pg_get_constraintdef(oid), confrelid::regclass::text,
       (SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute
        WHERE attrelid = conrelid AND attnum = ANY(conkey))
FROM pg_constraint WHERE conrelid = %s AND contype <> 'n' ORDER BY conname
"""
_INDEXES = """
SELECT i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = %s ORDER BY i.relname
"""
_POLICIES = """
SELECT policyname, cmd, roles::text[], permissive, qual, with_check
FROM pg_policies WHERE schemaname = 'public' AND tablename = %s ORDER BY policyname
"""
CONSTRAINT_KINDS = {
    "p": "primary key",
    "u": "unique",
    "f": "foreign key",
    "c": "check",
    "x": "exclude",
    "t": "constraint trigger",
}


@dataclass(frozen=True)
class GeneratedDocs:
    markdown: Path
    image: Path
    schema_hash: str


def read_schema(url: str) -> list[dict[str, Any]]:
    """Every table of the public schema as plain data, in a stable order."""
    tables: list[dict[str, Any]] = []
    with psycopg.connect(url) as connection:
        for oid, name, partitioned, rls, forced, comment in connection.execute(_TABLES):
            tables.append(
                {
                    "name": name,
                    "comment": comment,
                    "partitioned": partitioned,
                    "row_level_security": {"enabled": rls, "forced": forced},
                    "columns": [
                        {
                            "name": row[0],
                            "type": row[1],
                            "nullable": not row[2],
                            "default": row[3],
                            "generated": row[4],
                        }
                        for row in connection.execute(_COLUMNS, (oid,))
                    ],
                    "constraints": [
                        {
                            "name": row[0],
                            "kind": CONSTRAINT_KINDS.get(row[1], row[1]),
                            "definition": row[2],
                            "references": row[3] if row[1] == "f" else None,
                            "columns": list(row[4] or []),
                        }
                        for row in connection.execute(_CONSTRAINTS, (oid,))
                    ],
                    "indexes": [
                        {"name": row[0], "definition": row[1]}
                        for row in connection.execute(_INDEXES, (oid,))
                    ],
                    "policies": [
                        {
                            "name": row[0],
                            "command": row[1],
                            "roles": list(row[2]),
                            "permissive": row[3],
                            "using": row[4],
                            "with_check": row[5],
                        }
                        for row in connection.execute(_POLICIES, (name,))
                    ],
                }
            )
    return tables


def schema_hash(tables: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()


def live_schema_hash(url: str) -> str:
    return schema_hash(read_schema(url))


def documented_hash(markdown: Path) -> str | None:
    """The schema hash written in a generated document (None: no document)."""
    if not markdown.exists():
        return None
    found = HASH_MARKER.search(markdown.read_text())
    return found.group(1) if found else None


def _mermaid_type(type_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", type_name).strip("_")


def _relationships(tables: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(parent, child, columns) for every foreign key."""
    return [
        (str(constraint["references"]), table["name"], ", ".join(constraint["columns"]))
        for table in tables
        for constraint in table["constraints"]
        if constraint["kind"] == "foreign key"
    ]


def mermaid(tables: list[dict[str, Any]]) -> str:
    lines = ["erDiagram"]
    for parent, child, columns in _relationships(tables):
        lines.append(f'    {parent} ||--o{{ {child} : "{columns}"')
    for table in tables:
        keys = {
            column: kind
            for constraint in table["constraints"]
            for column in constraint["columns"]
            for kind in [
                {"primary key": "PK", "foreign key": "FK", "unique": "UK"}.get(constraint["kind"])
            ]
            if kind
        }
        lines.append(f"    {table['name']} {{")
        for column in table["columns"]:
            key = f" {keys[column['name']]}" if column["name"] in keys else ""
            lines.append(f"        {_mermaid_type(column['type'])} {column['name']}{key}")
        lines.append("    }")
    return "\n".join(lines)


def graphviz(tables: list[dict[str, Any]]) -> str:
    """The same graph in Graphviz's DOT language, one record per table."""
    lines = [
        "digraph schema {",
        "  graph [rankdir=LR, fontname=Helvetica, splines=true, nodesep=0.4, ranksep=1.2];",
        "  node [shape=plaintext, fontname=Helvetica, fontsize=10];",
        '  edge [color="#555555", arrowhead=crow, arrowtail=tee, dir=both];',
    ]
    for table in tables:
        rows = "".join(
            f'<tr><td align="left">{html.escape(column["name"])}</td>'
            f'<td align="left"><font color="#666666">{html.escape(column["type"])}</font></td></tr>'
            for column in table["columns"]
        )
        lines.append(
            f'  "{table["name"]}" [label=<<table border="0" cellborder="1" cellspacing="0">'
            f'<tr><td colspan="2" bgcolor="#dde6f3"><b>{html.escape(table["name"])}</b></td></tr>'
            f"{rows}</table>>];"
        )
    for parent, child, columns in _relationships(tables):
        lines.append(f'  "{parent}" -> "{child}" [label="{columns}", fontsize=8];')
    lines.append("}")
    return "\n".join(lines)


def markdown(tables: list[dict[str, Any]], digest: str, image_name: str) -> str:
    out = [
        "# Schema reference",
        "",
        f"<!-- schema-hash: {digest} -->",
        "Generated by `afilo-db generate` from the migrated database; do not edit by hand.",
        "",
        f"![entity-relationship diagram]({image_name})",
        "",
        "```mermaid",
        mermaid(tables),
        "```",
        "",
    ]
    for table in tables:
        rls = table["row_level_security"]
        out += [f"## {table['name']}", ""]
        if table["comment"]:
            out += [table["comment"], ""]
        flags = []
        if table["partitioned"]:
            flags.append("partitioned")
        if rls["enabled"]:
            flags.append("row-level security" + (" (forced)" if rls["forced"] else ""))
        if flags:
            out += ["*" + ", ".join(flags) + "*", ""]
        out += ["| column | type | null | default |", "| --- | --- | --- | --- |"]
        for column in table["columns"]:
            default = column["default"] or ""
            if column["generated"]:
                default = f"generated: {default}"
            out.append(
                f"| `{column['name']}` | {column['type']} | {'yes' if column['nullable'] else 'no'}"
                f" | {_cell(default)} |"
            )
        for title, items, render in (
            (
                "Constraints",
                table["constraints"],
                lambda c: f"{c['kind']}: {_cell(c['definition'])}",
            ),
            ("Indexes", table["indexes"], lambda i: _cell(i["definition"])),
            ("Policies", table["policies"], _policy),
        ):
            if items:
                out += ["", f"**{title}**", ""]
                out += [f"- `{item['name']}`: {render(item)}" for item in items]
        out.append("")
    return "\n".join(out)


def _cell(text: str) -> str:
    return f"`{text}`".replace("|", "\\|") if text else ""


def _policy(policy: dict[str, Any]) -> str:
    parts = [policy["command"], "for " + ", ".join(policy["roles"])]
    if not policy["permissive"]:
        parts.append("restrictive")
    if policy["using"]:
        parts.append(f"using {_cell(policy['using'])}")
    if policy["with_check"]:
        parts.append(f"with check {_cell(policy['with_check'])}")
    return ", ".join(parts)


def render_svg(dot_source: str) -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise OperationError(
            "Graphviz `dot` is needed to draw the diagram: install the `graphviz` package"
        )
    result = subprocess.run(
        [dot, "-Tsvg"], input=dot_source, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise OperationError(f"dot failed: {result.stderr.strip()}")
    return result.stdout


def generate(url: str, directory: Path = DOCS_DIRECTORY) -> GeneratedDocs:
    tables = read_schema(url)
    digest = schema_hash(tables)
    directory.mkdir(parents=True, exist_ok=True)
    image = directory / "schema.svg"
    image.write_text(render_svg(graphviz(tables)))
    document = directory / "schema.md"
    document.write_text(markdown(tables, digest, image.name))
    return GeneratedDocs(document, image, digest)
