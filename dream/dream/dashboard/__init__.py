"""`python -m dream dashboard`: the approvals queue, pack evidence and promotion history in a browser."""
