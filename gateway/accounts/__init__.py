"""Gateway users, connected Exchange accounts, app passwords, calendar settings and the credential vault."""
