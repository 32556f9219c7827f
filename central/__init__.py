"""footfall central: ingest of edge summaries, storage and retail analytics."""
