"""The embedded local host: function_app.py run without Core Tools."""
