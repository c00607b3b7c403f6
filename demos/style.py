"""The app's CSS, shared by the tabs: ``app.py`` hands it to ``demo.launch(css=...)``.

``pre.generated`` is the monospace text block in which the Text generation tab writes and the
"Inside the RNN" tab colours the text by one hidden unit; ``#caption-heatmaps`` is the captioning tab's gallery;
``#live-samples`` holds the Train tab's samples, one short scrolling block each so the newest stays in view.
"""

CSS = """
pre.generated { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 14px; line-height: 1.5;
                padding: 12px; border-radius: 8px; min-height: 120px; }
pre.generated .prompt { font-weight: bold; }
#live-samples pre.generated { min-height: 0; max-height: 10em; overflow-y: auto; margin: 4px 0 0 0; }
#live-samples .live-sample { margin-bottom: 16px; overflow: hidden; }
@media (max-width: 640px) {
  #caption-heatmaps .grid-container { grid-template-columns: repeat(3, minmax(0, 1fr)) !important; }
}
"""
