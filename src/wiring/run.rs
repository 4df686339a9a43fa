//! The run's settings (ingest, features, detection, categories, cases, the budget) from the configuration.
