"""The app's CSS, shared by the tabs: ``app.py`` hands it to ``demo.launch(css=...)``.

``pre.generated`` is the monospace text block in which the Text generation tab writes and the
"Inside the RNN" tab colours the text by one hidden unit.
"""

CSS = """
pre.generated { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 14px; line-height: 1.5;
                padding: 12px; border-radius: 8px; min-height: 120px; }
pre.generated .prompt { font-weight: bold; }
"""
