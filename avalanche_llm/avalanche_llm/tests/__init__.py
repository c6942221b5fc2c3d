"""AvalancheLLM tests (zoo and tiny random models, CPU)."""
