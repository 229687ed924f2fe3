"""The Temporal client every part of the project uses: the project's data converter (and
payload encryption when a key is set), a clear ManageError when Temporal cannot be reached."""

from __future__ import annotations

from temporalio.client import Client

from volume_manage.sdk.errors import ManageError
from volume_manage.shared import errors
from volume_manage.shared.codec import key_from_env, with_encryption
from volume_manage.shared.config import Settings
from volume_manage.shared.converter import DATA_CONVERTER


async def connect(settings: Settings) -> Client:
    """A Temporal client for `settings` (the workers use it too)."""
    try:
        converter = with_encryption(DATA_CONVERTER, key_from_env())
        return await Client.connect(settings.temporal_address,
                                    namespace=settings.temporal_namespace,
                                    data_converter=converter)
    except ValueError as err:  # a malformed encryption key
        raise ManageError(errors.INVALID_CONFIGURATION, str(err)) from None
    except RuntimeError as err:
        raise ManageError(errors.TEMPORAL_UNAVAILABLE,
                          f"cannot reach Temporal at {settings.temporal_address}: {err}") from None
