"""Sans-IO protocol engines: bytes in, events out; no I/O, no event loop, no clock."""
