"""Pure helpers shared by the gateway and the emulator (time zones, iCalendar text, busy time)."""
