"""The benchmark harness behind ``python -m gateway bench`` (see docs/PERFORMANCE.md).

- ``stack``: the EWS emulator and the gateway as separate processes, provisioned over the admin API;
- ``dav``: the CalDAV requests the workloads send (real HTTP, aiohttp);
- ``floor``: the same EWS calls made directly with exchangelib, the lower bound a gateway adds to;
- ``workloads``: the timed workloads; ``report``: statistics, the table and the JSON document.
"""
