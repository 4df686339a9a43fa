//! The dispatch channels', the outbox's, the probes' and the logs' options from the configuration.
