"""What the adpipe DAG files share: the operator that runs a job image, and the DAG policy."""
