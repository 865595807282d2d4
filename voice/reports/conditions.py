"""The call rules of voice.models (a person answered, a machine answered) as SQL conditions for the reports' raw
queries. Each is generated from the very Q object the ORM pages use, through Django's own compiler, so a rule has
one definition: change `human_answered_q` and the reports, the rollups and the wallboard change together.

A condition reads the calls under the alias the report queries give them (`c`) and carries its values as named
parameters (`%(human_0)s`, ...), the style of every report query: `PARAMS` goes with each query that uses one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Q

from voice.models import Call, human_answered_q, machine_q

ALIAS = "c"
# Django's compiled SQL holds a value's place with %s and writes a literal percent sign as %%.
_PLACEHOLDER = re.compile(r"%%|%s")


@dataclass(frozen=True)
class Condition:
    sql: str  # a boolean SQL expression over the calls aliased ALIAS, with named parameters
    params: dict


def call_condition(q: Q, *, name: str, alias: str = ALIAS, using: str = DEFAULT_DB_ALIAS) -> Condition:
    """`q`, a filter on a call's own columns, as SQL over the calls aliased `alias`; its values become parameters
    `<name>_0`, `<name>_1`, ... Compiling needs no database connection, so this can run at import."""
    query = Call.objects.filter(q).query
    if set(query.alias_map) != {Call._meta.db_table}:
        # A join would need its own alias in every report query: keep the rules to the call's own row.
        raise ValueError(f"{name}: a report condition may use only the call's own columns")
    where = query.where.relabeled_clone({Call._meta.db_table: alias})
    sql, values = where.as_sql(query.get_compiler(using=using), connections[using])
    params = {}

    def bind(match: re.Match) -> str:
        if match.group() == "%%":
            return "%%"
        key = f"{name}_{len(params)}"
        params[key] = values[len(params)]
        return f"%({key})s"

    sql = _PLACEHOLDER.sub(bind, sql)
    if len(params) != len(values):
        raise ValueError(f"{name}: {len(values)} values for {len(params)} placeholders in {sql}")
    return Condition(sql=f"({sql})", params=params)


HUMAN = call_condition(human_answered_q(), name="human")
MACHINE = call_condition(machine_q(), name="machine")
PARAMS = {**HUMAN.params, **MACHINE.params}
