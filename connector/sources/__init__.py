"""Event sources: each owns its wire model, validation, translation and HTTP handler."""
