// Reverse ETL page: filled in by console/retl.
