//! The `sluice` command-line client for the admin API (filled in by the CLI work).
