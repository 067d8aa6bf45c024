"""What people read: the HTML report's building blocks, plots, and the run summary."""
