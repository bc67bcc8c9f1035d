"""The availability and booking API for scheduling tools (docs/BOOKING.md); it talks to the calendar
store only through ``gateway.caldav.backend``."""
