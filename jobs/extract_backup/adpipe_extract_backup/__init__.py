"""extract_backup, where a row enters: API pages backed up to S3 as received."""
