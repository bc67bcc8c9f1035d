"""An EWS (Exchange Web Services) emulator: a separate aiohttp server that only speaks SOAP."""
