"""Logs: `--log-format text` (readable, the default) or `json` (one object a line), every
line carrying the volume, the workflow and the step when they are known.

The fields come from the SDK's `extra` (`temporal_activity`, `temporal_workflow`) and from a
context variable that `StepLogInterceptor` sets while a step (an activity) runs; the same
interceptor logs each step's outcome and duration.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import re
import time
from typing import Any

import temporalio.client
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from volume_manage.observability import ObservabilityError

log = logging.getLogger("volume-manage.steps")

LOG_FORMATS = ("text", "json")
STEP_FIELDS = ("volume_id", "workflow_id", "step")


@dataclasses.dataclass(frozen=True)
class StepContext:
    volume_id: str | None
    workflow_id: str
    step: str


CURRENT_STEP: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "volume_manage_step", default=None)

_VOLUME_IN_ID = re.compile(r"(?:^|-)volume-([0-9a-f-]{36})$")


def volume_of_workflow(workflow_id: str) -> str | None:
    """The volume id in `manage-volume-<id>` / `unmanage-volume-<id>`, else None."""
    match = _VOLUME_IN_ID.search(workflow_id)
    return match.group(1) if match else None


def volume_of_arg(arg: Any) -> str | None:
    """The volume a step works on, from its input (VolumeEntry, Compensation, ...)."""
    for candidate in (arg, getattr(arg, "entry", None)):
        if candidate is None:
            continue
        vid = getattr(candidate, "volume_id", None)
        if isinstance(vid, str):
            return vid
        vid = getattr(candidate, "id", None)
        if isinstance(vid, str) and hasattr(candidate, "project_id"):
            return vid
    return None


class _StepLogging(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        step = info.activity_type
        volume_id = volume_of_arg(input.args[0]) if input.args else None
        token = CURRENT_STEP.set(StepContext(volume_id or volume_of_workflow(
            info.workflow_id or ""), info.workflow_id or "", step))
        start = time.perf_counter()
        try:
            result = await self.next.execute_activity(input)
        except BaseException as err:
            log.warning("step %s failed in %.0f ms (attempt %d): %s", step,
                        (time.perf_counter() - start) * 1000, info.attempt, err)
            raise
        finally:
            CURRENT_STEP.reset(token)
        # the token is reset; log with the step's context explicitly
        log.info("step %s ok in %.0f ms", step, (time.perf_counter() - start) * 1000, extra={
            "volume_id": volume_id, "workflow_id": info.workflow_id, "step": step})
        return result


class StepLogInterceptor(temporalio.client.Interceptor, Interceptor):
    """Puts the running step into the log context and logs its outcome. A client interceptor
    too, so that every worker built from the client gets it."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _StepLogging(next)


class _StepFields(logging.Filter):
    """Put volume_id, workflow_id and step on every record, from the SDK's extras or the
    running step's context."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        ctx = CURRENT_STEP.get()
        act: dict[str, Any] = fields.get("temporal_activity") or {}
        wf: dict[str, Any] = fields.get("temporal_workflow") or {}
        workflow_id = (fields.get("workflow_id") or act.get("workflow_id")
                       or wf.get("workflow_id") or (ctx.workflow_id if ctx else None))
        fields["workflow_id"] = workflow_id
        fields["step"] = fields.get("step") or act.get("activity_type") or (
            ctx.step if ctx else None)
        fields["volume_id"] = fields.get("volume_id") or (ctx.volume_id if ctx else None) or (
            volume_of_workflow(workflow_id) if workflow_id else None)
        if wf and not fields.get("workflow_type"):
            fields["workflow_type"] = wf.get("workflow_type")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the step fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in (*STEP_FIELDS, "workflow_type"):
            value = record.__dict__.get(key)
            if value:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """Readable lines; the step fields follow the message in brackets when known."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        known = [f"{key}={record.__dict__[key]}" for key in STEP_FIELDS
                 if record.__dict__.get(key)]
        return f"{line} [{' '.join(known)}]" if known else line


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Configure the root logger for a worker process: readable text or JSON lines."""
    if fmt not in LOG_FORMATS:
        raise ObservabilityError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler()
    handler.addFilter(_StepFields())
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler], force=True)
