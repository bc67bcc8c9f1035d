"""Translation of the CalDAV backend interface into EWS calls through exchangelib, and the EWS emulator."""
