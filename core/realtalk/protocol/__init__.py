"""Sans-I/O Realtime protocol core: events in, events to send out."""
