"""The CalDAV backend over EWS (see :mod:`.facade`); ``EwsBackend`` is imported from here by gateway/app.py."""

from gateway.ews.backend.facade import EwsBackend

__all__ = ["EwsBackend"]
