"""schemathesis over the served OpenAPI schema, bounded: valid and invalid requests to every
operation as an admin; no answer is a 500 or an undocumented fault body, and the rejected
requests leave no row and start no workflow."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from sqlalchemy import func, select

from tests.support.stack import Stack
from volume_manage.inventory.db import transaction
from volume_manage.inventory.models import Snapshot, Volume
from volume_manage.rest.faults import FAULT_NAMES

EXAMPLES_PER_MODE = 40


def volume_rows(database_url: str) -> tuple[int, int]:
    """Volume and snapshot rows: a rejected request makes neither."""
    with transaction(database_url, readonly=True) as session:
        return (int(session.scalar(select(func.count()).select_from(Volume)) or 0),
                int(session.scalar(select(func.count()).select_from(Snapshot)) or 0))


async def test_fuzzed_requests_get_cinder_answers_and_leave_nothing(
    stack: Stack, served: str
) -> None:
    rows_before = volume_rows(stack.database_url)
    schema = await asyncio.to_thread(schemathesis.openapi.from_url, f"{served}/openapi.json")
    headers = {"X-Auth-Token": f"admin:{stack.project}", "OpenStack-API-Version": "volume 3.8"}
    problems: list[str] = []
    statuses: set[int] = set()

    def fuzz(mode: GenerationMode) -> None:
        @settings(max_examples=EXAMPLES_PER_MODE, deadline=timedelta(seconds=15),
                  database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=schema.as_strategy(generation_mode=mode))
        def one(case: Any) -> None:
            response = case.call(base_url=served, headers=headers, timeout=30)
            statuses.add(response.status_code)
            where = f"{case.method} {case.formatted_path} -> {response.status_code}"
            if response.status_code >= 500:
                problems.append(f"{where}: {response.text[:200]}")
            elif response.status_code >= 400:
                body = response.json()
                name = FAULT_NAMES.get(response.status_code, "computeFault")
                if list(body) != [name] or not body[name].get("message"):
                    problems.append(f"{where}: not a Cinder fault: {response.text[:200]}")

        one()

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        await asyncio.to_thread(fuzz, mode)

    assert not problems, "\n".join(problems[:10])
    assert 400 in statuses
    assert volume_rows(stack.database_url) == rows_before
    started = [w.id async for w in stack.client.list_workflows(
        f'TaskQueue="{stack.settings.api_task_queue}" OR TaskQueue='
        f'"volume-backend-{stack.backend}"')]
    assert started == [], started
