"""Exchange-to-CalDAV gateway: Exchange calendars (EWS) served over CalDAV, with free/busy."""

__version__ = "0.1.0"
