//! Destination types against their real counterparts (PostgreSQL, object storage, NATS, segment-forward) and the compliance test every type passes.
