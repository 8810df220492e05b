//! Reverse ETL against the real PostgreSQL and MariaDB on 127.0.0.1, and SQLite.
