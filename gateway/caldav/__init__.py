"""The CalDAV/WebDAV protocol (RFC 4918, 4791, 6578, 6638). Knows nothing of Exchange."""
