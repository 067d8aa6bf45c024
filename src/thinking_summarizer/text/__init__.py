"""The texts the models read and write: the thinker's tagged output, the summary format, its QC and its metrics."""
