"""The Azure Functions edge: entry points, HTTP answers, Easy Auth, the warm-up."""
