"""archive, where a row leaves: old days moved to the S3 archive, restored and reconciled."""
