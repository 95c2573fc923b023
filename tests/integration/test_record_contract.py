"""The warehouse's ad_impressions is the record contract's (adpipe/record.py): each field a
column of the contract's type and nullability, holding the CHECK `Field.column_sql` renders.
A probe table made from the contract's own SQL is compared with the migrated table, column by
column, as PostgreSQL itself prints both."""

from __future__ import annotations

import helpers
import pytest
from adpipe.record import CONTRACT

pytestmark = pytest.mark.stack

COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       coalesce((SELECT array_agg(def ORDER BY def)
                 FROM pg_constraint c, pg_get_constraintdef(c.oid) AS def
                 WHERE c.conrelid = a.attrelid AND c.contype = 'c' AND c.conkey = ARRAY[a.attnum]),
                '{}')
FROM pg_attribute a
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY(%s)
ORDER BY a.attnum
"""


def test_the_table_holds_each_field_as_the_contract_declares_it() -> None:
    names = [f.name for f in CONTRACT]
    probe = (
        "CREATE TEMPORARY TABLE contract_probe ("
        + ", ".join(f.column_sql() for f in CONTRACT)
        + ")"
    )
    with helpers.warehouse() as conn, conn.cursor() as cur:
        cur.execute(probe)
        cur.execute(COLUMNS, ("contract_probe", names))
        declared = cur.fetchall()
        cur.execute(COLUMNS, ("ad_impressions", names))
        migrated = cur.fetchall()
        conn.rollback()
    assert [row[0] for row in declared] == names
    assert migrated == declared
    checks = {name: constraints for name, _, _, constraints in migrated}
    assert checks["placement"] == [
        "CHECK (((char_length(placement) >= 1) AND (char_length(placement) <= 64)))"
    ]
