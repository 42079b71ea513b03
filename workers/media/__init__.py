"""Media: the object store every stage reads and writes (a folder, or S3), its key scheme,
and the formats of what it holds (frame batches, score files)."""
