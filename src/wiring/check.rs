//! Loading the configuration with the checks that need a subsystem's own parser.
