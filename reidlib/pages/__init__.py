"""What each chapter shows, one module per chapter named after its stage: the sentences, verdict words,
tables and figures a notebook displays, built from the run's results (the notebooks only call and glue)."""
