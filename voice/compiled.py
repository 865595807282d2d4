"""A queryset read by primary key whose SQL Django compiles once per process, not once per read.

Why: every webhook reads its call locked, with the campaign and the contact joined (89 columns). Django builds
that SELECT from scratch each time (aliases, quoting, converters for every column): a third of a status
callback's CPU went there (benchmarks/callback_cpu.py). The statement is the same every time but for the id,
so it is compiled the first time it is needed and then only executed; the rows become model instances
exactly as the queryset would build them (`Model.from_db` and Django's populators for `select_related`), so
what callers receive does not change. `tests/voice/test_compiled.py` compares both.

The queryset's own filters are compiled in with it; only the primary key varies from one read to the next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.transaction import TransactionManagementError

M = TypeVar("M", bound=Model)

# A value no primary key has, to find the id's place among the compiled statement's parameters.
_MARK = -987_654_321


@dataclass(frozen=True)
class _Plan:
    model: type[Model]
    sql: str
    params: tuple  # with _MARK where the id goes
    locks: bool  # SELECT ... FOR UPDATE: only inside a transaction
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
        connection = connections[using]
        if plan.locks and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        params = tuple(pk if value == _MARK else value for value in plan.params)
        with connection.cursor() as cursor:
            cursor.execute(plan.sql, params)
            row = cursor.fetchone()
        model = plan.model
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
        queryset = self._queryset().using(using).filter(pk=_MARK)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        if list(params).count(_MARK) != 1:
            raise ValueError("the compiled statement must take the primary key exactly once")
        select, klass_info = compiler.select, compiler.klass_info
        fields = klass_info["select_fields"]
        columns = [column for column, _sql, _alias in select[: compiler.col_count]]
        plan = _Plan(
            model=queryset.model, sql=sql, params=tuple(params), locks=bool(queryset.query.select_for_update),
            columns=len(columns),
            converters=list(compiler.get_converters(columns).items()),
            init_list=[column.target.attname for column, _sql, _alias in select[fields[0]: fields[-1] + 1]],
            model_slice=slice(fields[0], fields[-1] + 1),
            populators=get_related_populators(klass_info, select, using),
        )
        self._plans[using] = plan
        return plan
