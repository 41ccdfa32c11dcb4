"""Azure Table storage: conditional rows, keys and limits, the deployment state."""
