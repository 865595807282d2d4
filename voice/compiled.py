"""The webhook hot path's statements, compiled once per process instead of built by the ORM on every webhook.

Why: every webhook reads its call locked, with the campaign and the contact joined (89 columns), and writes its
raw row, the call, the call's event and sometimes the contact. Django builds each of those statements from
scratch every time (aliases, quoting, a converter and a placeholder per column, signals), and that was most of
a status callback's CPU: the read alone a third (benchmarks/callback_cpu.py; docs/performance.md has the figures).
The statements are the same every time but for the values, so each is compiled once and then only executed.

- `CompiledGet(lambda: queryset).get(pk)` is `queryset.get(pk=pk)`: the queryset's own filters and locks are
  compiled in, only the id varies; rows become model instances as the queryset builds them (`Model.from_db`
  and Django's populators for `select_related`).
- `insert(obj)` and `update(obj, fields)` write what `obj.save()` writes: every field's `pre_save` (so
  `auto_now_add` stamps) and `get_db_prep_save` (so JSON) as in `save()`, with a statement compiled once per
  model and set of columns; a value only `save()` can write (an expression, a database default left unset) goes
  through `save()`. They send no `pre_save` / `post_save` signals: nothing listens for the models they write.

On PostgreSQL the statements are also prepared (parsed and planned once per connection, not on every webhook):
they run on a cursor that binds parameters on the server and that psycopg prepares from their second use;
parsing and planning the call's locked read cost PostgreSQL several times what running it does. The ORM's own
queries keep Django's client-side binding and are never prepared. Settings' `DATABASE_PREPARED_STATEMENTS` turns
it off (for a pooler that cannot keep prepared statements).

`tests/voice/test_compiled.py` compares what each gives or writes with what the ORM does.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Field, Model, QuerySet
from django.db.models.query import ModelIterable, get_related_populators
from django.db.transaction import TransactionManagementError

M = TypeVar("M", bound=Model)

# A value no primary key has, to find the id's place among the compiled statement's parameters.
_MARK = -987_654_321


# psycopg prepares a statement on this many earlier executions on the connection: from its second use, so a
# rare combination of columns used once never takes one of the hundred places psycopg keeps per connection.
PREPARE_AFTER = 1


def _cursor(connection):
    """A cursor for a compiled statement: Django's (its query log, its execute wrappers, its errors), over one
    that binds parameters on the server and prepares the statement (`_preparing_cursor`) on PostgreSQL when
    settings.DATABASE_PREPARED_STATEMENTS is on, else the ordinary one."""
    if connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        return connection.cursor()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        cursor = _preparing_cursor()(connection.connection)
    return _LoggedCursor(cursor, connection) if connection.queries_logged else connection.make_cursor(cursor)


@functools.cache
def _preparing_cursor() -> type:
    from django.db.backends.postgresql.base import ServerBindingCursor
    from psycopg.errors import FeatureNotSupported

    class PreparingCursor(ServerBindingCursor):
        """Binds on the server and lets psycopg prepare the statement, switching the connection's
        prepare_threshold on for this execution only. It stays off (Django's default) for the ORM's queries, so
        psycopg keeps no count of their texts and does not throw away the prepared statements each time the ORM
        rolls back to a savepoint (it does on every ROLLBACK it sees; a full rollback still clears them).

        A column type changed under a running process (a migration) makes PostgreSQL refuse a prepared
        statement ("cached plan must not change result type"): inside a transaction the caller fails once and its
        rollback makes psycopg forget them; outside one (the outbox) nothing would, so they are dropped here
        (psycopg notices DEALLOCATE ALL) and the statement runs again."""

        def execute(self, query, params=None, **kwargs):
            try:
                return self._execute_prepared(query, params, **kwargs)
            except FeatureNotSupported as exc:
                if self.connection.autocommit and "cached plan must not change result type" in str(exc):
                    self._execute_prepared("DEALLOCATE ALL")
                    return self._execute_prepared(query, params, **kwargs)
                raise

        def _execute_prepared(self, query, params=None, **kwargs):
            connection = self.connection
            threshold, connection.prepare_threshold = connection.prepare_threshold, PREPARE_AFTER
            try:
                return super().execute(query, params, **kwargs)
            finally:
                connection.prepare_threshold = threshold

    return PreparingCursor


class _LoggedCursor(CursorDebugWrapper):
    """Logs a statement with its values, as Django logs one bound on the client (the query counts of the tests,
    DEBUG's log): psycopg keeps no text of a prepared statement's execution for Django to log."""

    def execute(self, sql, params=None):
        with self.debug_sql(self.db.ops.compose_sql(sql, params), params):
            return CursorWrapper.execute(self, sql, params)


@dataclass(frozen=True)
class _Plan:
    model: type[Model]
    sql: str
    params: tuple  # with _MARK where the id goes
    locks: bool  # SELECT ... FOR UPDATE: only inside a transaction
    ids: tuple[int | None, int | None]  # the ids the primary key column can hold (None: no bound)
    columns: int
    converters: list
    init_list: list[str]
    model_slice: slice
    populators: list


class CompiledGet(Generic[M]):
    """`CompiledGet(lambda: queryset).get(pk)` is `queryset.get(pk=pk)` with the SQL compiled once.

    The queryset is built on first use (the models must be loaded by then), once per database alias."""

    def __init__(self, queryset: Callable[[], QuerySet[M]]):
        self._queryset = queryset
        self._plans: dict[str, _Plan] = {}

    def get(self, pk: int, *, using: str = "default") -> M:
        plan = self._plans.get(using) or self._compile(using)
        connection, model = connections[using], plan.model
        if plan.locks and connection.get_autocommit() and connection.features.has_select_for_update:
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        low, high = plan.ids
        row = None
        # An id no column can hold matches nothing, as the ORM answers it (SQLite would raise instead).
        if (low is None or pk >= low) and (high is None or pk <= high):
            params = tuple(pk if value == _MARK else value for value in plan.params)
            with _cursor(connection) as cursor:
                cursor.execute(plan.sql, params)
                row = cursor.fetchone()
        if row is None:
            raise model.DoesNotExist(f"{model.__name__} matching query does not exist.")
        row = list(row[: plan.columns])
        for position, (functions, expression) in plan.converters:
            value = row[position]
            for function in functions:
                value = function(value, expression, connection)
            row[position] = value
        obj = model.from_db(using, plan.init_list, row[plan.model_slice])
        for populator in plan.populators:
            populator.populate(row, obj)
        return obj

    def _compile(self, using: str) -> _Plan:
        # No ordering, as get() does: one row is read.
        queryset = self._queryset().using(using).filter(pk=_MARK).order_by()
        query = queryset.query
        if (query.annotations or query.extra or queryset._prefetch_related_lookups
                or queryset._iterable_class is not ModelIterable):
            raise ValueError("CompiledGet reads model rows only: no annotations, extra, prefetch or values()")
        compiler = query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        if list(params).count(_MARK) != 1:
            raise ValueError("the compiled statement must take the primary key exactly once")
        select, klass_info = compiler.select, compiler.klass_info
        fields = klass_info["select_fields"]
        columns = [column for column, _sql, _alias in select[: compiler.col_count]]
        plan = _Plan(
            model=queryset.model, sql=sql, params=tuple(params), locks=bool(query.select_for_update),
            ids=compiler.connection.ops.integer_field_range(queryset.model._meta.pk.get_internal_type()),
            columns=len(columns),
            converters=list(compiler.get_converters(columns).items()),
            init_list=[column.target.attname for column, _sql, _alias in select[fields[0]: fields[-1] + 1]],
            model_slice=slice(fields[0], fields[-1] + 1),
            populators=get_related_populators(klass_info, select, using),
        )
        self._plans[using] = plan
        return plan


@dataclass(frozen=True)
class _Write:
    sql: str
    fields: list[Field]
    returning: list[Field]


_writes: dict[tuple, _Write] = {}


def _save_values(obj: Model, fields: list[Field], *, add: bool, connection) -> list | None:
    """The values Django's save() would send for these fields; None if one is an expression (a database
    default not overridden, an F()), which only save() knows how to write. Like save(), refuses an unsaved
    related object and takes the id of one saved since it was assigned."""
    obj._prepare_related_fields_for_save(operation_name="save")
    values = []
    for field in fields:
        value = field.pre_save(obj, add)
        if hasattr(value, "resolve_expression"):
            return None
        values.append(field.get_db_prep_save(value, connection=connection))
    return values


def _statement(key: tuple, build: Callable[[], _Write]) -> _Write:
    statement = _writes.get(key)
    if statement is None:
        statement = build()
        if any(hasattr(field, "get_placeholder") for field in statement.fields):
            raise ValueError(f"{key[1].__name__}: a field with its own placeholder needs save()")
        _writes[key] = statement
    return statement


def insert(obj: Model, *, using: str = "default") -> None:
    """`obj.save(force_insert=True)` for a new row whose primary key the database gives."""
    if obj.pk is not None:
        raise ValueError("insert() is for rows the database numbers")
    model, connection = type(obj), connections[using]
    meta, quote = model._meta, connection.ops.quote_name

    def build() -> _Write:
        fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field and not f.generated]
        returning = list(meta.db_returning_fields)
        columns = ", ".join(quote(f.column) for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        returned = ", ".join(quote(f.column) for f in returning)
        # Identifiers from the model, quoted by the backend; every value is a parameter.
        sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders}) RETURNING {returned}"  # noqa: S608
        return _Write(sql=sql, fields=fields, returning=returning)

    statement = _statement((using, model, "insert"), build)
    values = _save_values(obj, statement.fields, add=True, connection=connection)
    if values is None:
        obj.save(force_insert=True, using=using)
        return
    # As save(): a failed statement inside atomic() marks it for rollback, so a caller that catches the error
    # inside an outer atomic() gets the inner savepoint rolled back, not an aborted transaction.
    with transaction.mark_for_rollback_on_error(using), _cursor(connection) as cursor:
        cursor.execute(statement.sql, values)
        returned = cursor.fetchone()
    for field, value in zip(statement.returning, returned, strict=True):
        for converter in field.get_db_converters(connection):
            value = converter(value, field, connection)
        setattr(obj, field.attname, value)
    obj._state.adding, obj._state.db = False, using


def update(obj: Model, fields: list[str] | set[str], *, using: str = "default") -> None:
    """`obj.save(update_fields=fields)`: the row must exist (as save() says, DatabaseError otherwise)."""
    model, connection = type(obj), connections[using]
    meta, quote = model._meta, connection.ops.quote_name
    if obj.pk is None:
        raise ValueError("update() needs a row with a primary key")
    names = tuple(sorted(fields))
    if not names:
        return

    def build() -> _Write:
        # Names or attnames ("bridged_to" / "bridged_to_id"), each column once; only columns of this row.
        targets = list(dict.fromkeys(meta.get_field(name) for name in names))
        if any(not f.concrete or f.primary_key or f.generated or f.many_to_many for f in targets):
            raise ValueError(f"update() writes plain columns only: {names}")
        assignments = ", ".join(f"{quote(f.column)} = %s" for f in targets)
        sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
        return _Write(sql=sql, fields=targets, returning=[])

    statement = _statement((using, model, names), build)
    values = _save_values(obj, statement.fields, add=False, connection=connection)
    if values is None:
        obj.save(update_fields=names, using=using)
        return
    with transaction.mark_for_rollback_on_error(using), _cursor(connection) as cursor:
        cursor.execute(statement.sql, [*values, obj.pk])
        updated = cursor.rowcount
    if updated != 1:
        raise DatabaseError("Save with update_fields did not affect any rows.")
