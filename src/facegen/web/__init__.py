"""The local web explorer (`facegen serve`): app.py and the static page it serves."""
