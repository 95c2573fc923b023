"""What every adpipe job needs, written once: settings from the environment (`settings`),
the run contract of a job (`job`), S3 access (`storage`) and PostgreSQL access with the
warehouse's migrations (`warehouse`)."""
