"""Gateway users, connected Exchange accounts, app passwords and the credential vault."""
