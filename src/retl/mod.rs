//! Reverse ETL with consent (SPEC §10): warehouse connections, models, consent column mapping,
//! checkpointed syncs. (Being built.)
