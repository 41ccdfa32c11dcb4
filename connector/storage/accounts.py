"""Which storage account holds the connector's state, from the settings, in order of
precedence; the setting's name comes with it so that an error can name what is in use."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from connector.settings import Settings, SettingsError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


def state_service(
    s: Settings, credential: Callable[[], TokenCredential]
) -> tuple[str, Callable[[], Any]]:
    """(the setting in use, a function that connects to its Table service)."""
    from connector.storage.rows import connect

    if s.state_storage is not None:
        text = s.state_storage.get_secret_value()
        return "STATE_STORAGE", lambda: connect(connection_string=text)
    if s.state_storage_account_url:
        url = s.state_storage_account_url
        return "STATE_STORAGE__accountUrl", lambda: connect(
            account_url=url, credential=credential()
        )
    if s.webjobs_storage is not None:
        text = s.webjobs_storage.get_secret_value()
        return "AzureWebJobsStorage", lambda: connect(connection_string=text)
    if s.webjobs_storage_account:
        url = f"https://{s.webjobs_storage_account}.table.core.windows.net"
        return "AzureWebJobsStorage__accountName", lambda: connect(
            account_url=url, credential=credential()
        )
    raise SettingsError(
        "state storage not configured: set AzureWebJobsStorage, STATE_STORAGE or "
        "STATE_STORAGE__accountUrl"
    )
