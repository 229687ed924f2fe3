"""ManageError, the one exception the SDK raises, and the translations into it.

Whatever goes wrong below the SDK — a rejected field, a workflow's typed failure, Temporal
down or refusing, the inventory database down — reaches the caller as
`ManageError(type, message)`, with `type` from volume_manage.shared.errors (for a field,
`InvalidInput.host`-style: the type names the field). Callers (the CLI, the REST API) map
types to exit codes and HTTP statuses without knowing Temporal's or SQLAlchemy's errors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeout
from temporalio.service import RPCError, RPCStatusCode

from volume_manage.shared import errors
from volume_manage.shared.errors import RequestError

T = TypeVar("T")
P = ParamSpec("P")

# Types that say "the tool could not reach what it needs", not "the request was wrong".
UNREACHABLE = frozenset({errors.TEMPORAL_UNAVAILABLE, errors.TEMPORAL_ERROR,
                         errors.INVENTORY_UNAVAILABLE})


class ManageError(Exception):
    """A request that failed; `type` is the error type (e.g. InvalidInput.host)."""

    def __init__(self, error_type: str, message: str) -> None:
        self.type = error_type
        self.message = message
        super().__init__(message)

    @property
    def kind(self) -> str:
        """The type without the field: `InvalidInput` for `InvalidInput.host`."""
        return self.type.split(".", 1)[0]

    @property
    def unreachable(self) -> bool:
        """Temporal or the inventory could not be reached: worth retrying later."""
        return self.type in UNREACHABLE


def rejected(err: RequestError) -> ManageError:
    """A field-level validation error as the SDK raises it."""
    return ManageError(err.type_name, str(err))


def inventory_unavailable(err: Exception) -> ManageError:
    detail = str(getattr(err, "orig", None) or err).strip().splitlines()
    return ManageError(errors.INVENTORY_UNAVAILABLE,
                       f"inventory database unavailable: {detail[0] if detail else err!r}")


# How the SDK's transport reports a connection that dropped or could not be made, as
# UNKNOWN or CANCELLED rather than UNAVAILABLE ("transport error", "tcp connect error",
# "operation was canceled", "h2 protocol error": which one depends on where the cut caught
# the call; the first three seen with a proxy cut under load). The SDK never cancels a
# call itself: an asyncio cancellation arrives as CancelledError, not as an RPCError.
_TRANSPORT_WORDS = ("transport error", "connect error", "connection", "h2 protocol",
                    "broken pipe", "operation was canceled")


def temporal_error(err: RPCError) -> ManageError:
    """TemporalUnavailable when Temporal is down or the connection dropped (worth retrying),
    else TemporalError (Temporal answered, and refused)."""
    message = err.message.lower()
    transient = err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED) or (
        err.status in (RPCStatusCode.UNKNOWN, RPCStatusCode.CANCELLED)
        and any(w in message for w in _TRANSPORT_WORDS))
    return ManageError(errors.TEMPORAL_UNAVAILABLE if transient else errors.TEMPORAL_ERROR,
                       f"Temporal: {err.message}")


def translated(call: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Temporal refusing or unreachable mid-call, and the inventory database failing, become
    a ManageError like every other failure (never a raw RPCError or SQLAlchemyError)."""

    @functools.wraps(call)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await call(*args, **kwargs)
        except RequestError as err:
            raise rejected(err) from None
        except RPCError as err:
            raise temporal_error(err) from None
        except SQLAlchemyError as err:
            raise inventory_unavailable(err) from None

    return wrapper


async def workflow_result(handle: WorkflowHandle[Any, T]) -> T:
    """The workflow's result, or its failure as a ManageError of the failure's own type."""
    try:
        return await handle.result()
    except WorkflowFailureError as err:
        cause = err.cause
        while isinstance(cause, ActivityError) and cause.cause is not None:
            cause = cause.cause
        if isinstance(cause, TemporalTimeout):
            raise ManageError(errors.TIMEOUT,
                              "the backend's worker did not answer in time") from None
        if isinstance(cause, ApplicationError):
            raise ManageError(cause.type or errors.MANAGE_FAILED_UNKNOWN,
                              cause.message) from None
        raise ManageError(errors.MANAGE_FAILED_UNKNOWN, str(cause or err)) from None
