"""Model instances from rows of hand-written SQL (db.connect, db.tokens): a model's column list
for a ``SELECT``/``RETURNING``, each column named (``<prefix><attname>``) so a row is read by
name, never by position, and ``Model.from_db`` on the values with the database's and the
fields' converters applied, as the ORM would."""

from functools import cache
from typing import Any

from django.db.models import Field, Model


def column_name(field: "Field[Any, Any]") -> str:
    """A concrete field's column (``Field.column`` is ``None`` only for a field without a column
    of its own, such as a ``ForeignObject``)."""
    if field.column is None:
        raise ValueError(f"{field} has no column")
    return field.column


@cache  # asked on every message and $disconnect; a model's fields do not change in a process
def single_table(model: type[Model]) -> bool:
    """Whether every concrete field of ``model`` is a column of its own table (not so for a
    multi-table-inheritance child, whose parents' fields are in their tables: the ORM joins
    those, the hand-written SQL does not)."""
    table = model._meta.db_table
    return all(f.model is None or f.model._meta.db_table == table for f in model._meta.concrete_fields)


class ModelColumns:
    """The concrete columns of ``model`` on ``connection``, qualified by ``table`` (an alias or
    the quoted table name). Kept per database alias and shared by threads: it holds no
    connection (each thread has its own), only what its vendor's SQL and converters need."""

    def __init__(self, model: type[Model], connection: Any, table: str) -> None:
        qn = connection.ops.quote_name
        self.model = model
        fields = list(model._meta.concrete_fields)
        self.names = [f.attname for f in fields]
        self.pk_index = fields.index(model._meta.pk)  # NULL there: no row (a LEFT JOIN's miss)
        self.columns = [f"{table}.{qn(f.column)}" for f in fields]
        self.table = table
        self._keys: dict[str, list[str]] = {}  # prefix -> the row's keys of this model's columns
        self._quote = qn
        self.converters = []
        for field in fields:
            column = field.get_col(model._meta.db_table)
            self.converters.append(
                (connection.ops.get_db_converters(column) + field.get_db_converters(connection), column)
            )

    def __len__(self) -> int:
        return len(self.names)

    def named(self, prefix: str) -> list[str]:
        """The columns for a ``SELECT``/``RETURNING`` list, each named ``<prefix><attname>``."""
        return [f"{column} AS {self._quote(key)}" for column, key in zip(self.columns, self.keys(prefix), strict=True)]

    def keys(self, prefix: str) -> list[str]:
        """The names ``named(prefix)`` gives the columns, in their order."""
        keys = self._keys.get(prefix)
        if keys is None:
            keys = self._keys[prefix] = [prefix + name for name in self.names]
        return keys

    def instance_from(self, row: dict[str, Any], prefix: str, connection: Any) -> Model:
        """The instance from a row read by name (``fetch_named``), its columns ``named(prefix)``."""
        return self.instance([row[key] for key in self.keys(prefix)], connection)

    def instance(self, values: Any, connection: Any) -> Model:
        """The instance from this model's values, in column order, read on ``connection``."""
        values = list(values)
        for i, (funcs, column) in enumerate(self.converters):
            for func in funcs:
                values[i] = func(values[i], column, connection)
        return self.model.from_db(connection.alias, self.names, values)


def fetch_named(cursor: Any, names: list[str] | None = None) -> dict[str, Any] | None:
    """The cursor's next row as ``{column name: value}``, or ``None``. ``names``: the columns'
    names as the statement gave them (``AS``), kept with it, so the hot path does not ask the
    driver for its description on every call."""
    row = cursor.fetchone()
    if row is None:
        return None
    if names is None:
        names = [column[0] for column in cursor.description]
    return dict(zip(names, row, strict=True))
